"""Tests of the `visible-recipients` detector (the Bcc mistake)."""

from __future__ import annotations

from sendguard.detect.visible_recipients import VisibleRecipients
from sendguard.model import Mail

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
