"""The review rules on verified actors (pure functions; no store): who counts, who may act."""

from __future__ import annotations

import datetime as dt
import os
import pwd

import pytest

from sendguard.entry import Entry, State
from sendguard.errors import ReviewError
from sendguard.model import Action, HoldParams
from sendguard.policy.people import build_people
from sendguard.review import rules
from sendguard.review.actor import Actor, os_actor
from tests.support.review import actor, root
from tests.support.store import sample_envelope, sample_verdict

NOW = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
BOSS = actor("boss", "boss@corp.example")
SEC = actor("sec", "security@corp.example")
ADMIN = actor("yamada", "yamada@corp.example", role="admin")
PEOPLE = build_people(
    {
        "boss": (("boss@corp.example",), "reviewer"),
        "kacho": (("kacho@corp.example",), "sender"),
        "tanaka": (("tanaka@corp.example",), "sender"),
    },
    ("corp.example",),
)


def _entry(
    state: State = "held",
    *,
    hold: HoldParams | None = None,
    auth_user: str | None = "tanaka",
    approvals: tuple[str, ...] = (),
) -> Entry:
    """A message from tanaka@corp.example held (or delayed) by rule hold-my-number."""
    action = Action.HOLD if state == "held" else Action.DELAY
    hold = hold or HoldParams(reviewers=("boss@corp.example", "security@corp.example"))
    return Entry(
        id="01TEST",
        state=state,
        envelope=sample_envelope("tanaka@corp.example", auth_user=auth_user),
        data=b"",
        verdict=sample_verdict(action, hold=hold, delay_minutes=5),
        created_at=NOW,
        updated_at=NOW,
        size=10,
        approvals=approvals,
    )


def test_two_approvals_by_the_same_identity_are_one() -> None:
    """approvals=2: a listed reviewer approving twice is refused the second time."""
    hold = HoldParams(reviewers=("boss@corp.example",), approvals_required=2)
    entry = rules.release(_entry(hold=hold), BOSS, NOW).entry
    assert (entry.state, entry.approvals) == ("held", ("boss",))
    with pytest.raises(ReviewError, match="boss has already approved 01TEST; 1 more"):
        rules.release(entry, BOSS, NOW)


def test_two_listed_reviewers_release_with_two_approvals() -> None:
    """Two different listed reviewers of the rule make two approvals; the second releases."""
    hold = HoldParams(
        reviewers=("boss@corp.example", "security@corp.example"), approvals_required=2
    )
    first = rules.release(_entry(hold=hold), BOSS, NOW)
    assert (first.event, first.actor, first.entry.state) == ("approved", "boss", "held")
    second = rules.release(first.entry, SEC, NOW)
    assert (second.event, second.entry.state, second.entry.approvals) == (
        "released",
        "released",
        ("boss", "sec"),
    )
    assert second.details["by"] == "sec" and second.details["verified_by"] == "os"


def test_admin_acting_for_different_names_counts_once() -> None:
    """Root giving --actor boss then --actor kacho is one identity: the second is refused,
    and the record names both the name and the admin."""
    hold = HoldParams(reviewers=("boss@corp.example",), approvals_required=2)
    first = rules.release(_entry(hold=hold), root().acting_for("boss"), NOW)
    assert (first.actor, first.entry.approvals) == ("boss, by admin root", ("root",))
    with pytest.raises(ReviewError, match="root has already approved"):
        rules.release(first.entry, root().acting_for("kacho"), NOW)
    second = rules.release(first.entry, BOSS, NOW)
    assert second.entry.state == "released"


def test_listed_admin_may_release_without_being_a_reviewer_of_the_rule() -> None:
    """An admin decides any held message (one approval)."""
    decision = rules.release(_entry(), ADMIN, NOW)
    assert (decision.entry.state, decision.entry.decided_by) == ("released", "yamada")


