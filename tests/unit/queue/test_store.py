"""The store contract, on both backends: durability, CAS, claims, outbox, migrations."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from dataclasses import replace

import psycopg
import pytest

from sendguard.entry import FINISHED, Decision, Entry, IllegalMove, allowed, move, sources
from sendguard.errors import Conflict, NotFound, StoreError
from sendguard.model import Action, HoldParams
from sendguard.queue.backends import open_store
from sendguard.queue.store import Store
from tests.support.store import FakeClock, sample_envelope, sample_message, sample_verdict


async def test_migrations_bring_a_new_store_to_the_latest_version(store: Store) -> None:
    """Opening an empty database creates the schema at the newest migration."""
    from sendguard.queue.migrations import SQLITE_MIGRATIONS

    assert await store.schema_version() == len(SQLITE_MIGRATIONS)


async def test_reopening_does_not_migrate_twice(store_url: str, clock: FakeClock) -> None:
    """A second open of a migrated database keeps its version and data."""
    first = await open_store(store_url, clock=clock)
    entry = await first.enqueue(
        envelope=sample_envelope(), data=b"x", verdict=sample_verdict(), state="held"
    )
    version = await first.schema_version()
    await first.close()
    second = await open_store(store_url, clock=clock)
    assert await second.schema_version() == version
    assert (await second.get(entry.id)).data == b"x"
    await second.close()


async def test_enqueued_entry_survives_close_and_reopen(store_url: str, clock: FakeClock) -> None:
    """What enqueue returned is in the store after the store is closed and opened again."""
    data = sample_message()
    verdict = sample_verdict()
    envelope = sample_envelope("tanaka@corp.example", "a@client.example", "b@client.example")
    first = await open_store(store_url, clock=clock)
    entry = await first.enqueue(envelope=envelope, data=data, verdict=verdict, state="held")
    await first.close()

    second = await open_store(store_url, clock=clock)
    again = await second.get(entry.id)
    await second.close()
    assert again.data == data
    assert again.envelope == envelope
    assert again.verdict == verdict
    assert again.state == "held"
    assert again.size == len(data)
    assert again.created_at == clock.now


async def test_hold_expiry_skips_the_weekend(store: Store, clock: FakeClock) -> None:
    """A hold enqueued Friday 18:00 Tokyo with 24 business hours skips the weekend and
    Monday 23 November (勤労感謝の日), so it expires Tuesday 18:00."""
    verdict = sample_verdict(hold=HoldParams(expire_hours=24))
    entry = await store.enqueue(
        envelope=sample_envelope(), data=b"x", verdict=verdict, state="held"
    )
    assert entry.expires_at == dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)


async def test_delayed_entry_release_time_comes_from_the_verdict(
    store: Store, clock: FakeClock
) -> None:
    """A delay verdict of 5 minutes without an explicit time is released 5 minutes later."""
    verdict = sample_verdict(Action.DELAY, delay_minutes=5)
    entry = await store.enqueue(
        envelope=sample_envelope(), data=b"x", verdict=verdict, state="delayed"
    )
    assert entry.release_at == clock.now + dt.timedelta(minutes=5)
    due = await store.list(states=["delayed"], due_before=clock.advance(minutes=5))
    assert [e.id for e in due] == [entry.id]


async def test_get_unknown_id_raises_not_found(store: Store) -> None:
    """Asking for an id that was never stored names the id."""
    with pytest.raises(NotFound, match="NOPE"):
        await store.get("NOPE")


async def test_transition_is_compare_and_set(store: Store) -> None:
    """A transition from the wrong state changes nothing and raises Conflict."""
    entry = await store.enqueue(
        envelope=sample_envelope(), data=b"x", verdict=sample_verdict(), state="held"
    )
    released = await store.transition(
        entry.id, expected="held", to="released", actor="boss", event="released"
    )
    assert released.state == "released"
    with pytest.raises(Conflict, match="released, not held"):
        await store.transition(
            entry.id, expected="held", to="rejected", actor="other", event="rejected"
        )
    current = await store.get(entry.id)
    assert (current.state, current.decided_by) == ("released", "boss")


async def test_a_move_outside_the_state_table_is_refused(store: Store) -> None:
    """A decision that moves an entry between states `MOVES` does not connect (held straight
    to delivered, a finished entry back to held) is refused, and nothing changes."""
    entry = await store.enqueue(
        envelope=sample_envelope(), data=b"x", verdict=sample_verdict(), state="held"
    )
    with pytest.raises(IllegalMove, match="from held to delivered"):
        await store.transition(
            entry.id, expected="held", to="delivered", actor="boss", event="delivered"
        )
    await store.transition(entry.id, expected="held", to="rejected", actor="boss", event="r")
    with pytest.raises(IllegalMove, match="from rejected to held"):
        await store.apply(
            entry.id, lambda e: Decision(replace(e, state="held"), event="reopened", actor="x")
        )
    current = await store.get(entry.id)
    assert (current.state, current.decided_by) == ("rejected", "boss")
    assert [r.event for r in await store.audit_records()][-1] == "r"


def test_the_state_table_names_where_each_review_action_starts() -> None:
    """The review rules and the stores read one table: what a reviewer may release, reject
    or cancel, and what the worker and the stores may do, all come from `MOVES`."""
    assert sources("released", "review") == ("held", "delayed")
    assert sources("rejected", "review") == ("held", "delayed")
    assert sources("cancelled", "review") == ("delayed",)
    assert sources("delivering", "store") == ("released",)
    assert not any(allowed(done, "held") for done in FINISHED)


def test_the_worker_and_reviewers_move_entries_only_as_the_table_allows() -> None:
    """`move` asks the table who may make a move: only a reviewer releases a hold, only the
    worker expires one or marks a delivery done; nobody takes a finished entry back."""
    now = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    held = Entry(id="Q1", state="held", envelope=sample_envelope(), data=b"x",
                 verdict=sample_verdict(), created_at=now, updated_at=now, size=1)  # fmt: skip
    assert move(held, "released", "review").state == "released"
    assert move(held, "expired", "worker", reason="late").reason == "late"
    with pytest.raises(IllegalMove, match="worker cannot move it from held to released"):
        move(held, "released", "worker")
    with pytest.raises(IllegalMove):
        move(held, "delivered", "worker")
    with pytest.raises(IllegalMove):
        move(replace(held, state="rejected"), "released", "review")


async def test_concurrent_transitions_let_exactly_one_win(store: Store) -> None:
    """Ten simultaneous release attempts of one held entry: one succeeds, nine conflict."""
    entry = await store.enqueue(
        envelope=sample_envelope(), data=b"x", verdict=sample_verdict(), state="held"
    )
    results = await asyncio.gather(
        *(
            store.transition(entry.id, expected="held", to="released", actor=f"r{i}", event="x")
            for i in range(10)
        ),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))


async def _released_entries(store: Store, count: int, clock: FakeClock) -> set[str]:
    """Enqueue `count` entries and make them due for delivery now."""
    ids = set()
    for _ in range(count):
        entry = await store.enqueue(
            envelope=sample_envelope(), data=b"x", verdict=sample_verdict(), state="held"
        )
        await store.transition(entry.id, expected="held", to="released", actor="b", event="r")
        await store.apply(
            entry.id,
            lambda e: Decision(replace(e, next_attempt_at=clock.now), event="due", actor="t"),
        )
        ids.add(entry.id)
    return ids


async def test_two_concurrent_claimers_get_each_row_exactly_once(
    store_url: str, clock: FakeClock
) -> None:
    """Two store connections claiming at once split the due rows without overlap."""
    first = await open_store(store_url, clock=clock)
    second = await open_store(store_url, clock=clock)
    ids = await _released_entries(first, 30, clock)

    async def drain(store: Store, node: str) -> list[str]:
        got: list[str] = []
        while batch := await store.claim_due(4, node, now=clock.now):
            got.extend(e.id for e in batch)
            await asyncio.sleep(0)
        return got

    a, b = await asyncio.gather(drain(first, "node-a"), drain(second, "node-b"))
    await first.close()
    await second.close()
    assert sorted(a + b) == sorted(ids)
    assert not set(a) & set(b)


async def test_claimed_entry_is_reclaimed_after_its_lease(store: Store, clock: FakeClock) -> None:
    """A delivery claimed by a node that died is claimed again once the lease runs out.

    Leases run on the database's clock (since issue 11), so the lease here is a real second;
    the caller's clock moving on (an hour here) does not end it."""
    (entry_id,) = await _released_entries(store, 1, clock)
    (claimed,) = await store.claim_due(5, "dead-node", now=clock.now, lease=1.0)
    assert (claimed.id, claimed.state, claimed.claimed_by) == (entry_id, "delivering", "dead-node")
    assert await store.claim_due(5, "other", now=clock.advance(hours=1), lease=1.0) == []
    await asyncio.sleep(1.1)
    (again,) = await store.claim_due(5, "other", now=clock.now, lease=60)
    assert again.claimed_by == "other"
    assert again.data == b"x"


