"""The queue store interface: held and delayed mail, notifications to send, the audit log.

The pipeline enqueues a DELAY/HOLD verdict here and answers 250 only after `Store.enqueue`
returns (the write is committed durably by then). The worker claims due entries, the review
service decides on held ones; both change an entry only through `Store.apply`, which runs a
pure decision function under a row lock and writes the new state, its audit event and any
notifications in one transaction. Two backends implement it: `queue.sqlite` (one node) and
`queue.postgres` (several nodes sharing one queue); `queue.backends.open_store` opens one.
"""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from sendguard.entry import Decide, Decision, Entry, Notice, State
from sendguard.errors import Conflict, StoreError
from sendguard.model import Envelope, Verdict


class CorruptEntry(StoreError):
    """A stored row cannot be decoded: bad JSON, an unknown blob schema version, a message
    sealed with another key (or none configured), a damaged ciphertext.

    The message says what failed, never what the row holds (it may be personal data).
    """

    def __init__(self, queue_id: str, problem: str, stand_in: Entry | None = None) -> None:
        super().__init__(f"queue entry {queue_id} cannot be read: {problem}")
        self.queue_id = queue_id
        self.problem = problem
        self.stand_in = stand_in
        """What can still be shown of the row (state ``corrupt``), when the store had it."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit event; `hash` chains it to the one before (`prev_hash`)."""

    seq: int
    at: dt.datetime
    event: str
    actor: str
    queue_id: str | None
    transaction_id: str | None
    details: str
    """Canonical JSON of the details, exactly as hashed."""
    prev_hash: str
    hash: str
    v: int = 1
    """1: unkeyed SHA-256 (written before migration 4, or by a store opened without an audit
    key on a chain that has no keyed record yet); 2: HMAC-SHA256 with the audit key."""
    key_id: str | None = None
    """For ``v = 2``: which audit key made the HMAC (`AuditKey.key_id`), to tell a wrong key
    from a changed record."""


@dataclass(frozen=True, slots=True)
class AuditHead:
    """The newest record of the chain: what an anchor records and `verify --head` checks."""

    seq: int
    hash: str
    at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditCheck:
    """Result of `Store.verify_audit`."""

    ok: bool
    records: int
    bad_seq: int | None = None
    problem: str = ""
    keyed_from: int | None = None
    """Seq of the first keyed (HMAC) record; records before it are legacy, unkeyed."""
    anchors: int = 0
    """How many anchored heads were checked and found in the chain."""


