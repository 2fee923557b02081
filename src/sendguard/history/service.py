"""The history as the relay uses it: record delivered mail in the background, look up a
snapshot per message, keep the learned domains fresh.

`History.delivered` is what the pipeline (after a 2xx for pass/tag/rewrite) and the queue
worker (after a released message is delivered) call: it only puts the envelope and the
header bytes on a bounded queue and returns; a background task parses and writes them in
batches. Nothing a client waits for ever touches the history's disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Callable, Sequence

import structlog

from sendguard.correspondence import Delivery, HistorySnapshot, Recipient, name_key, thread_key
from sendguard.errors import StoreError
from sendguard.history.extract import delivery, external, header_names, header_section
from sendguard.history.settings import HistorySettings
from sendguard.history.store import HistoryStore
from sendguard.model import Envelope, Mail, Organisation

log = structlog.get_logger(__name__)

_BATCH = 200
_EXPIRE_EVERY = 3600.0
_KNOWN_TTL = 600.0
_KNOWN_MAX = 100_000


class History:
    """One relay process's view of the history store."""

    def __init__(
        self,
        store: HistoryStore,
        settings: HistorySettings,
        organisation: Callable[[], Organisation],
    ) -> None:
        self.store = store
        self.settings = settings
        self._organisation = organisation
        self._pending: asyncio.Queue[tuple[Envelope, bytes, dt.datetime]] = asyncio.Queue(
            settings.queue_size
        )
        self._secret = settings.key.encode()
        self.learned: dict[str, int] = {}
        """Registrable domain → messages sent there (at least ``learn_floor``)."""
        self._tasks: list[asyncio.Task[None]] = []
        # The common message goes to people the sender already writes to and is not a reply:
        # its snapshot needs no query. (sender, address) → (count, expiry) and sender →
        # (correspondents, expiry), filled from look-ups and from this process's own writes.
        # Entries only ever say "known"; they expire after 10 minutes, so another process's
        # `history forget` is honoured here within that time.
        self._known: dict[tuple[str, str], tuple[int, float]] = {}
        self._senders: dict[str, tuple[int, float]] = {}

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Read the learned domains once, then keep writing and refreshing in the background."""
        await self.refresh()
        self._tasks = [
            asyncio.create_task(self._write_loop(), name="history-writer"),
            asyncio.create_task(self._refresh_loop(), name="history-refresh"),
        ]

    async def stop(self) -> None:
        """Write what is queued (bounded by the caller), then stop the tasks and the store."""
        with contextlib.suppress(Exception):
            await self.flush()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.store.close()

    # ------------------------------------------------------------------ recording

    def delivered(self, envelope: Envelope, data: bytes) -> None:
        """Note a delivered message (never blocks; a full queue drops it, logged)."""
        item = (envelope, header_section(data), dt.datetime.now(dt.UTC))
        try:
            self._pending.put_nowait(item)
        except asyncio.QueueFull:
            log.warning("history_queue_full", dropped=1)

    async def flush(self) -> int:
        """Write everything queued now (tests, shutdown); return messages recorded."""
        written = 0
        while not self._pending.empty():
            written += await self._write(self._take(_BATCH))
        return written

    def _take(self, limit: int) -> list[tuple[Envelope, bytes, dt.datetime]]:
        items: list[tuple[Envelope, bytes, dt.datetime]] = []
        while len(items) < limit and not self._pending.empty():
            items.append(self._pending.get_nowait())
        return items

    async def _write(self, items: list[tuple[Envelope, bytes, dt.datetime]]) -> int:
        # Parsing the headers is CPU work: done in a thread, off the event loop.
        records = await asyncio.to_thread(self._deliveries, items, self._organisation())
        if not records:
            return 0
        written = await self.store.record(records)
        expiry = time.monotonic() + _KNOWN_TTL
        for record in records:
            for r in record.recipients:
                count = self._known.get((record.sender, r.address), (0, 0.0))[0]
                self._remember(record.sender, r.address, count + 1, expiry)
        log.debug("history_recorded", messages=written)
        return written

    def _remember(self, sender: str, address: str, count: int, expiry: float) -> None:
        if len(self._known) >= _KNOWN_MAX:
            self._known.clear()
        self._known[(sender, address)] = (count, expiry)

    def _cached(
        self, sender: str, recipients: Sequence[Recipient], threads: Sequence[str]
    ) -> HistorySnapshot | None:
        """The snapshot from memory when every recipient is known and it is not a reply."""
        now = time.monotonic()
        total = self._senders.get(sender)
        if threads or total is None or total[1] < now:
            return None
        written: dict[str, int] = {}
        for r in recipients:
            hit = self._known.get((sender, r.address))
            if hit is None or hit[1] < now:
                return None
            written[r.address] = hit[0]
        return HistorySnapshot(sender=sender, sender_messages=total[0], written=written)

    def _learn_from(self, snap: HistorySnapshot) -> HistorySnapshot:
        expiry = time.monotonic() + _KNOWN_TTL
        self._senders[snap.sender] = (snap.sender_messages, expiry)
        for address, count in snap.written.items():
            self._remember(snap.sender, address, count, expiry)
        return snap

    def _deliveries(
        self, items: list[tuple[Envelope, bytes, dt.datetime]], org: Organisation
    ) -> list[Delivery]:
        return [
            d
            for envelope, headers, at in items
            if (
                d := delivery(
                    sender=envelope.sender or envelope.mail_from,
                    rcpts=envelope.rcpt_tos,
                    header_bytes=headers,
                    organisation=org,
                    at=at,
                    thread_secret=self._secret,
                )
            )
            is not None
        ]

    async def _write_loop(self) -> None:
        while True:
            first = await self._pending.get()
            batch = [first, *self._take(_BATCH - 1)]
            try:
                await self._write(batch)
            except Exception as exc:  # noqa: BLE001 - history is advisory: log, keep going
                log.error("history_write_failed", error=str(exc), dropped=len(batch))

    async def _refresh_loop(self) -> None:
        next_expiry = time.monotonic()
        while True:
            await asyncio.sleep(self.settings.refresh_seconds)
            try:
                await self.refresh()
                if time.monotonic() >= next_expiry:
                    next_expiry = time.monotonic() + _EXPIRE_EVERY
                    await self.expire()
            except Exception as exc:  # noqa: BLE001 - keep the last good view
                log.error("history_refresh_failed", error=str(exc))

    async def refresh(self) -> None:
        """Re-read the learned domains."""
        self.learned = await self.store.learned_domains(self.settings.learn_floor)

    async def expire(self) -> int:
        """Delete what is older than the retention."""
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=self.settings.retention_days)
        removed = await self.store.expire(cutoff)
        if removed:
            log.info("history_expired", rows=removed)
        return removed

    # ------------------------------------------------------------------ look-up

    async def snapshot(self, envelope: Envelope, mail: Mail) -> HistorySnapshot | None:
        """The snapshot for one message, or None when it could not be had in time (logged)."""
        sender, recipients, threads = snapshot_query(
            envelope, mail, self._organisation(), self._secret
        )
        if not recipients:
            return HistorySnapshot(sender=sender)
        cached = self._cached(sender, recipients, threads)
        if cached is not None:
            return cached
        try:
            async with asyncio.timeout(self.settings.lookup_timeout):
                return self._learn_from(await self.store.snapshot(sender, recipients, threads))
        except (TimeoutError, StoreError) as exc:
            log.warning("history_lookup_skipped", error=str(exc) or type(exc).__name__)
            return None

    def snapshot_now(self, envelope: Envelope, mail: Mail) -> HistorySnapshot | None:
        """`snapshot` in the calling thread (the inline inspection's worker thread)."""
        sender, recipients, threads = snapshot_query(
            envelope, mail, self._organisation(), self._secret
        )
        if not recipients:
            return HistorySnapshot(sender=sender)
        cached = self._cached(sender, recipients, threads)
        if cached is not None:
            return cached
        try:
            return self._learn_from(self.store.snapshot_locked(sender, recipients, threads))
        except StoreError as exc:
            log.warning("history_lookup_skipped", error=str(exc))
            return None


def snapshot_query(
    envelope: Envelope, mail: Mail, organisation: Organisation, secret: bytes = b""
) -> tuple[str, Sequence[Recipient], Sequence[str]]:
    """(sender, external recipients with their To/Cc names, thread keys) of one message."""
    names = {
        a.addr_spec.lower(): name_key(a.display_name)
        for a in mail.visible_recipients
        if a.display_name
    }
    recipients = [
        Recipient(a.addr_spec.lower(), a.registrable_domain, names.get(a.addr_spec.lower(), ""))
        for a in external(envelope.rcpt_tos, organisation)
    ]
    ids = [i for i in (*mail.in_reply_to, *mail.references) if i]
    return (
        (envelope.sender or envelope.mail_from).lower(),
        recipients,
        [thread_key(i, secret) for i in dict.fromkeys(ids)],
    )


__all__ = ["History", "header_names", "snapshot_query"]
