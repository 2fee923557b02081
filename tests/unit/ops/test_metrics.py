"""Metrics are counted from the relay's own log events, in one structlog processor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import structlog
from prometheus_client import REGISTRY

from sendguard.ops import metrics


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _transaction(**fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event": "transaction",
        "action": "hold",
        "rule": "hold-my-number",
        "reply_code": 250,
        "findings": ["personal-data/my-number:3", "external-recipients/external:1"],
        "duration_ms": 120.5,
        "inspect_ms": 80.0,
    }
    event.update(fields)
    return event


def test_a_transaction_counts_action_rule_reply_findings_and_latency() -> None:
    labels = {"action": "hold", "rule": "hold-my-number", "reply_class": "2xx"}
    before = _value("sendguard_transactions_total", **labels)
    findings = _value("sendguard_findings_total", detector="personal-data", code="my-number")
    latency = _value("sendguard_inspection_seconds_count")
    metrics.processor(None, "info", _transaction())
    assert _value("sendguard_transactions_total", **labels) == before + 1
    assert (
        _value("sendguard_findings_total", detector="personal-data", code="my-number")
        == findings + 1
    )
    assert _value("sendguard_inspection_seconds_count") == latency + 1


def test_live_mail_counts_the_upstream_reply_class_queued_mail_does_not() -> None:
    before = _value("sendguard_upstream_replies_total", reply_class="4xx")
    metrics.processor(None, "info", _transaction(action="pass", rule=None, reply_code=451))
    metrics.processor(None, "info", _transaction(action="hold", reply_code=451))
    assert _value("sendguard_upstream_replies_total", reply_class="4xx") == before + 1


@pytest.mark.parametrize(
    ("event", "metric", "labels"),
    [
        ("notice_sent", "sendguard_notices_total", {"outcome": "sent"}),
        ("notice_send_error", "sendguard_notices_total", {"outcome": "failed"}),
        ("notice_dropped", "sendguard_notices_total", {"outcome": "dropped"}),
        ("auth_failed", "sendguard_auth_total", {"result": "failed"}),
        ("policy_reload_failed", "sendguard_policy_loads_total", {"result": "failed"}),
    ],
)
def test_named_events_count(event: str, metric: str, labels: dict[str, str]) -> None:
    before = _value(metric, **labels)
    metrics.processor(None, "warning", {"event": event})
    assert _value(metric, **labels) == before + 1


def test_policy_loaded_sets_the_version_and_clears_the_failure_flag() -> None:
    metrics.processor(None, "error", {"event": "policy_reload_failed"})
    assert _value("sendguard_policy_last_reload_failed") == 1
    metrics.processor(None, "info", {"event": "policy_loaded", "version": "a" * 64})
    metrics.processor(None, "info", {"event": "policy_loaded", "version": "b" * 64})
    assert _value("sendguard_policy_last_reload_failed") == 0
    assert _value("sendguard_policy_info", version="b" * 12) == 1
    assert _value("sendguard_policy_info", version="a" * 12) == 0


def test_warnings_and_errors_count_by_event_name() -> None:
    before = _value("sendguard_log_events_total", level="error", event="queue_commit_failed")
    metrics.processor(None, "exception", {"event": "queue_commit_failed"})
    after = _value("sendguard_log_events_total", level="error", event="queue_commit_failed")
    assert after == before + 1


def test_a_malformed_event_is_still_logged_unchanged() -> None:
    event = _transaction(findings=object(), duration_ms="fast")
    assert metrics.processor(None, "info", event) is event


def test_events_below_the_log_level_are_counted_but_not_printed(
    capsys: pytest.CaptureFixture[str], serve_logging: Callable[[str], None]
) -> None:
    serve_logging("warning")
    labels = {"action": "pass", "rule": "", "reply_class": "2xx"}
    before = _value("sendguard_transactions_total", **labels)
    structlog.get_logger("t").info("transaction", action="pass", rule=None, reply_code=250)
    structlog.get_logger("t").warning("something_odd")
    assert _value("sendguard_transactions_total", **labels) == before + 1
    err = capsys.readouterr().err
    assert "something_odd" in err
    assert '"transaction"' not in err


def test_bytes_in_flight_rise_and_fall() -> None:
    before = _value("sendguard_bytes_in_flight")
    with metrics.in_flight(1000):
        assert _value("sendguard_bytes_in_flight") == before + 1000
    assert _value("sendguard_bytes_in_flight") == before


def test_exposition_adds_the_queue_depth() -> None:
    body, content_type = metrics.exposition(
        metrics.QueueDepth(by_state={"held": 3, "delayed": 1}, oldest_held_seconds=42.0)
    )
    text = body.decode()
    assert 'sendguard_queue_entries{state="held"} 3.0' in text
    assert "sendguard_queue_oldest_held_seconds 42.0" in text
    assert "sendguard_transactions_total" in text
    assert content_type.startswith("text/plain")