async def test_enqueue_queues_notices_for_sender_and_reviewers(
    store: Store, clock: FakeClock
) -> None:
    """A hold asks for a sender notice and a reviewer notice, each claimed once."""
    entry = await store.enqueue(
        envelope=sample_envelope(), data=b"x", verdict=sample_verdict(), state="held"
    )
    notices = await store.claim_notices(10, "n1", now=clock.now)
    assert [(n.queue_id, n.kind) for n in notices] == [(entry.id, "held"), (entry.id, "reviewers")]
    assert await store.claim_notices(10, "n2", now=clock.now) == []
    await store.finish_notice(notices[0].id)
    await store.finish_notice(notices[1].id, retry_at=clock.now + dt.timedelta(minutes=1))
    later = await store.claim_notices(10, "n2", now=clock.advance(minutes=1))
    assert [(n.kind, n.attempts) for n in later] == [("reviewers", 2)]


async def test_delete_removes_entry_and_is_audited(store: Store) -> None:
    """Deleting an entry makes it unknown and leaves an audit record naming the actor."""
    entry = await store.enqueue(
        envelope=sample_envelope(), data=b"x", verdict=sample_verdict(), state="held"
    )
    await store.delete(entry.id, actor="admin")
    with pytest.raises(NotFound):
        await store.get(entry.id)
    records = await store.audit_records()
    assert (records[-1].event, records[-1].actor, records[-1].queue_id) == (
        "deleted",
        "admin",
        entry.id,
    )


