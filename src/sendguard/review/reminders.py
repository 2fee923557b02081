"""Reminders and escalation of holds nobody decides (a background task of each relay).

A rule may say ``remind_hours = N``: a hold still undecided N business hours after it was
queued reminds its reviewers (notice ``reminder``); and ``escalate_hours = M`` with
``escalate_to = [...]``: after M business hours the second list is asked (notice
``escalation``) — they may decide like reviewers (`rules.reviewers_of`). Business hours
are the queue's calendar, the same that expires holds (`sendguard.queue.calendar`).

Every relay process runs this loop; `Store.use_once` makes each reminder and escalation
happen once across all of them, and the notice goes through the store's outbox (so it
survives a crash like every other notice) with a ``reminded``/``escalated`` audit event.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

import structlog

from sendguard.entry import Decision, Entry, NoticeKind
from sendguard.errors import Conflict, StoreError
from sendguard.queue.calendar import BusinessCalendar
from sendguard.queue.settings import QueueSettings
from sendguard.queue.store import Clock, Store, utcnow

log = structlog.get_logger(__name__)

_STEPS: tuple[tuple[NoticeKind, str], ...] = (("reminder", "reminded"), ("escalation", "escalated"))


class Reminders:
    """Finds undecided holds whose reminder or escalation is due and queues the notice."""

    def __init__(self, store: Store, settings: QueueSettings, *, clock: Clock = utcnow) -> None:
        self._store = store
        self._calendar = BusinessCalendar.from_settings(settings)
        self._clock = clock
        # Holds are hours old before anything is due: no need to look as often as the worker.
        self.interval = max(settings.poll_interval * 10, 1.0)

    def due(self, entry: Entry, kind: NoticeKind) -> dt.datetime | None:
        """When `entry`'s reminder or escalation is due; None when its rule asks for none."""
        hold = entry.verdict.hold
        hours = hold.remind_hours if kind == "reminder" else hold.escalate_hours
        if hours is None or (kind == "escalation" and not hold.escalate_to):
            return None
        return self._calendar.add_business_hours(entry.created_at, hours)

    async def tick(self) -> int:
        """Queue every reminder and escalation due now; returns how many."""
        now = self._clock()
        sent = 0
        for entry in await self._store.list(states=["held"]):
            for kind, event in _STEPS:
                when = self.due(entry, kind)
                if when is None or when > now:
                    continue
                # Forget the marker a day after the hold would have expired anyway.
                keep = (entry.expires_at or now) + dt.timedelta(days=1)
                if not await self._store.use_once(
                    f"{kind}:{entry.id}", queue_id=entry.id, action=kind, expires_at=keep
                ):
                    continue
                try:
                    await self._store.apply(entry.id, _notice(kind, event))
                except StoreError as exc:  # decided meanwhile: nothing to remind
                    log.info("hold_reminder_skipped", queue_id=entry.id, kind=kind, why=str(exc))
                    continue
                log.info("hold_" + event, queue_id=entry.id, rule=entry.verdict.rule_id)
                sent += 1
        return sent

    async def run(self) -> None:
        """Tick forever (until cancelled); a failing store is retried next time."""
        while True:
            try:
                await self.tick()
            except Exception as exc:  # noqa: BLE001  # the loop must outlive any one failure
                log.warning("hold_reminders_failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.interval)


def _notice(kind: NoticeKind, event: str) -> Callable[[Entry], Decision]:
    def decide(entry: Entry) -> Decision:
        if entry.state != "held":
            raise Conflict(f"{entry.id} is {entry.state}, no longer held")
        return Decision(entry, event=event, actor="sendguard", details={"notice": kind},
                        notify=(kind,))  # fmt: skip

    return decide
