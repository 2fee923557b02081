"""Tests of the `visible-recipients` detector (the Bcc mistake)."""

from __future__ import annotations

from sendguard.detect.visible_recipients import VisibleRecipients
from sendguard.model import Mail, Problem

from .helpers import SENDER, addr, addrs, context

CUSTOMERS = [f"user{i}@customer{i}.co.jp" for i in range(40)]


def test_forty_customers_in_to_are_visible() -> None:
    """40 customers of 40 companies in To are 40 visible addresses and 40 parties."""
    mail = Mail(to=addrs(CUSTOMERS))
    found = {f.code: f for f in VisibleRecipients().detect(mail, context(CUSTOMERS))}
    assert found["external-visible"].count == 40
    assert found["external-visible"].params["organisations"] == 40
    assert found["organisations-visible"].count == 40


def test_newsletter_via_bcc_to_undisclosed_yields_nothing() -> None:
    """To: undisclosed-recipients:; with everyone in Bcc shows no outside address."""
    mail = Mail(bcc=addrs(CUSTOMERS, "bcc"))
    assert VisibleRecipients().detect(mail, context(CUSTOMERS)) == []


def test_newsletter_to_sender_yields_nothing() -> None:
    """To: the sender (internal) and customers in Bcc is the correct way."""
    mail = Mail(to=(addr(SENDER),), bcc=addrs(CUSTOMERS, "bcc"))
    assert VisibleRecipients().detect(mail, context([SENDER, *CUSTOMERS])) == []


def test_one_company_is_not_several_organisations() -> None:
    """Colleagues at one customer see each other: visible, but one organisation."""
    people = ["a@abc.co.jp", "b@abc.co.jp", "c@osaka.abc.co.jp"]
    found = VisibleRecipients().detect(Mail(to=addrs(people)), context(people))
    assert [f.code for f in found] == ["external-visible"]
    assert found[0].params["organisations"] == 1


def test_private_consumer_addresses_are_separate_parties() -> None:
    """Two customers on gmail.com are two unrelated people, not one organisation."""
    people = ["taro@gmail.com", "hanako@gmail.com"]
    found = {
        f.code: f for f in VisibleRecipients().detect(Mail(cc=addrs(people, "cc")), context(people))
    }
    assert found["organisations-visible"].count == 2
    assert found["organisations-visible"].where == ("cc",)


def test_internal_delivery_does_not_expose_outside_addresses() -> None:
    """When every envelope recipient is internal, nobody outside sees the headers."""
    mail = Mail(to=addrs(CUSTOMERS[:3]))
    assert VisibleRecipients().detect(mail, context(["boss@example-corp.co.jp"])) == []


def test_resent_to_and_cc_are_visible_recipients() -> None:
    """Outside addresses in Resent-To/Resent-Cc are shown to every recipient: counted."""
    outside = ["a@abc.co.jp", "b@xyz.co.jp"]
    mail = Mail(
        to=(addr(SENDER),),
        resent_to=addrs(outside[:1], "resent-to"),
        resent_cc=addrs(outside[1:], "resent-cc"),
    )
    found = {f.code: f for f in VisibleRecipients().detect(mail, context(outside))}
    assert found["external-visible"].count == 2
    assert found["external-visible"].where == ("resent-cc", "resent-to")
    assert found["organisations-visible"].count == 2


def test_malformed_to_or_cc_is_its_own_finding_when_mail_leaves() -> None:
    """Unreadable To/Cc entries are `malformed` (with the parser's reasons), only when the
    mail goes outside; malformed From is not a visible-recipients matter."""
    problems = (
        Problem("malformed", "address-syntax", "to", "bad domain"),
        Problem("malformed", "address-syntax", "cc", "space inside address"),
        Problem("malformed", "address-syntax", "from", "bad domain"),
    )
    mail = Mail(problems=problems)
    [finding] = VisibleRecipients().detect(mail, context(["a@abc.co.jp"]))
    assert (finding.code, finding.count, finding.where) == ("malformed", 2, ("cc", "to"))
    assert finding.evidence == ("bad domain", "space inside address")
    assert VisibleRecipients().detect(mail, context([SENDER])) == []
