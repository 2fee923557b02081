"""Reminders and escalation of undecided holds, in business hours, once, on both backends."""

from __future__ import annotations

import datetime as dt
import email
from email.policy import default as default_policy

from sendguard.model import HoldParams
from sendguard.queue.settings import QueueSettings
from sendguard.queue.store import Store
from sendguard.queue.worker import Worker
from sendguard.review.reminders import Reminders
from tests.support.store import FakeClock, sample_envelope, sample_message, sample_verdict
from tests.support.upstream import RecordingUpstream

HOLD = HoldParams(
    reviewers=("boss@corp.example",),
    remind_hours=4,
    escalate_hours=8,
    escalate_to=("bucho@corp.example",),
    notify_sender=False,
    notify_reviewers=False,
)


def _to(upstream: RecordingUpstream) -> list[tuple[tuple[str, ...], str]]:
    return [
        (tuple(r.strip("<>") for r in m.rcpt_tos),
         str(email.message_from_bytes(m.data, policy=default_policy)["Subject"]))
        for m in upstream.messages
    ]  # fmt: skip


async def test_an_undecided_hold_reminds_then_escalates_in_business_hours(
    store: Store,
    worker: Worker,
    upstream: RecordingUpstream,
    clock: FakeClock,
    queue_settings: QueueSettings,
) -> None:
    """Queued Friday 18:00 JST (business hours 0–24 by default): the reminder is due at
    22:00 that Friday; the weekend and Monday's holiday (勤労感謝の日) do not count, so 8
    business hours end on Tuesday 02:00 JST."""
    entry = await store.enqueue(envelope=sample_envelope(), data=sample_message(),
                                verdict=sample_verdict(hold=HOLD), state="held")  # fmt: skip
    reminders = Reminders(store, queue_settings, clock=clock)
    clock.now = dt.datetime(2026, 11, 20, 12, 59, tzinfo=dt.UTC)  # Friday 21:59 JST
    assert await reminders.tick() == 0
    clock.now = dt.datetime(2026, 11, 20, 13, 0, tzinfo=dt.UTC)  # Friday 22:00 JST
    assert await reminders.tick() == 1
    assert await reminders.tick() == 0  # once, however often it looks
    await worker.run_once()
    assert [(to, "催促" in subject) for to, subject in _to(upstream)] == [
        (("boss@corp.example",), True)
    ]
    clock.now = dt.datetime(2026, 11, 23, 16, 59, tzinfo=dt.UTC)  # Tuesday 01:59 JST
    assert await reminders.tick() == 0
    clock.now = dt.datetime(2026, 11, 23, 17, 0, tzinfo=dt.UTC)  # Tuesday 02:00 JST
    assert await reminders.tick() == 1
    await worker.run_once()
    to, subject = _to(upstream)[-1]
    assert to == ("bucho@corp.example",) and "エスカレーション" in subject
    events = [r.event for r in await store.audit_records() if r.queue_id == entry.id]
    assert events.count("reminded") == 1 and events.count("escalated") == 1


async def test_a_decided_hold_is_not_reminded(
    store: Store, clock: FakeClock, queue_settings: QueueSettings
) -> None:
    entry = await store.enqueue(envelope=sample_envelope(), data=sample_message(),
                                verdict=sample_verdict(hold=HOLD), state="held")  # fmt: skip
    await store.transition(entry.id, expected="held", to="rejected", actor="boss",
                           event="rejected")  # fmt: skip
    clock.advance(days=30)
    assert await Reminders(store, queue_settings, clock=clock).tick() == 0
