"""What both store backends share: building a new entry, its first notices, CAS and verify.

`queue.sqlite` and `queue.postgres` subclass `StoreBase` and supply only the SQL.
"""

from __future__ import annotations

import asyncio
import builtins
import datetime as dt
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, cast, get_args

from sendguard.entry import Decide, Decision, Entry, Notice, NoticeKind, State, check_move
from sendguard.errors import Conflict, StoreError
from sendguard.model import Envelope, Verdict
from sendguard.queue.auditkey import AuditKey
from sendguard.queue.calendar import BusinessCalendar
from sendguard.queue.codec import (
    GENESIS,
    AuditKeyError,
    ChainWalk,
    Sealer,
    aware,
    canonical_details,
    chain_hash,
    corrupt_stand_in,
    dump_approvals,
    entry_from_row,
    keyed_hash,
    new_queue_id,
)
from sendguard.queue.settings import QueueSettings
from sendguard.queue.store import (
    AuditCheck,
    AuditHead,
    AuditRecord,
    Clock,
    CorruptEntry,
    simple_transition,
)

UPDATE_COLUMNS = (
    "state",
    "updated_at",
    "release_at",
    "expires_at",
    "released_at",
    "attempts",
    "next_attempt_at",
    "last_error",
    "approvals",
    "decided_by",
    "decided_at",
    "reason",
    "claimed_by",
    "claim_until",
    "delivered_to",
    "quarantined_from",
)
"""Columns `Store.apply` may change; identity, envelope, verdict and bytes never change."""


@dataclass(frozen=True, slots=True)
class PendingAudit:
    """One audit event waiting for its (group) commit."""

    event: str
    actor: str
    queue_id: str | None
    transaction_id: str | None
    details: Mapping[str, object]
    at: dt.datetime


AUDIT_BATCH_MAX = 500
"""At most this many audit events in one group commit."""


