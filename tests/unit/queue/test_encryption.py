"""Encryption at rest of message bytes (AES-256-GCM), on both backends."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import psycopg
import pytest

from sendguard.errors import StoreError
from sendguard.queue.backends import open_store
from tests.support.store import FakeClock, sample_envelope, sample_message, sample_verdict


def _stored_bytes(store_url: str, queue_id: str) -> bytes:
    """The data column exactly as the database holds it."""
    if store_url.startswith("sqlite:"):
        conn = sqlite3.connect(store_url.removeprefix("sqlite:///"))
        row = conn.execute("SELECT data FROM queue_entry WHERE id = ?", (queue_id,)).fetchone()
        conn.close()
        return bytes(row[0])
    with psycopg.connect(store_url) as pg:
        cur = pg.execute("SELECT data FROM queue_entry WHERE id = %s", (queue_id,))
        found = cur.fetchone()
        assert found is not None
        return bytes(found[0])


def _file_bytes(path: Path) -> bytes:
    """The SQLite database file and its WAL, as on disk."""
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


async def test_bytes_at_rest_differ_and_round_trip(store_url: str, clock: FakeClock) -> None:
    """With a key the stored column holds no plaintext, and get() returns the original."""
    key = os.urandom(32)
    data = sample_message()
    store = await open_store(store_url, key=key, clock=clock)
    entry = await store.enqueue(
        envelope=sample_envelope(), data=data, verdict=sample_verdict(), state="held"
    )
    stored = _stored_bytes(store_url, entry.id)
    assert data not in stored
    assert b"Subject" not in stored
    assert (await store.get(entry.id)).data == data
    await store.close()
    if store_url.startswith("sqlite:"):
        assert b"Message-ID" not in _file_bytes(Path(store_url.removeprefix("sqlite:///")))


async def test_without_key_bytes_are_stored_plain(store_url: str, clock: FakeClock) -> None:
    """With no key the message is stored as it is (the default), behind a format byte."""
    store = await open_store(store_url, clock=clock)
    entry = await store.enqueue(
        envelope=sample_envelope(), data=b"hello", verdict=sample_verdict(), state="held"
    )
    await store.close()
    assert _stored_bytes(store_url, entry.id) == b"\x00hello"


async def test_wrong_key_gives_a_clear_error(store_url: str, clock: FakeClock) -> None:
    """Reading with another key says the key is wrong, not that data is corrupt."""
    store = await open_store(store_url, key=os.urandom(32), clock=clock)
    entry = await store.enqueue(
        envelope=sample_envelope(), data=b"secret", verdict=sample_verdict(), state="held"
    )
    await store.close()
    other = await open_store(store_url, key=os.urandom(32), clock=clock)
    with pytest.raises(StoreError, match="different key"):
        await other.get(entry.id)
    listed = await other.list()
    await other.close()
    assert [e.id for e in listed] == [entry.id]
    keyless = await open_store(store_url, clock=clock)
    with pytest.raises(StoreError, match="ENCRYPTION_KEY"):
        await keyless.get(entry.id)
    await keyless.close()


async def test_ciphertext_cannot_be_moved_to_another_entry(
    store_url: str, clock: FakeClock
) -> None:
    """The sealed bytes are bound to their queue id: copied to another row they fail."""
    key = os.urandom(32)
    store = await open_store(store_url, key=key, clock=clock)
    kwargs = {"envelope": sample_envelope(), "verdict": sample_verdict(), "state": "held"}
    a = await store.enqueue(data=b"for A", **kwargs)  # type: ignore[arg-type]
    b = await store.enqueue(data=b"for B", **kwargs)  # type: ignore[arg-type]
    sealed_a = _stored_bytes(store_url, a.id)
    if store_url.startswith("sqlite:"):
        conn = sqlite3.connect(store_url.removeprefix("sqlite:///"))
        conn.execute("UPDATE queue_entry SET data = ? WHERE id = ?", (sealed_a, b.id))
        conn.commit()
        conn.close()
    else:
        with psycopg.connect(store_url, autocommit=True) as pg:
            pg.execute("UPDATE queue_entry SET data = %s WHERE id = %s", (sealed_a, b.id))
    with pytest.raises(StoreError, match="corrupt"):
        await store.get(b.id)
    await store.close()
