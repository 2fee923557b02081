"""structlog setup: one JSON object per line for SIEMs, or a console view for people.

Events are snake_case facts (`transaction`, `message_held`). Context bound with contextvars
(`session_id`, `transaction_id`) is merged into every event of that transaction. aiosmtpd's
own stdlib logger is kept at WARNING: at DEBUG it would print AUTH exchanges.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure_logging(
    fmt: Literal["json", "console"] = "json",
    level: Literal["debug", "info", "warning", "error"] = "info",
) -> None:
    """Configure structlog for the process (called once by `sendguard serve` and the CLI)."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    # Imported here, not at the top: prometheus-client decides single- or multi-process mode
    # when it is first imported, and `sendguard serve` sets that up just before this call.
    from sendguard.ops.metrics import processor as count_metrics

    threshold = _LEVELS[level]

    def drop_below_level(_logger: object, method: str, event: Any) -> Any:
        # Filtered here rather than by the bound logger so that metrics still count events
        # below the log level (a `transaction` is counted even at LOG_LEVEL=warning).
        if _LEVELS.get(method, logging.CRITICAL) < threshold:
            raise structlog.DropEvent
        return event

    structlog.configure(
        processors=[
            count_metrics,
            drop_below_level,
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(min(threshold, logging.INFO)),
        # One write() per event: forked relay processes share stderr and must not interleave.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s"
    )
    logging.getLogger("mail.log").setLevel(logging.WARNING)
