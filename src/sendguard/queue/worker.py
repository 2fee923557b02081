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
upstream's 250 and our commit. While a delivery runs, a heartbeat renews its lease every
third of `claim_lease` (on the database's clock), so a slow upstream never makes another node
take it over; a delivery that lost its claim sends no further copy.

A row that cannot be decoded never stops a pass: the store (or this worker, for rows it
only listed) moves it to ``corrupt`` with an audit event, and the pass carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from dataclasses import replace

import structlog

from sendguard.deliver import Upstream
from sendguard.entry import Decide, Decision, Entry, Notice, NoticeKind, move
from sendguard.errors import Conflict, NotFound, StoreError
from sendguard.model import Envelope, Organisation, Outgoing, Prepare, Reply, Verdict
from sendguard.notify.notifier import Notifier
from sendguard.queue.settings import QueueSettings
from sendguard.queue.store import Clock, CorruptEntry, Store, utcnow

log = structlog.get_logger(__name__)
_PURGE_EVERY = dt.timedelta(minutes=1)
_CORRUPT = Reply(451, "4.3.0 the queue entry is corrupt")


def as_stored(
    data: bytes, verdict: Verdict, envelope: Envelope, organisation: Organisation | None
) -> tuple[Outgoing, ...]:
    """The default `Prepare`: the stored bytes, once, to every envelope recipient (the relay
    passes its own, which applies the stored verdict's edits, e.g. a split rewrite)."""
    return (Outgoing(envelope.rcpt_tos, data),)


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
        """One pass over every kind of due work; returns how many items it handled.

        A store failure in one step is logged and the other steps still run; it is raised
        at the end so `run` pauses before the next pass."""
        now = self._clock()
        done, failure = 0, None
        steps = (self._release_due, self._expire, self._deliver_due, self._send_notices,
                 self._purge)  # fmt: skip
        for step in steps:
            try:
                done += await step(now)
            except StoreError as exc:
                log.error("queue_worker_step_failed", step=step.__name__, error=str(exc))
                failure = failure or exc
        if failure is not None and done == 0:
            raise failure
        return done

    async def _quarantine(self, entry: Entry) -> int:
        """A listed entry whose row could not be decoded (a ``corrupt`` stand-in): record it."""
        if await self._store.quarantine(entry.id, entry.reason):
            log.error("queue_entry_corrupt", queue_id=entry.id, problem=entry.reason)
        return 1

    # ------------------------------------------------------------------ delays and holds

    async def _release_due(self, now: dt.datetime) -> int:
        due = await self._store.list(
            states=["delayed"], due_before=now, limit=self._settings.batch_size
        )
        count = 0
        for entry in due:
            if entry.state == "corrupt":
                count += await self._quarantine(entry)
                continue

            def release(current: Entry) -> Decision:
                _expect(current, "delayed")
                changed = move(current, "released", "worker", released_at=now, next_attempt_at=now)
                return Decision(changed, event="released", actor="system:delay")

            count += await self._apply(entry.id, release)
        return count

    async def _expire(self, now: dt.datetime) -> int:
        due = await self._store.list(
            states=["held"], expires_before=now, limit=self._settings.batch_size
        )
        count = 0
        for entry in due:
            if entry.state == "corrupt":
                count += await self._quarantine(entry)
                continue

            def expire(current: Entry) -> Decision:
                _expect(current, "held")
                changed = move(
                    current,
                    "expired",
                    "worker",
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
        lost = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(entry.id, lost))
        try:
            reply, sent = await self._send_copies(entry, lost)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        await self._apply(entry.id, self._outcome(reply, self._clock(), sent))

    async def _heartbeat(self, queue_id: str, lost: asyncio.Event) -> None:
        """Renew the claim every third of the lease until cancelled; set `lost` if another
        node has it now (the lease ran out anyway, e.g. the store was unreachable too long)."""
        lease = self._settings.claim_lease
        while True:
            await asyncio.sleep(lease / 3)
            try:
                mine = await self._store.renew_claim(queue_id, self._node, lease=lease)
            except StoreError as exc:  # try again at the next beat; the lease has 2/3 left
                log.warning("queue_claim_renew_failed", queue_id=queue_id, error=str(exc))
                continue
            if not mine:
                log.error("queue_claim_lost", queue_id=queue_id, node_id=self._node)
                lost.set()
                return

    async def _send_copies(
        self, entry: Entry, lost: asyncio.Event | None = None
    ) -> tuple[Reply, tuple[str, ...]]:
        """Send every copy whose recipients are not done yet.

        A temporary refusal stops the pass (the rest is retried later, with it); a permanent
        one is kept and the other copies still go, so the bounce names only the recipients
        that were refused. The reply is the first temporary refusal, else the first
        permanent one, else the last 2xx."""
        try:
            # None: the organisation of the policy in force, as for any release.
            copies = self._prepare(entry.data, entry.verdict, entry.envelope, None)
        except Exception as exc:  # noqa: BLE001  # a bad message must not stop the worker
            log.error("queue_prepare_error", queue_id=entry.id, error=repr(exc))
            return Reply(451, f"4.3.0 cannot prepare the message: {type(exc).__name__}"), ()
        done, sent = set(entry.delivered_to), list[str]()
        reply = Reply(250, "2.0.0 nothing left to deliver")
        refused: Reply | None = None
        for copy in copies:
            rcpts = tuple(r for r in copy.rcpt_tos if r not in done)
            if not rcpts:
                continue
            if lost is not None and lost.is_set():
                return Reply(451, "4.3.0 the claim on this delivery was lost"), tuple(sent)
            reply = await self._send(entry, replace(entry.envelope, rcpt_tos=rcpts), copy.data)
            if reply.ok:
                sent.extend(rcpts)
            elif reply.permanent:
                refused = refused or reply
            else:
                return reply, tuple(sent)
        return refused or reply, tuple(sent)

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
                return Decision(move(base, "delivered", "worker"), "delivered", "system", details)
            started = current.released_at or current.created_at
            if reply.permanent or now >= started + dt.timedelta(hours=settings.give_up_hours):
                event = "delivery_failed" if reply.permanent else "delivery_gave_up"
                failed = move(base, "failed", "worker", decided_at=now)
                return Decision(failed, event, "system", details, notify=("bounce",))
            backoff = settings.retry_backoff[min(attempts, len(settings.retry_backoff)) - 1]
            retry_at = now + dt.timedelta(seconds=backoff)
            retry = move(base, "released", "worker", next_attempt_at=retry_at)
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
        except CorruptEntry as exc:
            if await self._store.quarantine(exc.queue_id, exc.problem):
                log.error("queue_entry_corrupt", queue_id=exc.queue_id, problem=exc.problem)
            entry = None
        # A corrupt entry has nothing to render a notice from: the notice waits (retried,
        # then dropped and audited) in case an admin recovers the entry meanwhile.
        reply = (
            await self._notifier.send(notice.kind, entry)
            if entry is not None and entry.state != "corrupt"
            else _CORRUPT
        )
        if reply.ok:
            await self._store.finish_notice(notice.id)
            return
        if reply.permanent or notice.attempts >= self._settings.notice_max_attempts:
            log.error(
                "notice_dropped", queue_id=notice.queue_id, kind=notice.kind, reply=str(reply)
            )
            await self._store.finish_notice(notice.id)
            details = {"kind": notice.kind, "reply": str(reply)[:200], "attempts": notice.attempts}
            await self._store.audit("notice_dropped", actor="system", queue_id=notice.queue_id,
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
        """Apply a decision; 1 if it was written (or the row turned out corrupt and was moved
        aside), 0 if another node got there first."""
        try:
            entry = await self._store.apply(queue_id, decide)
        except CorruptEntry as exc:
            log.error("queue_entry_corrupt", queue_id=queue_id, problem=exc.problem)
            return 1
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
