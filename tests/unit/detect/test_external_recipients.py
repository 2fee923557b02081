"""Tests of the `external-recipients` detector."""

from __future__ import annotations

from sendguard.detect.external_recipients import ExternalRecipients
from sendguard.model import Finding, Mail

from .helpers import context


def _codes(recipients: list[str]) -> dict[str, Finding]:
    found = ExternalRecipients().detect(Mail(), context(recipients))
    return {f.code: f for f in found}


def test_internal_only_yields_nothing() -> None:
    """Recipients in internal domains and their subdomains are not external."""
    assert _codes(["a@example-corp.co.jp", "b@osaka.example-corp.co.jp"]) == {}


def test_external_counts_addresses_and_organisations() -> None:
    """External count is per address; organisations are distinct registrable domains."""
    found = ExternalRecipients().detect(
        Mail(),
        context(["a@example-corp.co.jp", "x@mail.abc.co.jp", "y@abc.co.jp", "z@gmail.com"]),
    )
    assert [f.code for f in found] == ["external"]
    assert found[0].count == 3
    assert found[0].params == {"count": 3, "organisations": 2, "total": 4}
    assert found[0].evidence == ("abc.co.jp", "gmail.com")


def test_partner_is_external_and_counted_separately() -> None:
    """Partner-domain recipients are external and also reported as `partner`."""
    codes = _codes(["p@tanaka-shoji.co.jp", "q@sub.tanaka-shoji.co.jp", "r@other.jp"])
    assert codes["external"].count == 3
    assert codes["partner"].count == 2


def test_list_with_outside_members_counts_as_external() -> None:
    """A configured list address on our own domain is external and reported as a list."""
    codes = _codes(["users@lists.example-corp.co.jp", "a@example-corp.co.jp"])
    assert codes["external"].count == 1
    assert codes["external-list"].count == 1
    assert codes["external-list"].evidence == ("u***@lists.example-corp.co.jp",)