class StoreBase:
    """Shared behaviour; subclasses implement `apply`, `audit_records`, `_write_audits` and
    `_last_audit`."""

    def __init__(self, *, key: bytes | None, settings: QueueSettings, clock: Clock) -> None:
        self._sealer = Sealer(key)
        self._settings = settings
        self._calendar = BusinessCalendar.from_settings(settings)
        self._clock = clock
        self._audit_key: AuditKey | None = None
        self.migrated_from: int | None = None
        """The schema version found when opening migrated the store; None if it was current."""
        self.group_commit = True
        self._audit_queue: list[tuple[PendingAudit, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    def set_audit(self, audit_key: AuditKey | None, *, group_commit: bool = True) -> None:
        """Key the audit chain (HMAC) and choose group commit (`open_store` calls this)."""
        self._audit_key = audit_key
        self.group_commit = group_commit

    # ------------------------------------------------------------------ audit log

    def _audit_values(
        self, last: tuple[Any, ...] | None, pending: PendingAudit
    ) -> tuple[object, ...]:
        """The 11 column values of the record after `last` (seq, hash, v of the newest one).

        Keyed (v 2) when the store has the audit key; unkeyed (v 1) only while the chain has
        no keyed record, so a process without the key can never weaken a keyed chain.
        """
        seq, prev, prev_v = (
            (int(last[0]) + 1, str(last[1]), int(last[2])) if last else (1, GENESIS, 1)
        )
        text = canonical_details(pending.details)
        fields = {
            "seq": seq,
            "at": pending.at,
            "event": pending.event,
            "actor": pending.actor,
            "queue_id": pending.queue_id,
            "transaction_id": pending.transaction_id,
            "details": text,
        }
        key = self._audit_key
        if key is not None:
            digest = keyed_hash(key, prev, **fields)  # type: ignore[arg-type]
            v, key_id = 2, key.key_id
        elif prev_v >= 2:
            raise AuditKeyError(
                "the audit log is keyed: this process has no audit key to extend it; set"
                " SENDGUARD_AUDIT_KEY to the relay's key file"
            )
        else:
            digest = chain_hash(prev, **fields)  # type: ignore[arg-type]
            v, key_id = 1, None
        return (
            seq, pending.at, pending.event, pending.actor, pending.queue_id,
            pending.transaction_id, text, prev, digest, v, key_id,
        )  # fmt: skip

    async def _write_audits(self, batch: Sequence[PendingAudit]) -> None:
        """Implemented by each backend: append `batch` in order, in one transaction."""
        raise NotImplementedError

    async def _last_audit(self) -> tuple[Any, ...] | None:
        """Implemented by each backend: (seq, hash, v, at) of the newest record."""
        raise NotImplementedError

    async def audit(
        self,
        event: str,
        *,
        actor: str,
        queue_id: str | None = None,
        transaction_id: str | None = None,
        details: Mapping[str, object],
    ) -> None:
        """Append one event to the chain; returns once it is committed durably.

        Group commit: events that arrive while a commit is in progress wait for the next one
        and share it, so N concurrent transactions cost one fsync, not N.
        """
        pending = PendingAudit(event, actor, queue_id, transaction_id, dict(details), self._clock())
        if not self.group_commit:
            await self._write_audits([pending])
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._audit_queue.append((pending, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_audits(), name="audit-group-commit")
        await future

    async def _flush_audits(self) -> None:
        while self._audit_queue:
            batch = self._audit_queue[:AUDIT_BATCH_MAX]
            del self._audit_queue[: len(batch)]
            try:
                await self._write_audits([pending for pending, _ in batch])
            # Every waiter learns that its record is not durable, whatever went wrong.
            except Exception as exc:  # noqa: BLE001
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            except BaseException:  # cancelled (loop shutting down): nobody may wait forever
                stopped = StoreError("audit commit interrupted; the record may not be durable")
                for _, future in batch + self._audit_queue:
                    if not future.done():
                        future.set_exception(stopped)
                self._audit_queue.clear()
                raise
            else:
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)

    async def _drain_audits(self) -> None:
        """Let the group commit in progress finish (before closing)."""
        if self._flusher is not None and not self._flusher.done():
            await asyncio.gather(self._flusher, return_exceptions=True)

    async def audit_head(self) -> AuditHead | None:
        """The newest audit record's seq and hash (None for an empty log)."""
        last = await self._last_audit()
        if last is None:
            return None
        return AuditHead(int(last[0]), str(last[1]), aware(last[3]))

    async def seal_chain(self) -> bool:
        """With an audit key: if the newest record is unkeyed (a chain from before migration
        3), append a keyed ``audit_keyed`` record, so later records extend a keyed chain and
        `verify` can require the newest record to be keyed. True if it appended one."""
        if self._audit_key is None:
            return False
        last = await self._last_audit()
        if last is None or int(last[2]) >= 2:
            return False
        details = {"key_id": self._audit_key.key_id, "unkeyed_records": int(last[0])}
        await self.audit("audit_keyed", actor="system", details=details)
        return True

    def _new_entry(
        self,
        *,
        envelope: Envelope,
        data: bytes,
        verdict: Verdict,
        state: Literal["held", "delayed", "released"],
        release_at: dt.datetime | None,
        delivered_to: tuple[str, ...] = (),
        last_error: str = "",
    ) -> Entry:
        """The entry as first stored, with its release or expiry time worked out."""
        now = self._clock()
        expires_at = None
        if state == "released":  # the rest of a live split delivery: due at once
            return Entry(
                id=new_queue_id(now), state=state, envelope=envelope, data=data,
                verdict=verdict, created_at=now, updated_at=now, size=len(data),
                released_at=now, next_attempt_at=now, last_error=last_error[:500],
                delivered_to=delivered_to,
            )  # fmt: skip
        if state == "delayed" and release_at is None:
            release_at = now + dt.timedelta(minutes=verdict.delay_minutes)
        if state == "held":
            hours = verdict.hold.expire_hours or self._settings.hold_expire_hours
            expires_at = self._calendar.add_business_hours(now, hours)
        return Entry(
            id=new_queue_id(now),
            state=state,
            envelope=envelope,
            data=data,
            verdict=verdict,
            created_at=now,
            updated_at=now,
            size=len(data),
            release_at=release_at,
            expires_at=expires_at,
        )

    @staticmethod
    def _queued_details(entry: Entry) -> dict[str, object]:
        """The "queued" audit event: the verdict record for held/delayed mail (same keys as
        the relay's "verdict" event, plus the queue state and size)."""
        verdict = entry.verdict
        return {
            "state": entry.state,
            "action": verdict.action.label,
            "rule": verdict.rule_id,
            "reason": verdict.reason,
            "warned": list(verdict.warned),
            "mail_from": entry.envelope.mail_from,
            "rcpt_count": len(entry.envelope.rcpt_tos),
            "findings": [f"{f.detector}/{f.code}:{f.count}" for f in verdict.trace.findings],
            "policy_version": verdict.trace.policy_version,
            "size": entry.size,
        }

    @staticmethod
    def _first_notices(entry: Entry) -> tuple[NoticeKind, ...]:
        """Notifications a new entry asks for, per the rule's hold parameters."""
        hold = entry.verdict.hold
        kinds: list[NoticeKind] = []
        if entry.state not in ("held", "delayed"):
            return ()
        if hold.notify_sender and entry.envelope.mail_from:
            kinds.append("held" if entry.state == "held" else "delayed")
        if entry.state == "held" and hold.notify_reviewers:
            kinds.append("reviewers")
        return tuple(kinds)

    def _decode(self, row: tuple[Any, ...], with_data: bool) -> Entry:
        """The entry of a row (`ENTRY_COLUMNS`, then ``data``); `CorruptEntry` carrying a
        stand-in when it cannot be decoded."""
        try:
            data = self._sealer.open(str(row[0]), row[-1]) if with_data else b""
            return entry_from_row(row, data)
        except CorruptEntry as exc:
            stand_in = corrupt_stand_in(row, exc.problem)
            raise CorruptEntry(exc.queue_id, exc.problem, stand_in) from exc

    def _listed(self, row: tuple[Any, ...]) -> Entry:
        """A row as `list` shows it: the entry, or its ``corrupt`` stand-in."""
        try:
            return entry_from_row(row)
        except CorruptEntry as exc:
            return corrupt_stand_in(row, exc.problem)

    async def apply(self, queue_id: str, decide: Decide) -> Entry:
        """Implemented by each backend."""
        raise NotImplementedError

    async def recover(self, queue_id: str, *, actor: str) -> Entry:
        """Put a ``corrupt`` entry that decodes again back where it was; a delivery that was
        cut off goes back to ``released`` (due now), an entry of unknown origin to ``held``."""
        now = self._clock()

        def recover(current: Entry) -> Decision:
            if current.state != "corrupt":
                raise Conflict(f"queue entry {current.id} is {current.state}, not corrupt")
            back = current.quarantined_from or "held"
            changed = replace(current, state=back, quarantined_from=None, reason="",
                              claimed_by=None, claim_until=None)  # fmt: skip
            if back in ("delivering", "released"):
                changed = replace(changed, state="released", next_attempt_at=now)
            return Decision(changed, event="recovered", actor=actor)

        return await self.apply(queue_id, recover)

    async def audit_records(
        self, *, after_seq: int = 0, since: dt.datetime | None = None, limit: int = 1000
    ) -> builtins.list[AuditRecord]:
        """Implemented by each backend."""
        raise NotImplementedError

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
        decide = simple_transition(
            expected=expected, to=to, actor=actor, event=event, details=details, now=self._clock()
        )
        return await self.apply(queue_id, decide)

    async def verify_audit(self, heads: Sequence[AuditHead] = ()) -> AuditCheck:
        """Walk the whole chain in batches, recomputing every hash (HMAC for keyed records),
        and check that every anchored head in `heads` is in it.

        `AuditKeyError` when keyed records need a key this store does not have, or another.
        """
        walk = ChainWalk(self._audit_key, heads)
        while True:
            batch = await self.audit_records(after_seq=walk.prev_seq, limit=1000)
            if not batch:
                return walk.finish()
            failed = walk.feed(batch)
            if failed is not None:
                return failed


def update_values(
    entry: Entry, now: dt.datetime, time: Callable[[dt.datetime | None], object]
) -> tuple[object, ...]:
    """Values for `UPDATE_COLUMNS`, in order; `time` converts datetimes for the backend."""
    return (
        entry.state, time(now), time(entry.release_at), time(entry.expires_at),
        time(entry.released_at), entry.attempts, time(entry.next_attempt_at), entry.last_error,
        dump_approvals(entry.approvals), entry.decided_by, time(entry.decided_at), entry.reason,
        entry.claimed_by, time(entry.claim_until), dump_approvals(entry.delivered_to),
        entry.quarantined_from,
    )  # fmt: skip


def claimed(entry: Entry, node_id: str, now: dt.datetime, until: dt.datetime) -> Entry:
    """The entry as `claim_due` just wrote it (`until` on the database's clock)."""
    check_move(entry.id, entry.state, "delivering")
    return replace(entry, state="delivering", claimed_by=node_id, claim_until=until, updated_at=now)


def corrupt_details(state: str, problem: str) -> dict[str, object]:
    """The ``corrupt`` audit event's details (the problem names no content)."""
    return {"from": state, "to": "corrupt", "problem": problem}


def notice_from_row(row: tuple[Any, ...]) -> Notice:
    """A `Notice` from (id, queue_id, kind, attempts before this claim, created_at)."""
    created = aware(row[4])
    if created is None:
        raise StoreError(f"notice {row[0]} has no time")
    kind = str(row[2])
    if kind not in get_args(NoticeKind):
        raise StoreError(f"notice {row[0]} has unknown kind {kind!r}")
    return Notice(
        id=int(row[0]),
        queue_id=str(row[1]),
        kind=cast(NoticeKind, kind),
        attempts=int(row[3]) + 1,
        created_at=created,
    )
