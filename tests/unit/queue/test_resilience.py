"""Issue 11: a bad row never stops the worker, leases survive clock skew and slow deliveries.

Each test runs on SQLite and on the real PostgreSQL (`store_url`). Leases run on the
database's clock, so the lease tests use real time (short leases, a slow upstream).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from dataclasses import replace

import pytest

from sendguard.deliver import SmtpOptions, SmtpUpstream, parse_target
from sendguard.entry import Decision, Entry
from sendguard.model import HoldParams
from sendguard.notify.notifier import Notifier
from sendguard.notify.settings import NotifySettings
from sendguard.queue.backends import open_store
from sendguard.queue.settings import QueueSettings
from sendguard.queue.store import Clock, CorruptEntry, Store
from sendguard.queue.worker import Worker
from tests.support.store import (
    FakeClock,
    damage_row,
    sample_envelope,
    sample_message,
    sample_verdict,
)
from tests.support.upstream import RecordingUpstream

SENDER = "tanaka@corp.example"
QUIET = HoldParams(notify_sender=False, notify_reviewers=False)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _skewed(hours: float) -> Clock:
    """A node whose clock runs `hours` ahead of the others."""
    return lambda: _utcnow() + dt.timedelta(hours=hours)


async def _released(store: Store, now: dt.datetime, rcpt: str = "a@client.example") -> Entry:
    entry = await store.enqueue(
        envelope=sample_envelope(SENDER, rcpt),
        data=sample_message(),
        verdict=sample_verdict(hold=QUIET),
        state="held",
    )
    return await store.apply(
        entry.id,
        lambda e: Decision(
            replace(e, state="released", released_at=now, next_attempt_at=now),
            event="released",
            actor="boss",
        ),
    )


def _worker(
    store: Store, upstream: SmtpUpstream, node: str, clock: Clock, lease: float = 900.0
) -> Worker:
    notifier = Notifier(
        upstream,
        NotifySettings(from_address="sendguard@corp.example", reviewers=("sec@corp.example",)),
        hostname="relay.test",
    )
    settings = QueueSettings(claim_lease=lease)
    return Worker(store, upstream, notifier, settings, node_id=node, clock=clock)


async def _sending(upstream: RecordingUpstream) -> None:
    """Until the upstream has seen a RCPT (the transaction is under way)."""
    async with asyncio.timeout(10):
        # The upstream's own progress: polling its record is the only way to see it.
        while not any(c.startswith("RCPT") for c in upstream.commands):  # noqa: ASYNC110
            await asyncio.sleep(0.02)


def _client(upstream: RecordingUpstream) -> SmtpUpstream:
    return SmtpUpstream(parse_target(upstream.url), SmtpOptions(local_hostname="relay.test"))


DAMAGE = {
    "verdict-not-json": ("verdict", '{"v":2,"action": '),
    "unknown-blob-version": ("envelope", '{"v":99}'),
    "verdict-wrong-shape": ("verdict", '{"v":2,"action":[]}'),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
async def test_an_undecodable_row_moves_to_corrupt_and_the_worker_carries_on(
    store_url: str,
    store: Store,
    clock: FakeClock,
    upstream: RecordingUpstream,
    smtp_upstream: SmtpUpstream,
    damage: str,
) -> None:
    """One released row whose stored JSON no longer decodes, among good ones: the pass still
    delivers the good ones, the bad row is `corrupt` with an audited problem, and listing,
    showing and the next passes all work."""
    bad = await _released(store, clock.now, "bad@client.example")
    good = await _released(store, clock.now, "good@client.example")
    delayed = await store.enqueue(
        envelope=sample_envelope(SENDER, "later@client.example"),
        data=sample_message(),
        verdict=sample_verdict(hold=QUIET),
        state="delayed",
        release_at=clock.now,
    )
    damage_row(store_url, bad.id, *DAMAGE[damage])
    worker = _worker(store, smtp_upstream, "node-1", clock)

    await worker.run_once()  # before issue 11: the whole pass raised here
    await worker.run_once()  # the delayed one, released by the first pass, goes now
    assert sorted(r for m in upstream.messages for r in m.rcpt_tos) == [
        "good@client.example",
        "later@client.example",
    ]
    assert (await store.get(good.id)).state == "delivered"
    assert (await store.get(delayed.id)).state == "delivered"

    with pytest.raises(CorruptEntry) as raised:
        await store.get(bad.id)
    shown = raised.value.stand_in
    assert shown is not None
    assert (shown.state, shown.quarantined_from) == ("corrupt", "released")
    assert shown.envelope.mail_from == SENDER
    assert "client.example" not in str(raised.value)  # says what is wrong, not what it holds
    listed = {e.id: e.state for e in await store.list()}
    assert listed == {bad.id: "corrupt", good.id: "delivered", delayed.id: "delivered"}
    assert [e.id for e in await store.list(states=["corrupt"])] == [bad.id]
    corrupt = [r for r in await store.audit_records() if r.event == "corrupt"]
    assert [(r.queue_id, r.actor) for r in corrupt] == [(bad.id, "system")]
    assert (await store.verify_audit()).ok

    assert await worker.run_once() == 0  # nothing left: the corrupt row is not retried
    await store.delete(bad.id, actor="admin")
    assert bad.id not in {e.id for e in await store.list()}


async def test_a_held_row_that_does_not_decode_does_not_stop_expiry_or_release(
    store_url: str, store: Store, clock: FakeClock, smtp_upstream: SmtpUpstream
) -> None:
    """Rows found by listing (expiry of holds, release of delays) are moved aside too."""
    held = await store.enqueue(
        envelope=sample_envelope(SENDER),
        data=sample_message(),
        verdict=sample_verdict(hold=QUIET),
        state="held",
    )
    delayed = await store.enqueue(
        envelope=sample_envelope(SENDER),
        data=sample_message(),
        verdict=sample_verdict(hold=QUIET),
        state="delayed",
        release_at=clock.now,
    )
    damage_row(store_url, held.id, "verdict", "garbage")
    damage_row(store_url, delayed.id, "envelope", "[]")
    clock.advance(days=30)  # the hold is long past its expiry
    worker = _worker(store, smtp_upstream, "node-1", clock)
    await worker.run_once()
    states = {e.id: (e.state, e.quarantined_from) for e in await store.list()}
    assert states == {held.id: ("corrupt", "held"), delayed.id: ("corrupt", "delayed")}


async def test_a_wrong_encryption_key_moves_the_row_aside_and_recover_puts_it_back(
    store_url: str, clock: FakeClock, upstream: RecordingUpstream, smtp_upstream: SmtpUpstream
) -> None:
    """A node started with another key cannot open a sealed message: the entry goes to
    `corrupt` (not delivered, not lost); with the right key `recover` makes it deliverable."""
    right, wrong = os.urandom(32), os.urandom(32)
    first = await open_store(store_url, key=right, clock=clock)
    entry = await _released(first, clock.now)
    await first.close()

    misconfigured = await open_store(store_url, key=wrong, clock=clock)
    await _worker(misconfigured, smtp_upstream, "node-1", clock).run_once()
    assert upstream.messages == []
    (listed,) = await misconfigured.list()
    assert (listed.state, listed.quarantined_from) == ("corrupt", "released")
    assert "different key" in listed.reason
    await misconfigured.close()

    fixed = await open_store(store_url, key=right, clock=clock)
    back = await fixed.recover(entry.id, actor="admin")
    assert (back.state, back.reason) == ("released", "")
    await _worker(fixed, smtp_upstream, "node-1", clock).run_once()
    assert (await fixed.get(entry.id)).state == "delivered"
    assert [m.rcpt_tos for m in upstream.messages] == [("a@client.example",)]
    events = [r.event for r in await fixed.audit_records() if r.queue_id == entry.id]
    assert events[-3:] == ["corrupt", "recovered", "delivered"]
    await fixed.close()


async def test_recover_refuses_a_row_that_still_does_not_decode(
    store_url: str, store: Store, clock: FakeClock
) -> None:
    """`recover` before the cause is fixed keeps the entry corrupt and says why."""
    entry = await _released(store, clock.now)
    damage_row(store_url, entry.id, "verdict", "{")
    assert await store.claim_due(5, "node-1", now=clock.now, lease=60) == []
    with pytest.raises(CorruptEntry, match="verdict is not JSON"):
        await store.recover(entry.id, actor="admin")
    (listed,) = await store.list()
    assert listed.state == "corrupt"


async def test_nodes_with_skewed_clocks_deliver_an_entry_exactly_once(
    store_url: str, upstream: RecordingUpstream
) -> None:
    """Node B's clock runs an hour ahead of node A's. A claims an entry and its delivery is
    slow; B polls all the while. Before issue 11 B compared A's lease with its own clock,
    took the entry over at once and sent it a second time."""
    a_store = await open_store(store_url, clock=_utcnow)
    b_store = await open_store(store_url, clock=_skewed(1))
    a_up, b_up = _client(upstream), _client(upstream)
    try:
        entry = await _released(a_store, _utcnow())
        # A lease far longer than the delivery: only the skew could make B take over.
        a = _worker(a_store, a_up, "node-a", _utcnow, lease=30.0)
        b = _worker(b_store, b_up, "node-b", _skewed(1), lease=30.0)
        upstream.hang_next("DATA", 2.0)
        delivering = asyncio.create_task(a.run_once())
        await _sending(upstream)
        while not delivering.done():
            await b.run_once()
            await asyncio.sleep(0.2)
        await delivering
        await b.run_once()
        assert [m.rcpt_tos for m in upstream.messages] == [("a@client.example",)]
        done = await a_store.get(entry.id)
        assert (done.state, done.attempts) == ("delivered", 1)
    finally:
        for closing in (a_up, b_up, a_store, b_store):
            await closing.close()


async def test_a_delivery_longer_than_its_lease_keeps_its_claim(
    store_url: str, upstream: RecordingUpstream
) -> None:
    """A 1 s lease and an upstream that takes 3 s to answer the dot: the heartbeat renews
    the claim, so the other node never takes the entry over (it did before issue 11)."""
    a_store = await open_store(store_url, clock=_utcnow)
    b_store = await open_store(store_url, clock=_utcnow)
    a_up, b_up = _client(upstream), _client(upstream)
    try:
        entry = await _released(a_store, _utcnow())
        a = _worker(a_store, a_up, "node-a", _utcnow, lease=1.0)
        b = _worker(b_store, b_up, "node-b", _utcnow, lease=1.0)
        upstream.hang_next("DATA", 3.0)
        delivering = asyncio.create_task(a.run_once())
        await _sending(upstream)
        claims: set[str | None] = set()
        while not delivering.done():
            await b.run_once()
            claims.add((await b_store.get(entry.id, with_data=False)).claimed_by)
            await asyncio.sleep(0.2)
        await delivering
        assert claims <= {"node-a", None}
        assert [m.rcpt_tos for m in upstream.messages] == [("a@client.example",)]
        assert (await a_store.get(entry.id)).state == "delivered"
    finally:
        for closing in (a_up, b_up, a_store, b_store):
            await closing.close()