async def test_purge_removes_only_old_finished_entries(store: Store, clock: FakeClock) -> None:
    """Purge drops finished entries older than the cut-off and keeps held and recent ones."""
    old = await store.enqueue(
        envelope=sample_envelope(), data=b"x", verdict=sample_verdict(), state="held"
    )
    await store.transition(old.id, expected="held", to="rejected", actor="b", event="rejected")
    held = await store.enqueue(
        envelope=sample_envelope(), data=b"x", verdict=sample_verdict(), state="held"
    )
    clock.advance(days=10)
    recent = await store.enqueue(
        envelope=sample_envelope(), data=b"x", verdict=sample_verdict(), state="held"
    )
    await store.transition(recent.id, expected="held", to="rejected", actor="b", event="rejected")
    count = await store.purge(before=clock.now - dt.timedelta(days=5), actor="admin")
    assert count == 1
    remaining = {e.id for e in await store.list()}
    assert remaining == {held.id, recent.id}


async def test_upgrade_from_schema_1_keeps_entries(store_url: str, clock: FakeClock) -> None:
    """A database at schema 1 (no delivered_to column) is migrated on open; entries still read."""
    store = await open_store(store_url, clock=clock)
    entry = await store.enqueue(
        envelope=sample_envelope(), data=b"x", verdict=sample_verdict(), state="held"
    )
    await store.close()
    _sql(
        store_url,
        "ALTER TABLE queue_entry DROP COLUMN delivered_to",
        "ALTER TABLE audit DROP COLUMN v",  # added by migration 4
        "ALTER TABLE audit DROP COLUMN key_id",
        "ALTER TABLE queue_entry DROP COLUMN quarantined_from",
        # Schema-1 blobs had no version: '{"v":2,' (7 characters) was not there.
        "UPDATE queue_entry SET envelope = '{' || substr(envelope, 8), "
        "verdict = '{' || substr(verdict, 8)",
        "DELETE FROM schema_version WHERE version > 1",
    )
    upgraded = await open_store(store_url, clock=clock)
    from sendguard.queue.migrations import SQLITE_MIGRATIONS

    assert await upgraded.schema_version() == len(SQLITE_MIGRATIONS)
    again = await upgraded.get(entry.id)
    assert (again.data, again.delivered_to) == (b"x", ())
    assert (again.envelope, again.verdict) == (entry.envelope, entry.verdict)
    assert (await upgraded.verify_audit()).ok
    await upgraded.close()


def _sql(store_url: str, *statements: str) -> None:
    """Run statements on the database behind the store's back."""
    if store_url.startswith("sqlite:"):
        conn = sqlite3.connect(store_url.removeprefix("sqlite:///"))
        for statement in statements:
            conn.execute(statement)
        conn.commit()
        conn.close()
    else:
        with psycopg.connect(store_url, autocommit=True) as pg:
            for statement in statements:
                pg.execute(statement.encode())


async def test_newer_schema_is_refused(store_url: str, clock: FakeClock) -> None:
    """A database migrated by a newer sendguard is not touched, with a clear message."""
    store = await open_store(store_url, clock=clock)
    await store.close()
    _sql(store_url, "INSERT INTO schema_version VALUES (99, '2030-01-01')")
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        await open_store(store_url, clock=clock)
