"""Tests of the `lookalike-domain` detector."""

from __future__ import annotations

import pickle

import pytest

from sendguard.detect.lookalike_domain import LookalikeDomain, LookalikeDomainSettings
from sendguard.model import Finding, Mail

from .helpers import context


def _one(recipient: str) -> Finding | None:
    found = LookalikeDomain().detect(Mail(), context([recipient]))
    assert len(found) <= 1
    return found[0] if found else None


@pytest.mark.parametrize(
    ("recipient", "imitates", "technique"),
    [
        ("a@gmial.com", "gmail.com", "edit-distance"),
        ("a@tanaka-shouji.co.jp", "tanaka-shoji.co.jp", "edit-distance"),
        ("a@marutaka-kougyo.co.jp", "marutaka-kogyo.co.jp", "edit-distance"),
        ("a@docomo.co.jp", "docomo.ne.jp", "suffix-swap"),
        ("a@tanaka-shoji.jp", "tanaka-shoji.co.jp", "suffix-swap"),
        ("a@yahoo.jp", "yahoo.co.jp", "suffix-swap"),
        ("a@tanakashoji.co.jp", "tanaka-shoji.co.jp", "hyphen"),
        ("a@d0com0.ne.jp", "docomo.ne.jp", "homoglyph"),
        ("a@rnarutaka-kogyo.co.jp", "marutaka-kogyo.co.jp", "homoglyph"),
        ("a@examp1e-corp.co.jp", "example-corp.co.jp", "homoglyph"),
        ("a@gmаil.com", "gmail.com", "mixed-script"),
        ("a@gまいl.こm", "gmail.com", "ime-kana"),
        ("a@gmail.こm", "gmail.com", "ime-kana"),
        ("a@sakurabank.jp", "sakura-bank.jp", "hyphen"),
        ("a@yahoo.co.jo", "yahoo.co.jp", "edit-distance"),
        ("a@docomo.me.jp", "docomo.ne.jp", "edit-distance"),
        ("a@ocn.ne.jo", "ocn.ne.jp", "edit-distance"),
        ("a@ocn.co.jp", "ocn.ne.jp", "suffix-swap"),
        ("a@gmail.com.example.net", "gmail.com", "embedded"),
        ("a@nifty.ne.jp.com", "nifty.ne.jp", "embedded"),
    ],
)
def test_lookalikes_are_caught(recipient: str, imitates: str, technique: str) -> None:
    """Each kind of slip is reported with the domain it imitates and the technique."""
    finding = _one(recipient)
    assert finding is not None
    assert (finding.params["imitates"], finding.params["technique"]) == (imitates, technique)
    assert imitates in finding.evidence[0]


@pytest.mark.parametrize(
    "recipient",
    ["a@gmail.com", "a@i.softbank.jp", "a@mail.tanaka-shoji.co.jp", "a@example-corp.co.jp",
     "a@toyota.co.jp", "a@sony.co.jp", "a@au.com", "a@ana.co.jp", "a@city.yokohama.lg.jp",
     "a@u-tokyo.ac.jp", "a@hitachi.com", "a@ai.com", "a@ana.com"],
)  # fmt: skip
def test_trusted_and_unrelated_domains_are_not_lookalikes(recipient: str) -> None:
    """Trusted domains (and their subdomains) and unrelated real domains are left alone."""
    assert _one(recipient) is None


def test_trusted_domain_is_never_lookalike_of_another_trusted() -> None:
    """hotmail.co.jp and hotmail.com are both trusted, so neither imitates the other."""
    found = LookalikeDomain().detect(Mail(), context(["a@hotmail.co.jp", "b@hotmail.com"]))
    assert found == []


def test_one_finding_per_domain_counting_recipients() -> None:
    """Several recipients at one lookalike domain give one finding with their count."""
    found = LookalikeDomain().detect(Mail(), context(["a@gmial.com", "b@gmial.com"]))
    assert [(f.count, f.params["domain"]) for f in found] == [(2, "gmial.com")]


def test_consumer_list_can_be_switched_off() -> None:
    """Without the built-in consumer list, gmial.com imitates nothing."""
    detector = LookalikeDomain(LookalikeDomainSettings(consumer_domains=False))
    assert detector.detect(Mail(), context(["a@gmial.com"])) == []


def test_thousand_unrelated_recipients_yield_nothing() -> None:
    """1,000 distinct unrelated recipient domains give no finding (speed: tests/bench)."""
    recipients = [f"u@customer-number-{i}.co.jp" for i in range(1000)]
    assert LookalikeDomain().detect(Mail(), context(recipients)) == []


def test_detector_pickles_with_its_cache() -> None:
    """The detector (with a built index) survives pickling for the worker process."""
    detector = LookalikeDomain()
    detector.detect(Mail(), context(["a@gmial.com"]))
    clone = pickle.loads(pickle.dumps(detector))  # noqa: S301 -- our own bytes
    assert clone.detect(Mail(), context(["a@gmial.com"]))[0].params["imitates"] == "gmail.com"
