"""The queue worker: releases due delays, delivers released mail, expires holds, sends notices.

`sendguard serve` runs one `Worker` per node; several nodes can share one PostgreSQL store
because every step either claims rows (``SKIP LOCKED``) or changes them by compare-and-set,
so each entry is delivered by one node. A pass (`run_once`) is:

1. delayed entries whose time has come → ``released``;
2. held entries past their (business-time) deadline → ``expired``, sender told;
3. due ``released`` entries (and deliveries whose node died) are claimed and sent through
   the same `Upstream.send` as live mail: 2xx → ``delivered``; 4xx → retried with backoff
   until the give-up time; 5xx or give-up → ``failed`` with a bounce to the sender;
4. the outbox of notices and bounces is drained (retrying a 4xx);
5. now and then, finished entries older than the purge age are removed.

A delivery interrupted by a crash is taken over when its claim lease runs out, so delivery
is at-least-once: the upstream may see a message twice only if the node died between the
upstream's 250 and our commit.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import structlog

from sendguard.deliver import Upstream
from sendguard.errors import NotFound, StoreError
from sendguard.model import Envelope, Reply
from sendguard.notify.notifier import Notifier
from sendguard.queue.settings import QueueSettings
from sendguard.queue.store import (
    Clock,
    Conflict,
    Decide,
    Decision,
    Entry,
    Notice,
    NoticeKind,
    Store,
    utcnow,
)

log = structlog.get_logger(__name__)
_PURGE_EVERY = dt.timedelta(minutes=1)


class Copy(Protocol):
    """One transaction to send: `sendguard.actions.rewrite.Outgoing` fits."""

    @property
    def rcpt_tos(self) -> tuple[str, ...]:
        """Envelope recipients of this copy."""
        ...

    @property
    def data(self) -> bytes:
        """The bytes of this copy."""
        ...


@dataclass(frozen=True, slots=True)
class StoredCopy:
    """The stored bytes for some recipients."""

    rcpt_tos: tuple[str, ...]
    data: bytes


Prepare = Callable[[Entry], Sequence[Copy]]
"""What to send for a released entry; the relay passes one that re-applies a split rewrite."""


def as_stored(entry: Entry) -> tuple[StoredCopy, ...]:
    """The default: the stored bytes, once, to every envelope recipient."""
    return (StoredCopy(entry.envelope.rcpt_tos, entry.data),)


class Worker:
    """One node's worker; `run` until cancelled, or `run_once` for one pass (tests)."""

    def __init__(
        self,
        store: Store,
        upstream: Upstream,
        notifier: Notifier,
        settings: QueueSettings,
        *,
        node_id: str,
        clock: Clock = utcnow,
        prepare: Prepare = as_stored,
    ) -> None:
        self._store = store
        self._upstream = upstream
        self._notifier = notifier
        self._settings = settings
        self._node = node_id
        self._clock = clock
        self._prepare = prepare
        self._next_purge = dt.datetime.min.replace(tzinfo=dt.UTC)

    async def run(self) -> None:
        """Work until cancelled; a store outage or a bug is logged and retried, never fatal."""
        log.info("queue_worker_started", node_id=self._node)
        while True:
            try:
                done = await self.run_once()
            except StoreError as exc:
                log.error("queue_worker_store_error", error=str(exc))
                done = 0
            except Exception:  # a bug must not stop the queue for good: log, pause, go on
                log.exception("queue_worker_error")
                done = 0
            if done == 0:
                await asyncio.sleep(self._settings.poll_interval)

    async def run_once(self) -> int:
        """One pass over every kind of due work; returns how many items it handled."""
        now = self._clock()
        done = await self._release_due(now)
        done += await self._expire(now)
        done += await self._deliver_due(now)
        done += await self._send_notices(now)
        done += await self._purge(now)
        return done

    # ------------------------------------------------------------------ delays and holds

    async def _release_due(self, now: dt.datetime) -> int:
        due = await self._store.list(
            states=["delayed"], due_before=now, limit=self._settings.batch_size
        )
        count = 0
        for entry in due:

            def release(current: Entry) -> Decision:
                _expect(current, "delayed")
                changed = replace(current, state="released", released_at=now, next_attempt_at=now)
                return Decision(changed, event="released", actor="system:delay")

            count += await self._apply(entry.id, release)
        return count

    async def _expire(self, now: dt.datetime) -> int:
        due = await self._store.list(
            states=["held"], expires_before=now, limit=self._settings.batch_size
        )
        count = 0
        for entry in due:

            def expire(current: Entry) -> Decision:
                _expect(current, "held")
                changed = replace(
                    current,
                    state="expired",
                    decided_by="system:expiry",
                    decided_at=now,
                    reason="no decision before the deadline",
                )
                notify: tuple[NoticeKind, ...] = ()
                if current.verdict.hold.notify_sender:
                    notify = ("expired",)
                return Decision(changed, event="expired", actor="system:expiry", notify=notify)

            count += await self._apply(entry.id, expire)
        return count

    # ------------------------------------------------------------------ delivery

    async def _deliver_due(self, now: dt.datetime) -> int:
        claimed = await self._store.claim_due(
            self._settings.batch_size, self._node, now=now, lease=self._settings.claim_lease
        )
        results = await asyncio.gather(
            *(self._deliver(entry) for entry in claimed), return_exceptions=True
        )
        # Every delivery has finished; a store failure in one of them is reported now (its
        # entry stays claimed and is taken over when the lease ends).
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return len(claimed)

    async def _deliver(self, entry: Entry) -> None:
        reply, sent = await self._send_copies(entry)
        await self._apply(entry.id, self._outcome(reply, self._clock(), sent))

    async def _send_copies(self, entry: Entry) -> tuple[Reply, tuple[str, ...]]:
        """Send every copy whose recipients are not done yet; stop at the first refusal."""
        try:
            copies = self._prepare(entry)
        except Exception as exc:  # noqa: BLE001  # a bad message must not stop the worker
            log.error("queue_prepare_error", queue_id=entry.id, error=repr(exc))
            return Reply(451, f"4.3.0 cannot prepare the message: {type(exc).__name__}"), ()
        done, sent = set(entry.delivered_to), list[str]()
        reply = Reply(250, "2.0.0 nothing left to deliver")
        for copy in copies:
            rcpts = tuple(r for r in copy.rcpt_tos if r not in done)
            if not rcpts:
                continue
            reply = await self._send(entry, replace(entry.envelope, rcpt_tos=rcpts), copy.data)
            if not reply.ok:
                break
            sent.extend(rcpts)
        return reply, tuple(sent)

    async def _send(self, entry: Entry, envelope: Envelope, data: bytes) -> Reply:
        log.info("queue_delivery_started", queue_id=entry.id, attempt=entry.attempts + 1)
        try:
            return await self._upstream.send(envelope, data)
        except Exception as exc:  # noqa: BLE001  # a bug in the upstream is a temporary failure
            log.error("queue_delivery_error", queue_id=entry.id, error=repr(exc))
            return Reply(451, f"4.3.0 delivery error: {type(exc).__name__}")

    def _outcome(self, reply: Reply, now: dt.datetime, sent: tuple[str, ...]) -> Decide:
        """The decision for a delivery that got `reply` after the copies to `sent` went."""
        node, settings = self._node, self._settings

        def decide(current: Entry) -> Decision:
            _expect(current, "delivering")
            if current.claimed_by != node:
                raise Conflict(f"queue entry {current.id} was taken over by {current.claimed_by}")
            attempts = current.attempts + 1
            base = replace(
                current, attempts=attempts, last_error="" if reply.ok else str(reply)[:500],
                claimed_by=None, claim_until=None, delivered_to=current.delivered_to + sent,
            )  # fmt: skip
            details = {"reply": str(reply)[:200], "attempts": attempts, "node": node}
            if reply.ok:
                return Decision(replace(base, state="delivered"), "delivered", "system", details)
            started = current.released_at or current.created_at
            if reply.permanent or now >= started + dt.timedelta(hours=settings.give_up_hours):
                event = "delivery_failed" if reply.permanent else "delivery_gave_up"
                failed = replace(base, state="failed", decided_at=now)
                return Decision(failed, event, "system", details, notify=("bounce",))
            backoff = settings.retry_backoff[min(attempts, len(settings.retry_backoff)) - 1]
            retry_at = now + dt.timedelta(seconds=backoff)
            retry = replace(base, state="released", next_attempt_at=retry_at)
            return Decision(retry, "delivery_deferred", "system", {**details, "retry_at": retry_at})

        return decide

    # ------------------------------------------------------------------ notices, purge

    async def _send_notices(self, now: dt.datetime) -> int:
        notices = await self._store.claim_notices(self._settings.batch_size, self._node, now=now)
        for notice in notices:
            await self._send_notice(notice, now)
        return len(notices)

    async def _send_notice(self, notice: Notice, now: dt.datetime) -> None:
        try:
            entry = await self._store.get(notice.queue_id)
        except NotFound:
            await self._store.finish_notice(notice.id)  # the entry was deleted meanwhile
            return
        reply = await self._notifier.send(notice.kind, entry)
        if reply.ok:
            await self._store.finish_notice(notice.id)
            return
        if reply.permanent or notice.attempts >= self._settings.notice_max_attempts:
            log.error("notice_dropped", queue_id=entry.id, kind=notice.kind, reply=str(reply))
            await self._store.finish_notice(notice.id)
            details = {"kind": notice.kind, "reply": str(reply)[:200], "attempts": notice.attempts}
            await self._store.audit("notice_dropped", actor="system", queue_id=entry.id,
                                    details=details)  # fmt: skip
            return
        backoff = self._settings.retry_backoff
        delay = backoff[min(notice.attempts, len(backoff)) - 1]
        await self._store.finish_notice(
            notice.id, retry_at=now + dt.timedelta(seconds=delay), error=str(reply)[:500]
        )

    async def _purge(self, now: dt.datetime) -> int:
        days = self._settings.purge_after_days
        if days is None or now < self._next_purge:
            return 0
        self._next_purge = now + _PURGE_EVERY
        removed = await self._store.purge(before=now - dt.timedelta(days=days), actor="system")
        if removed:
            log.info("queue_purged", count=removed)
        return removed

    async def _apply(self, queue_id: str, decide: Decide) -> int:
        """Apply a decision; 1 if it was written, 0 if another node got there first."""
        try:
            entry = await self._store.apply(queue_id, decide)
        except (Conflict, NotFound) as exc:
            log.info("queue_entry_changed_elsewhere", queue_id=queue_id, reason=str(exc))
            return 0
        log.info("queue_entry_changed", queue_id=queue_id, state=entry.state,
                 attempts=entry.attempts)  # fmt: skip
        return 1


def _expect(entry: Entry, state: str) -> None:
    """Refuse to decide on an entry someone else moved on."""
    if entry.state != state:
        raise Conflict(f"queue entry {entry.id} is {entry.state}, not {state}")
