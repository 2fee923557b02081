"""The audit log proves itself (issue 11): a keyed chain, group commit, anchored heads.

On main the chain was unkeyed: an edited row with the later hashes recomputed by the
project's own `chain_hash` verified as "chain intact", and deleting the newest rows was
invisible. Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import psycopg
import pytest

from sendguard.queue.auditkey import AuditKey, load_or_create_key, parse_head, read_key
from sendguard.queue.backends import open_store
from sendguard.queue.codec import AuditKeyError, audit_from_row, chain_hash
from sendguard.queue.store import AuditHead, Store
from tests.support.store import FakeClock

KEY = AuditKey(b"k" * 32, "test.key")


def _rows(store_url: str, sql: str = "SELECT * FROM audit ORDER BY seq") -> list[tuple]:  # type: ignore[type-arg]
    if store_url.startswith("sqlite:"):
        conn = sqlite3.connect(store_url.removeprefix("sqlite:///"))
        rows = conn.execute(sql).fetchall()
        conn.close()
        return rows
    with psycopg.connect(store_url, autocommit=True) as pg:
        return pg.execute(sql.encode()).fetchall()


def _run(store_url: str, *statements: tuple[str, tuple[object, ...]]) -> None:
    """Change the audit table behind the store's back, triggers dropped (an attacker with
    database access)."""
    if store_url.startswith("sqlite:"):
        conn = sqlite3.connect(store_url.removeprefix("sqlite:///"))
        conn.execute("DROP TRIGGER IF EXISTS audit_no_update")
        conn.execute("DROP TRIGGER IF EXISTS audit_no_delete")
        for sql, args in statements:
            conn.execute(sql, args)
        conn.commit()
        conn.close()
        return
    with psycopg.connect(store_url, autocommit=True) as pg:
        pg.execute("DROP TRIGGER IF EXISTS audit_no_change ON audit")
        for sql, args in statements:
            pg.execute(sql.replace("?", "%s").encode(), args)


def _rechain(store_url: str, *, edit_seq: int, details: str, downgrade: bool = False) -> None:
    """Edit one record's details and recompute every later hash with `chain_hash` (the
    project's own, unkeyed function), as the attack on main did."""
    records = [audit_from_row(row) for row in _rows(store_url)]
    prev = records[0].prev_hash
    statements = []
    for record in records:
        text = details if record.seq == edit_seq else record.details
        digest = chain_hash(
            prev, seq=record.seq, at=record.at, event=record.event, actor=record.actor,
            queue_id=record.queue_id, transaction_id=record.transaction_id, details=text,
        )  # fmt: skip
        sql = "UPDATE audit SET details = ?, prev_hash = ?, hash = ?"
        sql += ", v = 1, key_id = NULL" if downgrade else ""
        statements.append((sql + " WHERE seq = ?", (text, prev, digest, record.seq)))
        prev = digest
    _run(store_url, *statements)


async def _keyed(store_url: str, clock: FakeClock, key: AuditKey | None = KEY) -> Store:
    return await open_store(store_url, clock=clock, audit_key=key)


async def _fill(store: Store, clock: FakeClock, n: int = 5) -> None:
    for i in range(n):
        await store.audit("verdict", actor="relay", transaction_id=f"t{i}", details={"n": i})
        clock.advance(seconds=1)


async def test_edit_rechained_with_chain_hash_is_detected(store_url: str, clock: FakeClock) -> None:
    """The attack from main: edit a row, recompute the later hashes with `chain_hash`."""
    store = await _keyed(store_url, clock)
    await _fill(store, clock)
    assert (await store.verify_audit()).ok
    _rechain(store_url, edit_seq=3, details='{"n":99}')
    check = await store.verify_audit()
    assert (check.ok, check.bad_seq) == (False, 1)
    assert "changed" in check.problem
    await store.close()


async def test_whole_chain_downgraded_to_unkeyed_is_detected(
    store_url: str, clock: FakeClock
) -> None:
    """Marking every row unkeyed and re-chaining with SHA-256 does not verify with the key."""
    store = await _keyed(store_url, clock)
    await _fill(store, clock)
    _rechain(store_url, edit_seq=3, details='{"n":99}', downgrade=True)
    check = await store.verify_audit()
    assert check.ok is False
    assert "unkeyed although an audit key is given" in check.problem
    await store.close()


async def test_deleted_newest_rows_are_detected_by_an_anchored_head(
    store_url: str, clock: FakeClock
) -> None:
    """Cutting records off the end leaves a valid chain; the exported head catches it."""
    store = await _keyed(store_url, clock)
    await _fill(store, clock)
    head = await store.audit_head()
    assert head is not None and head.seq == 5
    assert (await store.verify_audit([head])).anchors == 1
    _run(store_url, ("DELETE FROM audit WHERE seq > ?", (3,)))
    assert (await store.verify_audit()).ok  # what main could say: nothing
    check = await store.verify_audit([head])
    assert check.ok is False and "not in the log, which ends at record 3" in check.problem
    hash_only = AuditHead(0, head.hash)
    assert (await store.verify_audit([hash_only])).ok is False
    await store.close()


async def test_rechained_log_differs_from_an_anchored_head(
    store_url: str, clock: FakeClock
) -> None:
    """Even someone holding the key cannot re-chain past an anchor: the head differs."""
    store = await _keyed(store_url, clock)
    await _fill(store, clock, 3)
    head = await store.audit_head()
    assert head is not None
    _run(store_url, ("DELETE FROM audit WHERE seq >= ?", (2,)))
    await _fill(store, clock, 2)  # rewritten with the key: a valid keyed chain again
    assert (await store.verify_audit()).ok
    check = await store.verify_audit([head])
    assert (check.ok, check.bad_seq) == (False, 3)
    assert "not the anchored head" in check.problem
    await store.close()