@pytest.mark.parametrize(
    ("who", "why"),
    [
        (actor("intern", listed=False), "intern is not listed in the policy's \\[people\\]"),
        (actor("kacho", "kacho@corp.example", role="sender"), "listed as a sender, not a reviewer"),
        (actor("other", "other@corp.example"), "none of other's addresses is among the reviewers"),
    ],
)
def test_only_listed_reviewers_of_the_rule_count(who: Actor, why: str) -> None:
    """Unlisted logins, listed senders and reviewers of other rules are refused, naming the
    rule's reviewers."""
    with pytest.raises(ReviewError, match=why) as exc:
        rules.release(_entry(), who, NOW)
    assert "boss@corp.example, security@corp.example" in str(exc.value)
    with pytest.raises(ReviewError, match=why):
        rules.reject(_entry(), who, "no", NOW)


def test_an_unlisted_account_named_like_a_reviewer_is_not_one() -> None:
    """An OS account `security` that [people] does not list gets the default address
    security@corp.example — still not a reviewer: only the admin's table makes one."""
    people = build_people({}, ("corp.example",))
    unlisted = Actor("security", people.person("security"), "os")
    assert unlisted.person.addresses == ("security@corp.example",)
    with pytest.raises(ReviewError, match="not listed"):
        rules.release(_entry(), unlisted, NOW)


def test_default_reviewers_apply_when_the_rule_names_none() -> None:
    """A hold without reviewers is decided by the configured default reviewers (who get the
    notice), else by an admin only."""
    entry = _entry(hold=HoldParams())
    with pytest.raises(ReviewError, match="none configured: only an admin"):
        rules.release(entry, BOSS, NOW)
    assert rules.release(entry, BOSS, NOW, ("boss@corp.example",)).entry.state == "released"
    assert rules.release(entry, ADMIN, NOW).entry.state == "released"


@pytest.mark.parametrize(
    "sender",
    [
        actor("tanaka", "t.tanaka@corp.example"),  # the AUTH login
        actor("t2", "tanaka@corp.example"),  # may send as the envelope sender
        actor("t3", "@corp.example", role="admin"),  # a wildcard covers it (even an admin)
    ],
)
def test_the_sender_never_approves_its_own_mail(sender: Actor) -> None:
    """Without self_release the sender is refused even when it is a reviewer or an admin."""
    hold = HoldParams(reviewers=("t.tanaka@corp.example", "tanaka@corp.example"))
    with pytest.raises(ReviewError, match="does not allow the sender to release it"):
        rules.release(_entry(hold=hold), sender, NOW)


def test_self_release_lets_the_sender_approve_once() -> None:
    """With self_release an unlisted sender's own release counts as one approval."""
    sender = Actor("tanaka", PEOPLE.person("tanaka"), "os")
    stranger = Actor("sato", PEOPLE.person("sato"), "os")
    hold = HoldParams(reviewers=("boss@corp.example",), self_release=True, approvals_required=2)
    approved = rules.release(_entry(hold=hold, auth_user=None), sender, NOW)
    assert approved.entry.approvals == ("tanaka",)
    with pytest.raises(ReviewError, match="already approved"):
        rules.release(approved.entry, sender, NOW)
    with pytest.raises(ReviewError, match="not listed"):
        rules.release(approved.entry, stranger, NOW)
    assert rules.release(approved.entry, BOSS, NOW).entry.state == "released"


def test_cancel_is_the_senders_or_an_admins() -> None:
    """Another reviewer cannot cancel delayed mail; the sender and an admin can."""
    delayed = _entry("delayed")
    with pytest.raises(ReviewError, match=r"only the sender .* or an admin can cancel"):
        rules.cancel(delayed, BOSS, NOW)
    by_sender = rules.cancel(delayed, actor("tanaka"), NOW).entry
    assert (by_sender.state, by_sender.reason) == ("cancelled", "cancelled by the sender")
    by_admin = rules.cancel(delayed, root().acting_for("kacho"), NOW)
    assert (by_admin.entry.reason, by_admin.actor) == (
        "cancelled by admin root",
        "kacho, by admin root",
    )
    with pytest.raises(ReviewError, match="held, not delayed"):
        rules.cancel(_entry(), actor("tanaka"), NOW)


