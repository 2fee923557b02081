"""Every real-world corpus message goes through parse and every detector, quickly and cleanly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sendguard.detect.registry import build
from sendguard.inspect import detect_context
from sendguard.model import Envelope
from sendguard.parse import parse_message
from sendguard.parse.limits import ParseLimits
from sendguard.policy.load import load_policy
from tests.e2e.test_fidelity import as_crlf, corpus_messages

REPO = Path(__file__).resolve().parents[2]
# Generous for a 2-core CI machine; the real targets are in tests/bench. A detector that
# backtracks or loops on ordinary mail shows up here as seconds, not milliseconds.
PER_MESSAGE_SECONDS = 2.0


@pytest.mark.parametrize("path", corpus_messages(), ids=lambda p: p.name)
def test_corpus_message_inspects_within_bounds(path: Path) -> None:
    """Parse plus every content detector of the shipped policy finishes fast on real mail."""
    policy = load_policy(REPO / "policies")
    detectors = build(policy.detector_settings, enabled=policy.enabled_detectors())
    ctx = detect_context(
        Envelope(mail_from="sender@example.co.jp", rcpt_tos=("rcpt@partner.test",)),
        policy.organisation,
    )
    data = as_crlf(path.read_bytes())
    started = time.perf_counter()
    mail = parse_message(data, ParseLimits())
    for detector in detectors.content:
        detector.detect(mail, ctx)
    assert time.perf_counter() - started < PER_MESSAGE_SECONDS