class Store(Protocol):
    """Durable queue; every method is async and every write is committed before it returns."""

    migrated_from: int | None
    """The schema version found when opening migrated the store; None if it was current."""

    async def enqueue(
        self,
        *,
        envelope: Envelope,
        data: bytes,
        verdict: Verdict,
        state: Literal["held", "delayed", "released"],
        release_at: dt.datetime | None = None,
        delivered_to: tuple[str, ...] = (),
        last_error: str = "",
    ) -> Entry:
        """Store a held or delayed message (and its notices and audit event); return it.

        ``released`` with `delivered_to` is the rest of a live split delivery whose first
        copies went: the worker sends the copies still missing (`last_error` says why the
        live attempt stopped)."""
        ...

    async def audit(
        self,
        event: str,
        *,
        actor: str,
        queue_id: str | None = None,
        transaction_id: str | None = None,
        details: Mapping[str, object],
    ) -> None:
        """Append one event to the hash-chained audit log."""
        ...

    async def get(self, queue_id: str, *, with_data: bool = True) -> Entry:
        """One entry; `NotFound` when there is none; `CorruptEntry` when its row cannot be
        decoded (the error carries a ``corrupt`` stand-in to show)."""
        ...

    async def list(
        self,
        *,
        states: Collection[State] = (),
        due_before: dt.datetime | None = None,
        expires_before: dt.datetime | None = None,
        updated_before: dt.datetime | None = None,
        limit: int | None = None,
    ) -> builtins.list[Entry]:
        """Entries (without data), oldest first, filtered by state and times; a row that
        cannot be decoded is listed as a stand-in in state ``corrupt`` (no envelope or verdict,
        the problem in `reason`), whatever its stored state."""
        ...

    async def apply(self, queue_id: str, decide: Decide) -> Entry:
        """Run `decide` under a row lock and commit its decision atomically. A row that
        cannot be decoded is moved to ``corrupt`` instead and `CorruptEntry` raised."""
        ...

    async def transition(
        self,
        queue_id: str,
        *,
        expected: State | Collection[State],
        to: State,
        actor: str,
        event: str,
        details: Mapping[str, object] | None = None,
    ) -> Entry:
        """Compare-and-set the state; `Conflict` when it is not `expected`."""
        ...

    async def claim_due(
        self, limit: int, node_id: str, *, now: dt.datetime, lease: float = 900.0
    ) -> builtins.list[Entry]:
        """Claim released entries due (``next_attempt_at <= now``) and deliveries whose lease
        has run out, for this node. Leases are set and compared on the database's clock, not
        `now`: nodes whose clocks differ never see a live claim as expired. Rows that cannot
        be decoded are moved to ``corrupt`` in the same transaction and not returned."""
        ...

    async def renew_claim(self, queue_id: str, node_id: str, *, lease: float) -> bool:
        """Extend this node's claim on a delivery by `lease` seconds of the database's clock;
        False when the entry is no longer this node's (taken over, or changed)."""
        ...

    async def quarantine(self, queue_id: str, problem: str) -> bool:
        """Move an entry that cannot be decoded to ``corrupt`` with a ``corrupt`` audit event;
        False when it already was (nothing written)."""
        ...

    async def recover(self, queue_id: str, *, actor: str) -> Entry:
        """Put a ``corrupt`` entry that decodes again back where it was (a delivery back to
        ``released``); `CorruptEntry` while it still cannot be read."""
        ...

    async def claim_notices(
        self, limit: int, node_id: str, *, now: dt.datetime, lease: float = 300.0
    ) -> builtins.list[Notice]:
        """Claim outbox notices due for sending (leases on the database's clock)."""
        ...

    async def finish_notice(
        self, notice_id: int, *, retry_at: dt.datetime | None = None, error: str = ""
    ) -> None:
        """Drop a sent (or abandoned) notice, or schedule its retry at `retry_at`."""
        ...

    async def delete(self, queue_id: str, *, actor: str, event: str = "deleted") -> None:
        """Remove an entry (not while delivering) and audit it."""
        ...

    async def purge(self, *, before: dt.datetime, actor: str) -> int:
        """Remove finished entries last changed before `before`; return how many."""
        ...

    async def audit_records(
        self, *, after_seq: int = 0, since: dt.datetime | None = None, limit: int = 1000
    ) -> builtins.list[AuditRecord]:
        """Audit records in chain order, after `after_seq` and not before `since`."""
        ...

    async def verify_audit(self, heads: Sequence[AuditHead] = ()) -> AuditCheck:
        """Recompute the whole hash chain and report the first broken record; every anchored
        head in `heads` must be in it (a head past the end means the log was truncated)."""
        ...

    async def audit_head(self) -> AuditHead | None:
        """The newest audit record's seq and hash (None for an empty log)."""
        ...

    async def seal_chain(self) -> bool:
        """With an audit key, make the newest record keyed (an ``audit_keyed`` record after a
        legacy, unkeyed chain); True if it appended one."""
        ...

    async def depth(self) -> tuple[dict[str, int], dt.datetime | None]:
        """Entries by state, and when the oldest held entry was queued (metrics, readiness)."""
        ...

    async def schema_version(self) -> int:
        """The migration version the database is at."""
        ...

    async def use_once(
        self, key: str, *, queue_id: str, action: str, expires_at: dt.datetime
    ) -> bool:
        """Record that `key` happened, once across every node: False when it was recorded
        before. Used for a signed link's nonce (a replay changes nothing) and for a hold's
        reminder and escalation (sent once). Keys past `expires_at` are forgotten (a link
        no longer verifies by then; a hold has expired)."""
        ...

    async def close(self) -> None:
        """Release connections; further calls fail."""
        ...


def simple_transition(
    *,
    expected: State | Collection[State],
    to: State,
    actor: str,
    event: str,
    details: Mapping[str, object] | None,
    now: dt.datetime,
) -> Decide:
    """The decision function behind `Store.transition`: refuse unless the state matches."""
    allowed = (expected,) if isinstance(expected, str) else tuple(expected)

    def decide(entry: Entry) -> Decision:
        if entry.state not in allowed:
            raise Conflict(f"queue entry {entry.id} is {entry.state}, not {' or '.join(allowed)}")
        changed = replace(entry, state=to, decided_by=actor, decided_at=now)
        return Decision(changed, event=event, actor=actor, details=details or {})

    return decide


def utcnow() -> dt.datetime:
    """The current time, aware UTC (the default clock)."""
    return dt.datetime.now(dt.UTC)


Clock = Callable[[], dt.datetime]
