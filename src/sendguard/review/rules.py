"""Who may decide what about a queued message: pure decision functions for `Store.apply`.

Each function takes the entry as the store read it under a row lock and the verified
`Actor` (`sendguard.review.actor`), and returns the `Decision` to commit, or raises
`ReviewError` saying why not. Because they run inside the store's transaction, two
reviewers approving at once cannot both count as the last approval, and a release cannot
race a reject. The CLI uses them now and the web console will use them unchanged.

The rules:

- **Reviewers are listed.** A held message's reviewers are its rule's ``reviewers``
  (stored with the entry), else the configured default (``notify.reviewers``, who also get
  the notice). An actor may approve or reject it when it is an admin, or a person listed
  in ``[people]`` with role ``reviewer`` one of whose addresses is among those reviewers.
- **Approvals count identities.** Each approval is the actor's verified login; the same
  login twice is refused, so an admin acting "for" different names still counts once.
- **No self-release.** The sender — the entry's AUTH login, or a person who may send as
  its envelope sender — never approves its own mail unless the rule sets
  ``self_release``; then its approval counts like a reviewer's.
- **Send now.** A delayed message may be released early by its sender, a reviewer or an
  admin; **cancel** is the sender's (or an admin's); delayed mail is rejected by a
  reviewer or an admin.
- **Delete and purge** (no notice to anyone) are for admins.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace

from sendguard.entry import Decision, Entry, NoticeKind, State, move, sources
from sendguard.errors import ReviewError
from sendguard.model import Envelope
from sendguard.policy.schema import normalise_address
from sendguard.review.actor import Actor


def _address(value: str) -> str:
    try:
        return normalise_address(value)
    except ValueError:
        return value.strip().casefold()


def is_sender(actor: Actor, envelope: Envelope) -> bool:
    """True when `actor` sent the message: it authenticated as the entry's AUTH user, or
    its person may send as the envelope sender (or as an AUTH user that is an address)."""
    auth = (envelope.auth_user or "").strip().casefold()
    if auth and auth == actor.login:
        return True
    claimed = [a for a in (envelope.mail_from, auth) if "@" in a]
    return any(actor.person.may_send_as(_address(a)) for a in claimed)


def reviewers_of(entry: Entry, default: Sequence[str] = ()) -> tuple[str, ...]:
    """The rule's reviewers and its escalation list (``escalate_to``: told later, but
    entitled to decide all along), else the configured default (who get the notices)."""
    hold = entry.verdict.hold
    return (*hold.reviewers, *hold.escalate_to) or tuple(default)


def may_review(actor: Actor, reviewers: Sequence[str]) -> bool:
    """An admin, or a listed reviewer one of whose addresses is among `reviewers`."""
    if actor.is_admin:
        return True
    return actor.person.listed and actor.role == "reviewer" and actor.person.addresses_in(reviewers)


def _not_a_reviewer(actor: Actor, entry: Entry, reviewers: Sequence[str]) -> str:
    rule = entry.verdict.rule_id or "-"
    who = ", ".join(reviewers) or "none configured: only an admin can decide"
    if not actor.person.listed:
        why = f"{actor.login} is not listed in the policy's [people]"
    elif actor.role != "reviewer":
        why = f"{actor.login} is listed as a {actor.role}, not a reviewer"
    else:
        why = f"none of {actor.login}'s addresses is among the reviewers of rule {rule}"
    return f"{why}; {entry.id} needs a reviewer of rule {rule} ({who}) or an admin"


def require_reviewer(actor: Actor, entry: Entry, reviewers: Sequence[str]) -> None:
    """Raise `ReviewError` unless `actor` may review `entry` (see `may_review`)."""
    if not may_review(actor, reviewers):
        raise ReviewError(_not_a_reviewer(actor, entry, reviewers))


def require_admin(actor: Actor, what: str) -> None:
    """Raise `ReviewError` unless `actor` is an admin; `what` names the action."""
    if not actor.is_admin:
        raise ReviewError(
            f"only an admin may {what}: {actor.login} is {actor.role} "
            f'(an admin is listed with [people.<login>] role = "admin")'
        )


def _by(actor: Actor) -> dict[str, object]:
    """Who decided, for the audit details: the verified login and how it was verified."""
    return {"by": actor.login, "verified_by": actor.verified_by}


def _require_move(entry: Entry, target: State, done: str) -> None:
    """Refuse, naming the states it starts from, a review action the state table
    (`sendguard.entry.MOVES`) does not allow from the entry's state."""
    starts = sources(target, "review")
    if entry.state not in starts:
        raise ReviewError(
            f"{entry.id} is {entry.state}; only {' or '.join(starts)} mail can be {done}"
        )


def _sender_notice(entry: Entry, kind: NoticeKind) -> tuple[NoticeKind, ...]:
    return (kind,) if entry.verdict.hold.notify_sender else ()


