"""Who may decide what about a queued message: pure decision functions for `Store.apply`.

Each function takes the entry as the store read it under a row lock and returns the
`Decision` to commit, or raises `ReviewError` saying why not. Because they run inside the
store's transaction, two reviewers approving at once cannot both count as the last
approval, and a release cannot race a reject.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from sendguard.errors import ReviewError
from sendguard.model import Envelope
from sendguard.queue.store import Decision, Entry, NoticeKind


def is_sender(actor: str, envelope: Envelope) -> bool:
    """True when `actor` is the message's sender: its AUTH user, its envelope sender, or (for
    a bare user name such as a Unix login) the sender's local part. Errs towards "yes", the
    safe side for self-release."""
    who = actor.strip().casefold()
    mail_from = envelope.mail_from.casefold()
    names = {mail_from, (envelope.auth_user or "").casefold()}
    if "@" not in who:
        names.add(mail_from.rpartition("@")[0])
        names.add((envelope.auth_user or "").casefold().rpartition("@")[0])
    return bool(who) and who in names - {""}


def _sender_notice(entry: Entry, kind: NoticeKind) -> tuple[NoticeKind, ...]:
    return (kind,) if entry.verdict.hold.notify_sender else ()


def release(entry: Entry, actor: str, now: dt.datetime) -> Decision:
    """Approve a held message (released once it has enough approvals) or send a delayed one now."""
    if entry.state == "delayed":
        sent = replace(entry, state="released", released_at=now, next_attempt_at=now,
                       decided_by=actor, decided_at=now)  # fmt: skip
        return Decision(sent, event="released", actor=actor, details={"early": True})
    if entry.state != "held":
        raise ReviewError(f"{entry.id} is {entry.state}; only held or delayed mail can be released")
    hold = entry.verdict.hold
    if is_sender(actor, entry.envelope) and not hold.self_release:
        reviewers = ", ".join(hold.reviewers) or "a reviewer"
        raise ReviewError(
            f"{actor} sent {entry.id} and rule {entry.verdict.rule_id or '-'} does not allow "
            f"the sender to release it; ask {reviewers}"
        )
    approvals = entry.approvals
    if actor.casefold() in (a.casefold() for a in approvals):
        missing = hold.approvals_required - len(approvals)
        raise ReviewError(
            f"{actor} has already approved {entry.id}; {missing} more approval(s) "
            "from other reviewers needed"
        )
    approvals = (*approvals, actor)
    details = {"approvals": list(approvals), "required": hold.approvals_required}
    if len(approvals) < hold.approvals_required:
        approved = replace(entry, approvals=approvals)
        return Decision(approved, event="approved", actor=actor, details=details)
    released = replace(entry, state="released", approvals=approvals, released_at=now,
                       next_attempt_at=now, decided_by=actor, decided_at=now)  # fmt: skip
    return Decision(released, event="released", actor=actor, details=details,
                    notify=_sender_notice(entry, "released"))  # fmt: skip


def reject(entry: Entry, actor: str, reason: str, now: dt.datetime) -> Decision:
    """Refuse a held (or delayed) message; the sender is told the reason."""
    if not reason.strip():
        raise ReviewError("a reason is required to reject (it is sent to the sender)")
    if entry.state not in ("held", "delayed"):
        raise ReviewError(f"{entry.id} is {entry.state}; only held or delayed mail can be rejected")
    rejected = replace(entry, state="rejected", reason=reason.strip(), decided_by=actor,
                       decided_at=now)  # fmt: skip
    return Decision(rejected, event="rejected", actor=actor, details={"reason": reason.strip()},
                    notify=_sender_notice(entry, "rejected"))  # fmt: skip


def cancel(entry: Entry, actor: str, now: dt.datetime) -> Decision:
    """The sender withdraws its own delayed message before it goes out."""
    if entry.state == "held":
        raise ReviewError(f"{entry.id} is held, not delayed; ask a reviewer to reject it")
    if entry.state != "delayed":
        raise ReviewError(f"{entry.id} is {entry.state}; only delayed mail can be cancelled")
    if not is_sender(actor, entry.envelope):
        raise ReviewError(
            f"only the sender ({entry.envelope.mail_from or '<>'}) can cancel {entry.id}"
        )
    cancelled = replace(entry, state="cancelled", decided_by=actor, decided_at=now,
                        reason="cancelled by the sender")  # fmt: skip
    return Decision(cancelled, event="cancelled", actor=actor)
