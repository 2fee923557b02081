"""A queued message: its value types and the one table of the states it moves through.

Held and delayed mail becomes an `Entry` in the queue store (`sendguard.queue`); the review
rules (`sendguard.review.rules`), the worker (`sendguard.queue.worker`) and the notifier
(`sendguard.notify`) read and decide on it. These types live here, below all of them, so
notify and review need no part of the queue to name an entry.

Every change of state goes through `MOVES`: the stores refuse a decision whose move is not
in it (`check_move`, in the same transaction); the worker and the review rules make every change
of state through `move`, which also asks who may make it, and take the states an action
starts from out of it (`sources`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from sendguard.errors import Conflict
from sendguard.model import Envelope, Verdict

State = Literal[
    "held",
    "delayed",
    "released",
    "delivering",
    "delivered",
    "rejected",
    "cancelled",
    "expired",
    "failed",
    "corrupt",
]
STATES: tuple[State, ...] = get_args(State)
"""Every state, in the order above (the Literal is the one list)."""
FINISHED: tuple[State, ...] = ("delivered", "rejected", "cancelled", "expired", "failed")
"""States nothing moves out of; entries in them may be purged.

``corrupt`` is not among them: an entry that cannot be decoded waits for an admin, who
inspects it (`queue show`), fixes the cause and runs `queue recover`, or deletes it."""

NoticeKind = Literal[
    "held",
    "delayed",
    "released",
    "rejected",
    "expired",
    "reviewers",
    "bounce",
    "reminder",
    "escalation",
]
"""What a queued notification tells: to the sender (most kinds), the reviewers
(``reviewers``, ``reminder``), the hold's escalation list (``escalation``), or a DSN back to
the sender (``bounce``)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One held or delayed message with everything needed to review and deliver it."""

    id: str
    state: State
    envelope: Envelope
    data: bytes
    """The original bytes (decrypted); ``b""`` when read without data (listing)."""
    verdict: Verdict
    created_at: dt.datetime
    updated_at: dt.datetime
    size: int
    """Length of the original bytes, also known when `data` was not read."""
    release_at: dt.datetime | None = None
    """When a delayed message goes out by itself."""
    expires_at: dt.datetime | None = None
    """When a hold nobody decided expires (business time)."""
    released_at: dt.datetime | None = None
    """When it entered ``released``; retries give up counting from here."""
    attempts: int = 0
    next_attempt_at: dt.datetime | None = None
    last_error: str = ""
    """The upstream's last refusal, e.g. ``451 4.3.0 try later``."""
    approvals: tuple[str, ...] = ()
    decided_by: str | None = None
    decided_at: dt.datetime | None = None
    reason: str = ""
    """The reviewer's reason for a reject, or why the system ended it."""
    claimed_by: str | None = None
    claim_until: dt.datetime | None = None
    delivered_to: tuple[str, ...] = ()
    """Recipients whose copy the upstream already took (a split delivery in progress)."""
    quarantined_from: State | None = None
    """For a ``corrupt`` entry: the state it was in when it could not be decoded."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What `Store.apply` writes: the changed entry, its audit event and notifications."""

    entry: Entry
    event: str
    actor: str
    details: Mapping[str, object] = field(default_factory=dict)
    notify: tuple[NoticeKind, ...] = ()


Decide = Callable[[Entry], Decision]
"""Pure function from the current entry to the decision; raise to change nothing."""


@dataclass(frozen=True, slots=True)
class Notice:
    """A notification or bounce waiting to be sent (an outbox row)."""

    id: int
    queue_id: str
    kind: NoticeKind
    attempts: int
    created_at: dt.datetime


Mover = Literal["review", "worker", "store"]
"""Who makes a move: a person through the review rules, the queue worker, or the store
itself (claims, quarantine and recovery of entries that cannot be decoded)."""


@dataclass(frozen=True, slots=True)
class Move:
    """One allowed change of state and who makes it."""

    source: State
    target: State
    by: Mover
    why: str


MOVES: tuple[Move, ...] = (
    Move("held", "released", "review", "approved by enough reviewers (or its sender)"),
    Move("held", "rejected", "review", "a reviewer refused it"),
    Move("held", "expired", "worker", "nobody decided before its deadline"),
    Move("delayed", "released", "review", "its sender (or a reviewer) sends it early"),
    Move("delayed", "released", "worker", "its delay is over"),
    Move("delayed", "rejected", "review", "a reviewer refused it"),
    Move("delayed", "cancelled", "review", "its sender (or an admin) withdrew it"),
    Move("released", "delivering", "store", "a worker claimed it"),
    Move("delivering", "delivered", "worker", "the upstream took every copy"),
    Move("delivering", "released", "worker", "a temporary failure: retried later"),
    Move("delivering", "failed", "worker", "a permanent failure, or retries gave up"),
    *(Move(s, "corrupt", "store", "its row cannot be decoded") for s in STATES if s != "corrupt"),
    # A cut-off delivery is recovered to ``released`` (due at once), never to ``delivering``.
    *(
        Move("corrupt", s, "store", "recovered by an admin")
        for s in STATES
        if s not in ("corrupt", "delivering")
    ),
)
"""Every allowed change of state; anything else is refused by the stores. A decision that
keeps the state (an approval short of the number required, a retry rescheduled, a lapsed
claim taken over) is not a move and always allowed."""

_ALLOWED: frozenset[tuple[State, State]] = frozenset((m.source, m.target) for m in MOVES)


class IllegalMove(Conflict):
    """A decision would move an entry between states `MOVES` does not connect."""


def allowed(source: State, target: State) -> bool:
    """Whether an entry may go from `source` to `target` (staying put is always allowed)."""
    return source == target or (source, target) in _ALLOWED


def check_move(queue_id: str, source: State, target: State) -> None:
    """Raise `IllegalMove` unless `MOVES` allows `source` → `target`."""
    if not allowed(source, target):
        raise IllegalMove(f"queue entry {queue_id} cannot go from {source} to {target}")


def move(entry: Entry, target: State, by: Mover, **changes: Any) -> Entry:
    """`entry` in state `target`, with `changes`: how the worker and the review rules change
    a state. `IllegalMove` unless `MOVES` lets `by` make that move (stricter than the
    stores' `check_move`, which does not ask who)."""
    if not any(m.source == entry.state and m.target == target and m.by == by for m in MOVES):
        raise IllegalMove(
            f"queue entry {entry.id}: {by} cannot move it from {entry.state} to {target}"
        )
    return replace(entry, state=target, **changes)


def sources(target: State, by: Mover) -> tuple[State, ...]:
    """The states from which `by` may move an entry to `target`, in `STATES` order."""
    found = {m.source for m in MOVES if m.target == target and m.by == by}
    return tuple(s for s in STATES if s in found)