def release(
    entry: Entry, actor: Actor, now: dt.datetime, default_reviewers: Sequence[str] = ()
) -> Decision:
    """Approve a held message (released once it has enough approvals) or send a delayed one now."""
    if entry.state == "delayed":
        if not (is_sender(actor, entry.envelope) or actor.role in ("reviewer", "admin")):
            raise ReviewError(
                f"{actor.login} may not send {entry.id} early: only its sender "
                f"({entry.envelope.mail_from or '<>'}), a reviewer or an admin may"
            )
        sent = move(entry, "released", "review", released_at=now, next_attempt_at=now,
                    decided_by=actor.name, decided_at=now)  # fmt: skip
        return Decision(sent, event="released", actor=actor.name,
                        details={"early": True, **_by(actor)})  # fmt: skip
    _require_move(entry, "released", "released")
    hold = entry.verdict.hold
    reviewers = reviewers_of(entry, default_reviewers)
    if is_sender(actor, entry.envelope):
        if not hold.self_release:
            raise ReviewError(
                f"{actor.login} sent {entry.id} and rule {entry.verdict.rule_id or '-'} does not "
                f"allow the sender to release it; ask {', '.join(reviewers) or 'an admin'}"
            )
    else:
        require_reviewer(actor, entry, reviewers)
    approvals = entry.approvals
    if actor.login in (a.casefold() for a in approvals):
        missing = hold.approvals_required - len(approvals)
        raise ReviewError(
            f"{actor.login} has already approved {entry.id}; {missing} more approval(s) "
            "from other reviewers needed"
        )
    approvals = (*approvals, actor.login)
    details = {"approvals": list(approvals), "required": hold.approvals_required, **_by(actor)}
    if len(approvals) < hold.approvals_required:
        approved = replace(entry, approvals=approvals)
        return Decision(approved, event="approved", actor=actor.name, details=details)
    released = move(entry, "released", "review", approvals=approvals, released_at=now,
                    next_attempt_at=now, decided_by=actor.name, decided_at=now)  # fmt: skip
    return Decision(released, event="released", actor=actor.name, details=details,
                    notify=_sender_notice(entry, "released"))  # fmt: skip


def reject(
    entry: Entry,
    actor: Actor,
    reason: str,
    now: dt.datetime,
    default_reviewers: Sequence[str] = (),
) -> Decision:
    """Refuse a held (or delayed) message; the sender is told the reason."""
    if not reason.strip():
        raise ReviewError("a reason is required to reject (it is sent to the sender)")
    if entry.state == "held":
        require_reviewer(actor, entry, reviewers_of(entry, default_reviewers))
    elif entry.state == "delayed":
        if actor.role not in ("reviewer", "admin"):
            raise ReviewError(
                f"{actor.login} may not reject {entry.id}: delayed mail is rejected by a "
                "reviewer or an admin (its sender cancels it instead)"
            )
    else:
        _require_move(entry, "rejected", "rejected")
    rejected = move(entry, "rejected", "review", reason=reason.strip(), decided_by=actor.name,
                    decided_at=now)  # fmt: skip
    return Decision(rejected, event="rejected", actor=actor.name,
                    details={"reason": reason.strip(), **_by(actor)},
                    notify=_sender_notice(entry, "rejected"))  # fmt: skip


def cancel(entry: Entry, actor: Actor, now: dt.datetime) -> Decision:
    """The sender (or an admin) withdraws a delayed message before it goes out."""
    if entry.state == "held":
        raise ReviewError(f"{entry.id} is held, not delayed; ask a reviewer to reject it")
    _require_move(entry, "cancelled", "cancelled")
    sender = is_sender(actor, entry.envelope)
    if not sender and not actor.is_admin:
        raise ReviewError(
            f"only the sender ({entry.envelope.mail_from or '<>'}) or an admin can cancel "
            f"{entry.id}; {actor.login} is neither"
        )
    reason = "cancelled by the sender" if sender else f"cancelled by admin {actor.login}"
    cancelled = move(entry, "cancelled", "review", decided_by=actor.name, decided_at=now,
                     reason=reason)  # fmt: skip
    return Decision(cancelled, event="cancelled", actor=actor.name, details=_by(actor))


def request_review(entry: Entry, actor: Actor) -> Decision:
    """The sender of a held message asks its reviewers (again) to decide: the reviewers'
    notice goes out once more; nothing else changes."""
    if entry.state != "held":
        raise ReviewError(f"{entry.id} is {entry.state}; only held mail waits for a review")
    if not (is_sender(actor, entry.envelope) or actor.is_admin):
        raise ReviewError(f"only the sender of {entry.id} or an admin may ask for its review")
    return Decision(entry, event="review_requested", actor=actor.name, details=_by(actor),
                    notify=("reviewers",))  # fmt: skip
