"""The history tables on SQLite and PostgreSQL: record (idempotent), snapshot, forget, expire."""

from __future__ import annotations

import datetime as dt

import pytest

from sendguard.correspondence import Delivery, Recipient, thread_key
from sendguard.errors import StoreError
from sendguard.history.extract import delivery
from sendguard.history.store import HistoryStore
from sendguard.model import Organisation
from tests.support.store import postgres_schema

ORG = Organisation(internal_domains=frozenset({"example-corp.co.jp"}))
T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)
SENDER = "yamada@example-corp.co.jp"


def sent(
    n: int, rcpts: tuple[str, ...], *, sender: str = SENDER, day: int = 0, refs: str = ""
) -> Delivery:
    """The record of message `n` as the relay would make it from its headers."""
    headers = f"Message-ID: <m{n}.{sender}@example-corp.co.jp>\r\n"
    headers += "To: 田中 太郎 <tanaka@tanaka-shoji.co.jp>\r\n"
    if refs:
        headers += f"References: {refs}\r\n"
    made = delivery(
        sender=sender,
        rcpts=rcpts,
        header_bytes=headers.encode(),
        organisation=ORG,
        at=T0 + dt.timedelta(days=day),
    )
    assert made is not None
    return made


async def test_record_counts_once_and_snapshot_explains(history: HistoryStore) -> None:
    """A message recorded twice counts once; the snapshot knows who was written to how often."""
    rcpts = ("tanaka@tanaka-shoji.co.jp", "suzuki@example-corp.co.jp")
    assert await history.record([sent(1, rcpts), sent(2, rcpts), sent(3, rcpts)]) == 3
    assert await history.record([sent(1, rcpts)]) == 0  # the same message again: no change
    snap = await history.snapshot(
        SENDER,
        [
            Recipient("tanaka@tanaka-shoji.co.jp", "tanaka-shoji.co.jp"),
            Recipient("tanaka@tanaka-shouji.co.jp", "tanaka-shouji.co.jp", "田中太郎"),
            Recipient("tanak@tanaka-shoji.co.jp", "tanaka-shoji.co.jp"),
        ],
    )
    assert snap.written == {"tanaka@tanaka-shoji.co.jp": 3}
    assert snap.domains == {"tanaka-shoji.co.jp": 3}  # the internal recipient is not recorded
    assert snap.sender_messages == 1
    # The lookalike address shares the name and the local part of the real correspondent.
    assert [k.address for k in snap.same_name["tanaka@tanaka-shouji.co.jp"]] == [
        "tanaka@tanaka-shoji.co.jp"
    ]
    assert snap.same_local["tanaka@tanaka-shouji.co.jp"][0].count == 3
    assert [k.address for k in snap.neighbours["tanaka-shoji.co.jp"]] == [
        "tanaka@tanaka-shoji.co.jp"
    ]
    assert await history.learned_domains(3) == {"tanaka-shoji.co.jp": 3}
    assert await history.learned_domains(4) == {}


async def test_threads_remember_their_domains(history: HistoryStore) -> None:
    """A reply referencing a recorded message finds the domains of that thread."""
    first = sent(10, ("tanaka@tanaka-shoji.co.jp",))
    await history.record([first])
    ref = f"<m10.{SENDER}@example-corp.co.jp>"
    snap = await history.snapshot(
        SENDER, [Recipient("x@other.example", "other.example")], [thread_key(ref)]
    )
    assert snap.thread_known and snap.thread_domains == {"tanaka-shoji.co.jp"}
    unknown = await history.snapshot(
        SENDER, [Recipient("x@other.example", "other.example")], [thread_key("<nope@x>")]
    )
    assert not unknown.thread_known


async def test_forget_removes_the_address_as_recipient_and_sender(history: HistoryStore) -> None:
    """`forget` deletes every row naming the address; others stay."""
    await history.record(
        [
            sent(1, ("tanaka@tanaka-shoji.co.jp", "sato@sato.example")),
            sent(2, ("kimura@kimura.example",), sender="tanaka@tanaka-shoji.co.jp"),
        ]
    )
    assert await history.forget("Tanaka@Tanaka-Shoji.co.jp") == 2
    snap = await history.snapshot(
        SENDER,
        [
            Recipient("tanaka@tanaka-shoji.co.jp", "tanaka-shoji.co.jp"),
            Recipient("sato@sato.example", "sato.example"),
        ],
    )
    assert snap.written == {"sato@sato.example": 1}
    assert (await history.counts())["history_recipient"] == 1


async def test_expire_drops_what_the_retention_no_longer_covers(history: HistoryStore) -> None:
    """Rows last written before the cut-off go; later ones stay."""
    await history.record([sent(1, ("old@old.example",)), sent(2, ("new@new.example",), day=30)])
    removed = await history.expire(T0 + dt.timedelta(days=10))
    assert removed > 0
    snap = await history.snapshot(
        SENDER,
        [Recipient("old@old.example", "old.example"), Recipient("new@new.example", "new.example")],
    )
    assert snap.written == {"new@new.example": 1}
    assert snap.domains == {"new.example": 1}


async def test_reopen_keeps_the_history(store_url: str) -> None:
    """The tables survive a restart (a migration that ran once is not run again)."""
    store = await HistoryStore.open(store_url)
    await store.record([sent(1, ("tanaka@tanaka-shoji.co.jp",))])
    await store.close()
    again = await HistoryStore.open(store_url)
    try:
        assert await again.learned_domains(1) == {"tanaka-shoji.co.jp": 1}
    finally:
        await again.close()


@pytest.mark.postgres
async def test_postgres_connection_comes_back_after_a_drop() -> None:
    """A terminated server connection: the next call reconnects instead of failing forever."""
    import psycopg

    with postgres_schema() as url:
        store = await HistoryStore.open(url)
        try:
            await store.record([sent(1, ("tanaka@tanaka-shoji.co.jp",))])
            pid = store._rows("SELECT pg_backend_pid()")[0][0]
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            with pytest.raises(StoreError):
                await store.learned_domains(1)  # the call that finds the connection dead
            assert await store.learned_domains(1) == {"tanaka-shoji.co.jp": 1}
        finally:
            await store.close()
