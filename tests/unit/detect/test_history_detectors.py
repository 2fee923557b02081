"""first-contact, recipient-slip, thread-outsider and the learned targets of lookalike-domain:
pure functions of the mail and the history snapshot in the context."""

from __future__ import annotations

from dataclasses import replace

from sendguard.correspondence import HistorySnapshot, Known
from sendguard.detect.first_contact import FirstContact, FirstContactSettings
from sendguard.detect.lookalike_domain import LookalikeDomain, LookalikeDomainSettings
from sendguard.detect.recipient_slip import RecipientSlip
from sendguard.detect.thread_outsider import ThreadOutsider
from sendguard.model import Mail, Organisation

from .helpers import SENDER, context

ORG = Organisation(internal_domains=frozenset({"example-corp.co.jp"}))
KNOWN = "tanaka@tanaka-shoji.co.jp"


def snapshot(**kw: object) -> HistorySnapshot:
    """A snapshot of a sender with a long history who writes to tanaka-shoji.co.jp."""
    base = HistorySnapshot(
        sender=SENDER,
        sender_messages=100,
        written={KNOWN: 12},
        domains={"tanaka-shoji.co.jp": 40},
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_first_contact_new_recipient_at_a_known_domain() -> None:
    """A colleague's customer the sender never wrote to: new-recipient, masked."""
    ctx = replace(context(["sato@tanaka-shoji.co.jp", KNOWN], ORG), history=snapshot())
    (finding,) = FirstContact().detect(Mail(), ctx)
    assert (finding.code, finding.count) == ("new-recipient", 1)
    assert finding.evidence == ("s***@tanaka-shoji.co.jp",)


def test_first_contact_new_domain() -> None:
    """A domain nobody here has written to: new-domain naming the domain."""
    ctx = replace(context(["ceo@brand-new.example"], ORG), history=snapshot())
    (finding,) = FirstContact().detect(Mail(), ctx)
    assert (finding.code, finding.evidence) == ("new-domain", ("brand-new.example",))


def test_first_contact_is_quiet_for_known_internal_cold_and_bulk() -> None:
    """Known correspondents, internal mail, a cold history and newsletters give nothing."""
    detector = FirstContact()
    assert detector.detect(Mail(), replace(context([KNOWN], ORG), history=snapshot())) == []
    internal = context(["suzuki@example-corp.co.jp"], ORG)
    assert detector.detect(Mail(), replace(internal, history=snapshot())) == []
    cold = replace(context(["x@new.example"], ORG), history=snapshot(sender_messages=3))
    assert detector.detect(Mail(), cold) == []
    bulk = [f"reader{i}@news.example" for i in range(30)]
    assert detector.detect(Mail(), replace(context(bulk, ORG), history=snapshot())) == []
    assert detector.detect(Mail(), context(["x@new.example"], ORG)) == []  # no history at all
    few = FirstContact(FirstContactSettings(max_recipients=50))
    assert few.detect(Mail(), replace(context(bulk, ORG), history=snapshot()))[0].count == 30


def test_recipient_slip_autocomplete_by_name_and_by_local_part() -> None:
    """Same display name or local part as a real correspondent at another domain."""
    by_name = snapshot(same_name={"t.tanaka@other.example": (Known(KNOWN, 12, "田中太郎"),)})
    ctx = replace(context(["t.tanaka@other.example"], ORG), history=by_name)
    (finding,) = RecipientSlip().detect(Mail(), ctx)
    assert (finding.code, finding.severity) == ("autocomplete", "high")
    assert finding.evidence == ("t***@other.example ≈ t***@tanaka-shoji.co.jp (display name)",)
    by_local = snapshot(same_local={"tanaka@tanaka-shouji.co.jp": (Known(KNOWN, 12),)})
    ctx = replace(context(["tanaka@tanaka-shouji.co.jp"], ORG), history=by_local)
    assert [f.code for f in RecipientSlip().detect(Mail(), ctx)] == ["autocomplete"]


def test_recipient_slip_ignores_role_addresses_and_rare_correspondents() -> None:
    """info@ elsewhere is not a slip; nor is a look-alike of someone written to once."""
    role = snapshot(same_local={"info@other.example": (Known("info@tanaka-shoji.co.jp", 50),)})
    ctx = replace(context(["info@other.example"], ORG), history=role)
    assert RecipientSlip().detect(Mail(), ctx) == []
    rare = snapshot(same_local={"tanaka@other.example": (Known(KNOWN, 1),)})
    ctx = replace(context(["tanaka@other.example"], ORG), history=rare)
    assert RecipientSlip().detect(Mail(), ctx) == []


def test_recipient_slip_one_edit_at_the_same_domain() -> None:
    """tanaak@ (a swap) at the domain where tanaka@ is known: near-address."""
    near = snapshot(neighbours={"tanaka-shoji.co.jp": (Known(KNOWN, 0),)})
    ctx = replace(context(["tanaak@tanaka-shoji.co.jp"], ORG), history=near)
    (finding,) = RecipientSlip().detect(Mail(), ctx)
    assert finding.code == "near-address"
    far = replace(context(["sato@tanaka-shoji.co.jp"], ORG), history=near)
    assert RecipientSlip().detect(Mail(), far) == []
    known = replace(context([KNOWN], ORG), history=near)
    assert RecipientSlip().detect(Mail(), known) == []


def test_thread_outsider_new_domain_in_a_known_thread() -> None:
    """A reply in a recorded thread that adds another company: new-party."""
    reply = Mail(in_reply_to=("<m1@example-corp.co.jp>",))
    snap = snapshot(thread_known=True, thread_domains=frozenset({"tanaka-shoji.co.jp"}))
    ctx = replace(context([KNOWN, "sales@rival.example"], ORG), history=snap)
    (finding,) = ThreadOutsider().detect(reply, ctx)
    assert (finding.code, finding.count, finding.evidence) == ("new-party", 1, ("rival.example",))
    same = replace(context([KNOWN, "sato@tanaka-shoji.co.jp"], ORG), history=snap)
    assert ThreadOutsider().detect(reply, same) == []
    unknown = replace(ctx, history=snapshot(thread_known=False))
    assert ThreadOutsider().detect(reply, unknown) == []
    assert ThreadOutsider().detect(Mail(), ctx) == []  # not a reply


def test_lookalike_learns_frequent_domains_as_targets() -> None:
    """tanaka-shouji.co.jp passes until the history shows tanaka-shoji.co.jp is written to."""
    detector = LookalikeDomain()
    plain = context(["tanaka@tanaka-shouji.co.jp"], ORG)
    assert detector.detect(Mail(), plain) == []
    learned = replace(plain, learned={"tanaka-shoji.co.jp": 40})
    (finding,) = detector.detect(Mail(), learned)
    assert finding.params["imitates"] == "tanaka-shoji.co.jp"
    rare = replace(plain, learned={"tanaka-shoji.co.jp": 2})
    assert detector.detect(Mail(), rare) == []
    off = LookalikeDomain(LookalikeDomainSettings(learned_min_count=0))
    assert off.detect(Mail(), learned) == []