def test_delayed_mail_is_sent_early_by_its_sender_or_a_reviewer_only() -> None:
    """Send-now: the sender, a reviewer or an admin; a listed sender who did not send it is
    refused; reject of delayed mail is for reviewers and admins."""
    delayed = _entry("delayed")
    assert rules.release(delayed, actor("tanaka"), NOW).entry.state == "released"
    assert rules.release(delayed, BOSS, NOW).entry.state == "released"
    kacho = actor("kacho", "kacho@corp.example", role="sender")
    with pytest.raises(ReviewError, match="may not send 01TEST early"):
        rules.release(delayed, kacho, NOW)
    with pytest.raises(ReviewError, match="its sender cancels it instead"):
        rules.reject(delayed, actor("tanaka", role="sender"), "oops", NOW)
    assert rules.reject(delayed, BOSS, "no", NOW).entry.state == "rejected"


def test_delete_and_purge_are_for_admins() -> None:
    """require_admin refuses a reviewer and passes root and listed admins."""
    with pytest.raises(ReviewError, match="only an admin may delete queued mail: boss is reviewer"):
        rules.require_admin(BOSS, "delete queued mail")
    rules.require_admin(root(), "delete queued mail")
    rules.require_admin(ADMIN, "purge the queue")


def test_acting_for_is_only_for_admins_and_sane_names() -> None:
    """--actor by a reviewer is refused; naming oneself is a no-op; odd names are refused."""
    with pytest.raises(ReviewError, match="--actor is for admins: you are boss \\(reviewer\\)"):
        BOSS.acting_for("random-intern")
    assert BOSS.acting_for("BOSS") is BOSS
    assert BOSS.acting_for(None) is BOSS
    with pytest.raises(ReviewError, match="short printable name"):
        root().acting_for("a\nb")
    with pytest.raises(ReviewError, match="short printable name"):
        root().acting_for("boss, by admin yamada")
    assert ADMIN.acting_for("boss").name == "boss, by admin yamada"


# ----------------------------------------------------------------------------- os_actor


def _uid(name: str) -> int:
    return pwd.getpwnam(name).pw_uid


def test_os_actor_is_the_effective_uid_not_user_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """$USER, $LOGNAME and $SUDO_USER are ignored; SUDO_UID counts only under euid 0."""
    monkeypatch.setattr(os, "geteuid", lambda: _uid("daemon"))
    env = {"USER": "boss", "LOGNAME": "boss", "SUDO_USER": "boss", "SUDO_UID": str(_uid("bin"))}
    who = os_actor(PEOPLE, environ=env)
    assert (who.login, who.verified_by, who.superuser, who.is_admin) == (
        "daemon",
        "os",
        False,
        False,
    )


def test_os_actor_under_sudo_is_the_invoking_account(monkeypatch: pytest.MonkeyPatch) -> None:
    """euid 0 with SUDO_UID: the account that ran sudo acts (not an admin by being root)."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    who = os_actor(PEOPLE, environ={"SUDO_UID": str(_uid("bin")), "SUDO_USER": "boss"})
    assert (who.login, who.verified_by, who.is_admin) == ("bin", "sudo", False)


def test_os_actor_root_is_an_admin(monkeypatch: pytest.MonkeyPatch) -> None:
    """euid 0 without sudo (or sudo from root) is root: an admin, one identity."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    for env in ({}, {"SUDO_UID": "0"}, {"SUDO_UID": "not-a-number"}):
        who = os_actor(PEOPLE, environ=env)
        assert (who.login, who.superuser, who.role, who.verified_by) == (
            "root",
            True,
            "admin",
            "os",
        )


def test_os_actor_without_an_account_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A uid the system cannot name cannot be a reviewer."""
    monkeypatch.setattr(os, "geteuid", lambda: 4_000_000_000)
    with pytest.raises(ReviewError, match="uid 4000000000 has no account name"):
        os_actor(PEOPLE, environ={})


def test_only_the_sender_asks_for_review_of_a_held_message() -> None:
    """A link in the held notice re-sends the reviewers' notice; nothing else changes."""
    sender = actor("tanaka", "tanaka@corp.example", role="sender", verified_by="link")
    held = _entry()
    decision = rules.request_review(held, sender)
    assert decision.notify == ("reviewers",) and decision.entry == held
    assert decision.details == {"by": "tanaka", "verified_by": "link"}
    with pytest.raises(ReviewError, match="only the sender"):
        rules.request_review(_entry(), actor("kacho", "kacho@corp.example", role="sender"))
    with pytest.raises(ReviewError, match="only held mail"):
        rules.request_review(_entry("delayed"), sender)
