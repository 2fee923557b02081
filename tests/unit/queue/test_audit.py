"""The audit log on both backends: hash chain, tamper detection, append-only, export order."""

from __future__ import annotations

import datetime as dt
import sqlite3

import psycopg
import pytest

from sendguard.errors import StoreError
from sendguard.queue.store import Store
from tests.support.store import FakeClock, sample_envelope, sample_verdict


async def _fill(store: Store, clock: FakeClock) -> None:
    """Write a few verdict events and one queued entry."""
    for n in range(5):
        await store.audit(
            "verdict",
            actor="relay",
            transaction_id=f"tx{n}",
            details={"action": "pass", "rule_id": None, "recipients": n, "件名": "見積"},
        )
        clock.advance(seconds=1)
    await store.enqueue(
        envelope=sample_envelope(), data=b"x", verdict=sample_verdict(), state="held"
    )


def _tamper(store_url: str, sql: str) -> None:
    """Change the audit table behind the store's back, as an attacker with DB access could."""
    if store_url.startswith("sqlite:"):
        conn = sqlite3.connect(store_url.removeprefix("sqlite:///"))
        conn.execute("DROP TRIGGER audit_no_update")
        conn.execute("DROP TRIGGER audit_no_delete")
        conn.execute(sql)
        conn.commit()
        conn.close()
    else:
        with psycopg.connect(store_url, autocommit=True) as pg:
            pg.execute("DROP TRIGGER audit_no_change ON audit")
            pg.execute(sql.encode())


async def test_chain_of_untouched_log_verifies(store: Store, clock: FakeClock) -> None:
    """A log written only through the store verifies, counting every record."""
    await _fill(store, clock)
    check = await store.verify_audit()
    assert (check.ok, check.records) == (True, 6)


async def test_changed_details_are_detected(store: Store, store_url: str, clock: FakeClock) -> None:
    """Editing one record's details breaks the chain at that record."""
    await _fill(store, clock)
    _tamper(store_url, 'UPDATE audit SET details = \'{"action":"hold"}\' WHERE seq = 3')
    check = await store.verify_audit()
    assert (check.ok, check.bad_seq) == (False, 3)
    assert "changed" in check.problem


async def test_deleted_record_is_detected(store: Store, store_url: str, clock: FakeClock) -> None:
    """Removing a record from the middle is reported as a missing record."""
    await _fill(store, clock)
    _tamper(store_url, "DELETE FROM audit WHERE seq = 2")
    check = await store.verify_audit()
    assert (check.ok, check.bad_seq) == (False, 3)
    assert "record 2 missing" in check.problem


async def test_rewritten_chain_tail_is_detected(
    store: Store, store_url: str, clock: FakeClock
) -> None:
    """Replacing a record's hash (to hide an edit) breaks the link of the next record."""
    await _fill(store, clock)
    _tamper(store_url, "UPDATE audit SET hash = prev_hash WHERE seq = 4")
    check = await store.verify_audit()
    assert check.ok is False
    assert check.bad_seq == 4


async def test_audit_table_refuses_updates(store: Store, store_url: str, clock: FakeClock) -> None:
    """The database itself refuses to change an audit record (append-only trigger)."""
    await _fill(store, clock)
    if store_url.startswith("sqlite:"):
        conn = sqlite3.connect(store_url.removeprefix("sqlite:///"))
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE audit SET actor = 'x'")
        conn.close()
    else:
        with (
            psycopg.connect(store_url, autocommit=True) as pg,
            pytest.raises(psycopg.errors.RaiseException, match="append-only"),
        ):
            pg.execute("DELETE FROM audit")


async def test_export_pages_in_chain_order_and_filters_by_time(
    store: Store, clock: FakeClock
) -> None:
    """Records come back in sequence, pageable by seq, and `since` skips older ones."""
    start = clock.now
    await _fill(store, clock)
    page = await store.audit_records(after_seq=0, limit=4)
    rest = await store.audit_records(after_seq=page[-1].seq)
    assert [r.seq for r in page + rest] == [1, 2, 3, 4, 5, 6]
    assert page[0].details == '{"action":"pass","recipients":0,"rule_id":null,"件名":"見積"}'
    recent = await store.audit_records(since=start + dt.timedelta(seconds=3))
    assert [r.transaction_id for r in recent][:2] == ["tx3", "tx4"]
    assert recent[-1].event == "queued"


async def test_closed_store_fails_with_store_error(store_url: str, clock: FakeClock) -> None:
    """Using a store after close raises StoreError, never a driver exception."""
    from sendguard.queue.backends import open_store

    closed = await open_store(store_url, clock=clock)
    await closed.close()
    with pytest.raises(StoreError):
        await closed.audit("x", actor="a", details={})