async def test_missing_or_wrong_key_is_a_clear_error(store_url: str, clock: FakeClock) -> None:
    store = await _keyed(store_url, clock)
    await _fill(store, clock, 2)
    await store.close()
    keyless = await _keyed(store_url, clock, key=None)
    with pytest.raises(AuditKeyError, match="the audit key is needed"):
        await keyless.verify_audit()
    with pytest.raises(AuditKeyError, match="has no audit key to extend it"):
        await keyless.audit("x", actor="a", details={})
    await keyless.close()
    other = await _keyed(store_url, clock, key=AuditKey(b"o" * 32, "other.key"))
    with pytest.raises(AuditKeyError, match="wrong SENDGUARD_AUDIT_KEY"):
        await other.verify_audit()
    await other.close()


async def test_legacy_unkeyed_chain_stays_verifiable_and_is_sealed(
    store_url: str, clock: FakeClock
) -> None:
    """Records written before the key existed (v 1) still verify; sealing makes the newest
    record keyed, and later unkeyed rows would be a break."""
    legacy = await _keyed(store_url, clock, key=None)
    await _fill(legacy, clock, 3)
    assert (await legacy.verify_audit()).ok
    await legacy.close()
    store = await _keyed(store_url, clock)
    assert await store.seal_chain() is True
    assert await store.seal_chain() is False
    await _fill(store, clock, 2)
    check = await store.verify_audit()
    assert (check.ok, check.records, check.keyed_from) == (True, 6, 4)
    records = await store.audit_records()
    assert [r.v for r in records] == [1, 1, 1, 2, 2, 2]
    assert records[3].event == "audit_keyed"
    assert {r.key_id for r in records[3:]} == {KEY.key_id}
    await store.close()


async def test_group_commit_batches_concurrent_appends(store_url: str, clock: FakeClock) -> None:
    """60 concurrent appends share a few commits; each returns only once committed, and the
    chain is whole."""
    store = await _keyed(store_url, clock)
    commits: list[int] = []
    write = store._write_audits  # type: ignore[attr-defined]

    async def counting(batch: list[object]) -> None:
        commits.append(len(batch))
        await write(batch)

    store._write_audits = counting  # type: ignore[attr-defined]
    await asyncio.gather(
        *(store.audit("verdict", actor="relay", details={"n": i}) for i in range(60))
    )
    assert sum(commits) == 60
    assert len(commits) < 60 / 2, commits
    check = await store.verify_audit()
    assert (check.ok, check.records) == (True, 60)
    await store.close()


def test_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "var" / "audit.key"
    key, created = load_or_create_key(path)
    assert created and (path.stat().st_mode & 0o777) == 0o600
    again, created_again = load_or_create_key(path)
    assert (again.secret, created_again) == (key.secret, False)
    assert repr(key.secret) not in repr(key)  # the secret never shows in logs or errors
    path.write_text("not base64!\n")
    with pytest.raises(Exception, match="not base64"):
        read_key(path)


def test_head_forms() -> None:
    digest = "ab" * 32
    assert parse_head(digest) == AuditHead(0, digest)
    assert parse_head(f"12:{digest}") == AuditHead(12, digest)
    assert parse_head(f'{{"seq": 12, "hash": "{digest}", "at": null}}') == AuditHead(12, digest)
    with pytest.raises(Exception, match="64 hex digits"):
        parse_head("12:abc")


async def test_cli_verify_says_when_the_key_is_missing_or_wrong(
    tmp_path: Path,
    clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`sendguard audit verify`: exit 0 with the relay's key file (found beside the store),
    exit 2 with a clear message when it is missing or another key, exit 1 on a broken head."""
    from sendguard.cli.main import main

    url = f"sqlite:///{tmp_path / 'q.db'}"
    key, _ = load_or_create_key(tmp_path / "audit.key")  # where `serve` puts it
    store = await open_store(url, clock=clock, audit_key=key)
    await _fill(store, clock, 3)
    head = await store.audit_head()
    await store.close()
    assert head is not None
    monkeypatch.delenv("SENDGUARD_AUDIT_KEY", raising=False)

    def verify(*extra: str) -> tuple[int, str, str]:
        code = main(["audit", "verify", "--store", url, *extra])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = await asyncio.to_thread(verify, "--head", f"{head.seq}:{head.hash}")
    assert code == 0 and "keyed (HMAC) from record 1" in out and "1 anchored head" in out
    code, _, err = await asyncio.to_thread(verify, "--head", f"9:{head.hash}")
    assert code == 1 and "not in the log" in err
    monkeypatch.setenv("SENDGUARD_AUDIT_KEY", str(tmp_path / "missing.key"))
    code, _, err = await asyncio.to_thread(verify)
    assert code == 2 and "missing.key does not exist" in err
    other, _ = load_or_create_key(tmp_path / "other.key")
    monkeypatch.setenv("SENDGUARD_AUDIT_KEY", str(tmp_path / "other.key"))
    code, _, err = await asyncio.to_thread(verify)
    assert code == 2 and "wrong SENDGUARD_AUDIT_KEY" in err and other.key_id in err
    (tmp_path / "audit.key").unlink()
    monkeypatch.delenv("SENDGUARD_AUDIT_KEY")
    code, _, err = await asyncio.to_thread(verify)
    assert code == 2 and "the audit key is needed" in err
