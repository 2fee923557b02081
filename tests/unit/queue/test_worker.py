"""The worker against a real SMTP upstream that fails on command, on both store backends."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
from dataclasses import replace
from email.message import Message
from email.policy import default as default_policy

import pytest

from sendguard.deliver import SmtpUpstream
from sendguard.entry import Decision, Entry
from sendguard.model import Action, Envelope, HoldParams, Organisation, Outgoing, Verdict
from sendguard.notify.notifier import Notifier
from sendguard.notify.settings import NotifySettings
from sendguard.queue.backends import open_store
from sendguard.queue.settings import QueueSettings
from sendguard.queue.store import Store
from sendguard.queue.worker import Worker
from tests.support.store import FakeClock, sample_envelope, sample_message, sample_verdict
from tests.support.upstream import Received, RecordingUpstream

SENDER = "tanaka@corp.example"


async def _released(store: Store, clock: FakeClock, *rcpts: str) -> Entry:
    """A held entry a reviewer has just released."""
    entry = await store.enqueue(
        envelope=sample_envelope(SENDER, *rcpts),
        data=sample_message(),
        verdict=sample_verdict(hold=HoldParams(notify_sender=False, notify_reviewers=False)),
        state="held",
    )
    return await store.apply(
        entry.id,
        lambda e: Decision(
            replace(e, state="released", released_at=clock.now, next_attempt_at=clock.now),
            event="released",
            actor="boss",
        ),
    )


def _mail(upstream: RecordingUpstream, mail_from: str) -> list[Received]:
    """Messages the upstream got from one envelope sender ("" for the null sender)."""
    return [m for m in upstream.messages if m.mail_from.strip("<>") == mail_from]


async def test_released_mail_is_delivered_unchanged(
    store: Store, worker: Worker, upstream: RecordingUpstream, clock: FakeClock
) -> None:
    """A released entry reaches the upstream with its envelope and original bytes."""
    entry = await _released(store, clock, "a@client.example", "b@client.example")
    assert await worker.run_once() == 1
    (got,) = upstream.messages
    assert got.mail_from == SENDER
    assert got.rcpt_tos == ("a@client.example", "b@client.example")
    assert got.data.replace(b"\r\n", b"\n") == entry.data.replace(b"\r\n", b"\n")
    done = await store.get(entry.id)
    assert (done.state, done.attempts, done.last_error) == ("delivered", 1, "")
    events = [r.event for r in await store.audit_records()]
    assert events[-1] == "delivered"


async def test_temporary_failure_is_retried_with_backoff(
    store: Store, worker: Worker, upstream: RecordingUpstream, clock: FakeClock
) -> None:
    """A 452 then a 451 keep the entry released for 60 s, then 300 s; then it is delivered."""
    entry = await _released(store, clock)
    upstream.fail_next("DATA", "451 4.3.0 try again later")
    upstream.fail_next("RCPT", "452 4.2.2 mailbox full")
    await worker.run_once()
    first = await store.get(entry.id)
    assert (first.state, first.attempts) == ("released", 1)
    assert first.next_attempt_at == clock.now + dt.timedelta(seconds=60)
    assert first.last_error == "452 4.2.2 mailbox full"  # RCPT fails before DATA

    clock.advance(seconds=59)
    await worker.run_once()
    assert (await store.get(entry.id)).attempts == 1  # not due yet
    clock.advance(seconds=1)
    await worker.run_once()
    second = await store.get(entry.id)
    assert (second.attempts, second.next_attempt_at) == (2, clock.now + dt.timedelta(seconds=300))
    assert second.last_error == "451 4.3.0 try again later"
    clock.advance(seconds=300)
    await worker.run_once()
    assert (await store.get(entry.id)).state == "delivered"
    assert len(_mail(upstream, SENDER)) == 1


def _report(received: Received) -> tuple[Message, str]:
    """The parsed DSN and its message/delivery-status text."""
    msg = email.message_from_bytes(received.data, policy=default_policy)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == [
        "text/plain",
        "message/delivery-status",
        "text/rfc822-headers",
    ]
    status = received.data.split(b"message/delivery-status", 1)[1].decode()
    return msg, status


async def test_permanent_failure_fails_and_bounces_from_null_sender(
    store: Store, worker: Worker, upstream: RecordingUpstream, clock: FakeClock
) -> None:
    """A 550 ends delivery at once and the sender gets a DSN from <> with status 5.1.1."""
    entry = await _released(store, clock)
    upstream.fail_next("RCPT", "550 5.1.1 no such user")
    await worker.run_once()
    failed = await store.get(entry.id)
    assert (failed.state, failed.last_error) == ("failed", "550 5.1.1 no such user")
    await worker.run_once()  # the outbox sends the bounce
    (bounce,) = _mail(upstream, "")
    assert bounce.rcpt_tos == (SENDER,)
    msg, status = _report(bounce)
    assert "Final-Recipient: rfc822; customer@client.example" in status
    assert "Status: 5.1.1" in status
    assert "Diagnostic-Code: smtp; 550 5.1.1 no such user" in status
    assert msg["X-Sendguard-Notification"] == "yes"
    assert "見積書の送付" in str(msg["Subject"]) or "Undeliverable" in str(msg["Subject"])
    assert b"123456789012" not in bounce.data  # the body (with personal data) is not returned


async def test_give_up_after_the_configured_time_bounces(
    store: Store, smtp_upstream: SmtpUpstream, upstream: RecordingUpstream, clock: FakeClock
) -> None:
    """Temporary failures past the give-up time (2 h here) end in failed and a 4.4.7 DSN."""
    settings = QueueSettings(give_up_hours=2, retry_backoff=(1800.0,))
    notifier = Notifier(smtp_upstream, NotifySettings(), hostname="relay.test")
    worker = Worker(store, smtp_upstream, notifier, settings, node_id="n", clock=clock)
    entry = await _released(store, clock)
    for _ in range(5):
        upstream.fail_next("MAIL", "421 4.3.2 system not accepting mail")
        await worker.run_once()
        clock.advance(seconds=1800)
    gone = await store.get(entry.id)
    assert gone.state == "failed"
    assert gone.attempts == 5
    await worker.run_once()
    (bounce,) = _mail(upstream, "")
    assert "Status: 4.4.7" in _report(bounce)[1]
    assert [r.event for r in await store.audit_records()].count("delivery_deferred") == 4


async def test_delayed_mail_goes_out_when_due_and_sender_is_told(
    store: Store, worker: Worker, upstream: RecordingUpstream, clock: FakeClock
) -> None:
    """A 5-minute delay is not sent before its time and is sent in the first pass after it."""
    entry = await store.enqueue(
        envelope=sample_envelope(SENDER),
        data=sample_message(),
        verdict=sample_verdict(Action.DELAY, delay_minutes=5),
        state="delayed",
    )
    await worker.run_once()
    assert _mail(upstream, SENDER) == []
    (notice,) = _mail(upstream, "sendguard@corp.example")
    text = email.message_from_bytes(notice.data, policy=default_policy)
    body = text.get_body(("plain",))
    assert body is not None
    assert f"sendguard queue cancel {entry.id}" in body.get_content()
    clock.advance(minutes=4, seconds=59)
    await worker.run_once()
    assert (await store.get(entry.id)).state == "delayed"
    clock.advance(seconds=1)
    await worker.run_once()
    assert len(_mail(upstream, SENDER)) == 1
    assert (await store.get(entry.id)).state == "delivered"


async def test_friday_evening_hold_does_not_expire_over_the_weekend(
    store: Store, worker: Worker, upstream: RecordingUpstream, clock: FakeClock
) -> None:
    """A 24-business-hour hold from Friday 18:00 JST survives the weekend and the Monday
    holiday (勤労感謝の日) and expires Tuesday 18:00."""
    entry = await store.enqueue(
        envelope=sample_envelope(SENDER),
        data=sample_message(),
        verdict=sample_verdict(hold=HoldParams(expire_hours=24, notify_reviewers=False)),
        state="held",
    )
    await worker.run_once()  # the "held" notice
    clock.now = dt.datetime(2026, 11, 24, 8, 59, tzinfo=dt.UTC)  # Tuesday 17:59 JST
    await worker.run_once()
    assert (await store.get(entry.id)).state == "held"
    clock.advance(minutes=1)
    await worker.run_once()
    expired = await store.get(entry.id)
    assert (expired.state, expired.decided_by) == ("expired", "system:expiry")
    await worker.run_once()
    subjects = [
        str(email.message_from_bytes(m.data, policy=default_policy)["Subject"])
        for m in _mail(upstream, "sendguard@corp.example")
    ]
    assert len(subjects) == 2
    assert "保留" in subjects[0]
    assert "期限切れ" in subjects[1]
    assert _mail(upstream, SENDER) == []


async def test_delivery_of_a_dead_node_is_completed_after_its_lease(
    store: Store, worker: Worker, upstream: RecordingUpstream, clock: FakeClock
) -> None:
    """An entry left 'delivering' by a crashed node is delivered once its claim expires
    (a real second: leases run on the database's clock since issue 11)."""
    entry = await _released(store, clock)
    await store.claim_due(10, "crashed-node", now=clock.now, lease=1.0)
    await worker.run_once()
    assert upstream.messages == []
    await asyncio.sleep(1.1)
    await worker.run_once()
    assert (await store.get(entry.id)).state == "delivered"
    assert len(upstream.messages) == 1


async def test_notices_are_retried_when_the_upstream_defers_them(
    store: Store, worker: Worker, upstream: RecordingUpstream, clock: FakeClock
) -> None:
    """A notice refused with 4xx is sent again after the backoff, not lost."""
    await store.enqueue(
        envelope=sample_envelope(SENDER),
        data=sample_message(),
        verdict=sample_verdict(hold=HoldParams(notify_reviewers=False)),
        state="held",
    )
    upstream.fail_next("MAIL", "451 4.3.0 later")
    await worker.run_once()
    assert upstream.messages == []
    clock.advance(seconds=60)
    await worker.run_once()
    assert len(_mail(upstream, "sendguard@corp.example")) == 1


async def test_split_delivery_resumes_without_repeating_delivered_copies(
    store: Store,
    smtp_upstream: SmtpUpstream,
    upstream: RecordingUpstream,
    clock: FakeClock,
    queue_settings: QueueSettings,
) -> None:
    """With one copy per recipient, a 451 on the second copy retries only that copy."""
    entry = await _released(store, clock, "a@client.example", "b@client.example")

    def per_recipient(
        data: bytes, verdict: Verdict, envelope: Envelope, organisation: Organisation | None
    ) -> tuple[Outgoing, ...]:
        return tuple(Outgoing((r,), data.replace(b"To: ", f"To: {r}, ".encode(), 1))
                     for r in envelope.rcpt_tos)  # fmt: skip

    notifier = Notifier(smtp_upstream, NotifySettings(), hostname="relay.test")
    worker = Worker(store, smtp_upstream, notifier, queue_settings, node_id="n", clock=clock,
                    prepare=per_recipient)  # fmt: skip
    upstream.fail_next("RCPT", "451 4.3.0 later", rcpt="b@client.example")
    await worker.run_once()
    partial = await store.get(entry.id)
    assert (partial.state, partial.delivered_to) == ("released", ("a@client.example",))
    clock.advance(seconds=60)
    await worker.run_once()
    done = await store.get(entry.id)
    assert (done.state, done.delivered_to) == (
        "delivered",
        ("a@client.example", "b@client.example"),
    )
    got = [(m.rcpt_tos, m.data.split(b"To: ", 1)[1][:16]) for m in _mail(upstream, SENDER)]
    assert got == [(("a@client.example",), b"a@client.example"),
                   (("b@client.example",), b"b@client.example")]  # fmt: skip


async def test_run_survives_a_store_outage_and_stops_on_cancel(
    store_url: str, smtp_upstream: SmtpUpstream, clock: FakeClock
) -> None:
    """With the store unusable, run() logs the error and keeps polling; cancel stops it."""
    from structlog.testing import capture_logs

    broken = await open_store(store_url, clock=clock)
    await broken.close()
    settings = QueueSettings(poll_interval=0.01)
    notifier = Notifier(smtp_upstream, NotifySettings(), hostname="relay.test")
    worker = Worker(broken, smtp_upstream, notifier, settings, node_id="n", clock=clock)
    with capture_logs() as logs:
        task = asyncio.create_task(worker.run())
        await asyncio.sleep(0.1)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    errors = [e for e in logs if e["event"] == "queue_worker_store_error"]
    assert len(errors) >= 2
