"""Prometheus metrics, counted from the structlog events the relay already emits.

The log events are the relay's stable record of what happened (the README promises the
`transaction` event and its fields), so metrics are derived from them in one place — a
structlog processor — instead of counters sprinkled through the flow: a new stage that logs
its facts is measured without touching this module, and the numbers can never disagree with
the logs. Only what no event carries (bytes in flight, queue depth) is measured directly.

Several relay processes (`SENDGUARD_WORKERS`) each count their own; prometheus-client's
multi-process mode (`PROMETHEUS_MULTIPROC_DIR`, set by `sendguard serve` before any worker
starts) adds them up at scrape time, so any worker's ``/metrics`` shows the whole node.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from sendguard.ops import MULTIPROC_ENV

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

TRANSACTIONS = Counter(
    "sendguard_transactions",
    "SMTP transactions by final action, deciding rule and reply class.",
    ["action", "rule", "reply_class"],
)
FINDINGS = Counter(
    "sendguard_findings",
    "Messages with at least one finding, by detector and finding code.",
    ["detector", "code"],
)
TRANSACTION_SECONDS = Histogram(
    "sendguard_transaction_seconds",
    "End-to-end time from the end of DATA to the reply (inspection and delivery).",
    buckets=_SECONDS,
)
INSPECTION_SECONDS = Histogram(
    "sendguard_inspection_seconds",
    "Time to parse, run the detectors and the policy for one message.",
    buckets=_SECONDS,
)
BYTES_IN_FLIGHT = Gauge(
    "sendguard_bytes_in_flight",
    "Bytes of messages being inspected or delivered right now.",
    multiprocess_mode="livesum",
)
NOTICES = Counter("sendguard_notices", "Notices by outcome (sent, failed, dropped).", ["outcome"])
UPSTREAM_REPLIES = Counter(
    "sendguard_upstream_replies",
    "Replies for live mail sent upstream (pass, tag, rewrite) by class: the client's reply is"
    " the upstream's own, or the relay's 4xx when the upstream could not be reached.",
    ["reply_class"],
)
UPSTREAM_PROBLEMS = Counter(
    "sendguard_upstream_problems", "Upstream refusals and failures, by log event.", ["event"]
)
AUTH = Counter(
    "sendguard_auth",
    "SMTP AUTH outcomes by result (succeeded, failed, and any limit the relay applied).",
    ["result"],
)
POLICY_LOADS = Counter(
    "sendguard_policy_loads", "Policy loads and reloads by result (ok, failed).", ["result"]
)
POLICY_RELOAD_FAILED = Gauge(
    "sendguard_policy_last_reload_failed",
    "1 while the last reload attempt was refused (the previous policy keeps serving).",
    multiprocess_mode="livemax",
)
POLICY_LOADED_AT = Gauge(
    "sendguard_policy_loaded_timestamp_seconds",
    "When the policy in force was loaded (Unix time).",
    multiprocess_mode="livemax",
)
EVENTS = Counter(
    "sendguard_log_events",
    "Warning and error log events by level and event name (for alerting).",
    ["level", "event"],
)
_POLICY_VERSION = Gauge(
    "sendguard_policy_info",
    "The policy version in force in each relay process (value 1).",
    ["version"],
    multiprocess_mode="liveall",
)

_NOTICE_EVENTS = {
    "notice_sent": "sent",
    "notice_send_error": "failed",
    "notice_compose_error": "failed",
    "notice_dropped": "dropped",
}
_policy_version: list[str] = []


def _reply_class(code: object) -> str:
    return f"{code}"[:1] + "xx" if isinstance(code, int) and 200 <= code < 600 else "none"


_SENT_UPSTREAM = frozenset({"pass", "tag", "rewrite-bcc"})


@functools.lru_cache(maxsize=4096)
def _child(metric: Counter, values: tuple[str, ...]) -> Counter:
    """`metric.labels(*values)`, looked up once per label set: `labels` validates, sorts and
    locks on every call, ~5 of them per transaction (~40 % of the `transaction` event's
    cost). Label values are bounded (actions, rule ids, detector ids and codes), and no
    labelled child is ever removed, so a cached child stays the one the registry exports."""
    return metric.labels(*values)


def _on_transaction(event: Mapping[str, Any]) -> None:
    action = str(event.get("action") or "none")
    reply_class = _reply_class(event.get("reply_code"))
    # Positional values in the metrics' declared label order (action, rule, reply_class).
    _child(TRANSACTIONS, (action, str(event.get("rule") or ""), reply_class)).inc()
    if action in _SENT_UPSTREAM:
        _child(UPSTREAM_REPLIES, (reply_class,)).inc()
    for item in event.get("findings") or ():
        # "detector/code:count": the processor sees the logged form, never evidence.
        detector, _, rest = str(item).partition("/")
        _child(FINDINGS, (detector, rest.rpartition(":")[0] or rest)).inc()
    duration = event.get("duration_ms")
    if isinstance(duration, int | float):
        TRANSACTION_SECONDS.observe(duration / 1000)
    inspected = event.get("inspect_ms")
    if isinstance(inspected, int | float):
        INSPECTION_SECONDS.observe(inspected / 1000)


def _on_policy_loaded(event: Mapping[str, Any]) -> None:
    POLICY_LOADS.labels(result="ok").inc()
    POLICY_RELOAD_FAILED.set(0)
    POLICY_LOADED_AT.set(time.time())
    version = str(event.get("version") or "")[:12]
    for old in _policy_version:
        _POLICY_VERSION.labels(version=old).set(0)
    _policy_version[:] = [version]
    _POLICY_VERSION.labels(version=version).set(1)


def record_event(event_name: str, level: str, event: Mapping[str, Any]) -> None:
    """Count one log event; unknown events count only by level when warning or worse."""
    if event_name == "transaction":
        _on_transaction(event)
    elif event_name in _NOTICE_EVENTS:
        NOTICES.labels(outcome=_NOTICE_EVENTS[event_name]).inc()
    elif event_name.startswith("auth_"):
        AUTH.labels(result=event_name[5:]).inc()
    elif event_name == "policy_loaded":
        _on_policy_loaded(event)
    elif event_name == "policy_reload_failed":
        POLICY_LOADS.labels(result="failed").inc()
        POLICY_RELOAD_FAILED.set(1)
    elif event_name.startswith("upstream_") and level in ("warning", "error", "critical"):
        UPSTREAM_PROBLEMS.labels(event=event_name).inc()
    if level in ("warning", "error", "critical"):
        EVENTS.labels(level=level, event=event_name).inc()


def processor(_logger: object, method: str, event: MutableMapping[str, Any]) -> Any:
    """structlog processor: count the event, hand it on unchanged. Never raises: a metrics
    bug must not cost a log line."""
    level = {"exception": "error", "warn": "warning", "fatal": "critical"}.get(method, method)
    # Metrics are best effort; the log line is the record and must never be lost to them.
    with contextlib.suppress(Exception):
        record_event(str(event.get("event", "")), level, event)
    return event


@contextmanager
def in_flight(size: int) -> Iterator[None]:
    """Count ``size`` bytes as in flight for the duration of the block."""
    BYTES_IN_FLIGHT.inc(size)
    try:
        yield
    finally:
        BYTES_IN_FLIGHT.dec(size)


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """What the store says at scrape time: entries by state, age of the oldest hold."""

    by_state: Mapping[str, int]
    oldest_held_seconds: float | None


class _QueueCollector(Collector):
    """Yields an already-read `QueueDepth` (the store is async; collectors are not)."""

    def __init__(self, depth: QueueDepth | None) -> None:
        self.depth = depth

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.depth is None:
            return
        states = GaugeMetricFamily(
            "sendguard_queue_entries", "Queue entries by state.", labels=["state"]
        )
        for state, count in sorted(self.depth.by_state.items()):
            states.add_metric([state], count)
        yield states
        oldest = GaugeMetricFamily(
            "sendguard_queue_oldest_held_seconds",
            "Age of the oldest message waiting for a reviewer (0 when none).",
        )
        oldest.add_metric([], self.depth.oldest_held_seconds or 0.0)
        yield oldest


def mark_process_dead(pid: int) -> None:
    """A relay process ended: its live gauges stop counting (multi-process mode only)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def exposition(depth: QueueDepth | None) -> tuple[bytes, str]:
    """The ``/metrics`` body and content type: every process's metrics plus the queue."""
    registry = CollectorRegistry(auto_describe=True)
    if os.environ.get(MULTIPROC_ENV):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    queue = CollectorRegistry(auto_describe=True)
    queue.register(_QueueCollector(depth))
    return body + generate_latest(queue), CONTENT_TYPE_LATEST
