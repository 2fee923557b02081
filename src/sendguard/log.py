"""structlog setup: one JSON object per line for SIEMs, or a console view for people.

Events are snake_case facts (`transaction`, `message_held`). Context bound with contextvars
(`session_id`, `transaction_id`) is merged into every event of that transaction.

Every line on stderr is one JSON object (``log_format=json``): the standard library's
logging (aiosmtpd's ``mail.log``, asyncio, psycopg…), Python warnings and uncaught
exceptions go through structlog's `ProcessorFormatter` with the same renderer, so they
become events like ours (``logger`` names the source). Known deprecation noise from
libraries (aiosmtpd's "Session.login_data is deprecated" on every AUTH) is dropped: it says
nothing about this relay. aiosmtpd's own logger is kept at WARNING: at DEBUG it would print
AUTH exchanges.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from types import TracebackType
from typing import Any, Literal

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

_CHILD_ENV = "SENDGUARD_INTERNAL_CHILD_LOGGING"
"""Carries the format and level to worker processes (the extraction pool's fork server
starts a fresh interpreter that inherits no configuration, only the environment)."""

_NOISE = ("is deprecated", "will be deprecated")
"""Library messages about the library's own API: nothing an operator can act on."""


class _DropDeprecationNoise(logging.Filter):
    """Drops libraries' deprecation messages (logged or warned), keeps everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("sendguard"):
            return True
        message = record.getMessage()
        if record.name == "py.warnings" and "DeprecationWarning" in message:
            return False
        return not any(noise in message for noise in _NOISE)


class _StderrLoggerFactory:
    """A `PrintLogger` on whatever `sys.stderr` is at the time of the call (not at configure
    time: a replaced or closed stream must not keep receiving events)."""

    def __call__(self, *args: Any) -> structlog.PrintLogger:
        return structlog.PrintLogger(sys.stderr)


def route_logs_to_stderr() -> None:
    """The CLI's commands other than `serve`: events go to stderr, never stdout.

    structlog's default prints to stdout, where `doctor --json`, `queue list` and `audit
    head` write what scripts parse: a warning there (a policy loaded with `allow_empty`)
    would corrupt it. Only the destination changes; `serve` configures everything itself.
    """
    structlog.configure(logger_factory=_StderrLoggerFactory())


def configure_logging(
    fmt: Literal["json", "console"] = "json",
    level: Literal["debug", "info", "warning", "error"] = "info",
) -> None:
    """Configure structlog and stdlib logging for the process (`sendguard serve`, the CLI)."""
    os.environ[_CHILD_ENV] = f"{fmt}:{level}"
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

    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            count_metrics,
            drop_below_level,
            *shared,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(min(threshold, logging.INFO)),
        # One write() per event: forked relay processes share stderr and must not interleave.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)  # one write() per record, like ours
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    handler.addFilter(_DropDeprecationNoise())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(logging.WARNING, _LEVELS[level]))
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    # Warnings become `py.warnings` records (JSON, filtered above) instead of bare text.
    logging.captureWarnings(True)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"aiosmtpd(\.|$)")
    sys.excepthook = _log_uncaught


def configure_child_logging() -> None:
    """In a worker process: the parent's set-up (JSON to stderr unless it chose otherwise)."""
    fmt, _, level = os.environ.get(_CHILD_ENV, "json:warning").partition(":")
    configure_logging(
        "console" if fmt == "console" else "json",
        level if level in ("debug", "info", "warning", "error") else "warning",  # type: ignore[arg-type]
    )


def _log_uncaught(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    """The last words of a crashing process, as one event rather than a bare traceback."""
    structlog.get_logger("sendguard").critical("uncaught_exception", exc_info=(kind, value, tb))
