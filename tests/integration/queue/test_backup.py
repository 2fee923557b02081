"""`sendguard backup`/`restore` on real stores: SQLite copied while another connection keeps
writing held mail, PostgreSQL dumped with the real pg_dump and restored with pg_restore."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
from pathlib import Path

import psycopg
import pytest
from tests.support.store import postgres_schema, sample_envelope, sample_message, sample_verdict

from sendguard.cli.main import main
from sendguard.queue.auditkey import load_or_create_key
from sendguard.queue.backends import open_store
from sendguard.queue.backup import BackupError, backup, restore
from sendguard.queue.store import Store


async def _hold(store: Store, n: int, kept: dict[str, bytes] | None = None) -> str:
    data = sample_message(f"見積書 {n}")
    entry = await store.enqueue(
        envelope=sample_envelope(), data=data, verdict=sample_verdict(), state="held"
    )
    if kept is not None:
        kept[entry.id] = data
    return entry.id


async def test_sqlite_backup_under_load_restores_every_held_message(tmp_path: Path) -> None:
    """Held mail keeps arriving while the backup runs; the restored copy is one consistent
    snapshot: everything held before the backup, every message whole, the chain verifying."""
    url = f"sqlite:///{tmp_path / 'var' / 'sendguard.db'}"
    key, _ = load_or_create_key(tmp_path / "var" / "audit.key")
    live = await open_store(url, audit_key=key)
    data: dict[str, bytes] = {}
    before = [await _hold(live, n, data) for n in range(20)]
    written = list(before)
    stop = asyncio.Event()

    async def keep_writing() -> None:
        while not stop.is_set():
            written.append(await _hold(live, len(written), data))

    writer = asyncio.create_task(keep_writing())
    await asyncio.sleep(0.1)
    during = len(written)
    copy = await asyncio.to_thread(backup, url, tmp_path / "backups" / "sendguard.db")
    await asyncio.sleep(0.1)
    stop.set()
    await writer
    await live.close()
    assert during > len(before) and len(written) > copy.entries >= during  # writes overlapped
    assert stat.S_IMODE(copy.path.stat().st_mode) == 0o600
    assert not list(copy.path.parent.glob(".*tmp"))

    restored_url = f"sqlite:///{tmp_path / 'restored' / 'sendguard.db'}"
    again = restore(copy.path, restored_url)
    assert again.entries == copy.entries
    store = await open_store(restored_url, audit_key=key)
    try:
        entries = await store.list(states=("held",))
        ids = [e.id for e in entries]
        assert set(before) <= set(ids) <= set(written)
        assert ids == written[: len(ids)]  # a prefix: nothing missing in the middle
        for queue_id in ids:
            assert (await store.get(queue_id)).data == data[queue_id]
        check = await store.verify_audit()
        assert check.ok and check.records >= len(ids)
    finally:
        await store.close()


async def test_restore_refuses_an_existing_store_or_its_wal(tmp_path: Path) -> None:
    """Restoring over a store, or beside its leftover -wal file, is refused (the WAL would be
    replayed into the restored copy)."""
    url = f"sqlite:///{tmp_path / 'sendguard.db'}"
    await (await open_store(url)).close()
    copy = backup(url, tmp_path / "copy.db")
    with pytest.raises(BackupError, match="exists"):
        restore(copy.path, url)
    (tmp_path / "sendguard.db").unlink()
    (tmp_path / "sendguard.db-wal").write_bytes(b"stale")
    with pytest.raises(BackupError, match="-wal"):
        restore(copy.path, url)
    with pytest.raises(BackupError, match="is the store itself"):
        backup(f"sqlite:///{copy.path}", copy.path)


def test_backup_command_never_creates_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong store path: exit 1 with the reason; no database appears there."""
    missing = tmp_path / "nothing" / "sendguard.db"
    code = main(["backup", str(tmp_path / "b.db"), "--store", f"sqlite:///{missing}"])
    assert code == 1 and "no SQLite store" in capsys.readouterr().err
    assert not missing.exists() and not (tmp_path / "b.db").exists()


async def test_backup_and_restore_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The commands read the relay's settings and say what the copy holds."""
    url = f"sqlite:///{tmp_path / 'sendguard.db'}"
    store = await open_store(url)
    await _hold(store, 1)
    await store.close()
    monkeypatch.setenv("SENDGUARD_CONFIG", "")
    monkeypatch.setenv("SENDGUARD_STORE", url)
    assert main(["backup", str(tmp_path / "b.db")]) == 0
    assert "1 queue entries" in capsys.readouterr().out
    monkeypatch.setenv("SENDGUARD_STORE", f"sqlite:///{tmp_path / 'new.db'}")
    assert main(["restore", str(tmp_path / "b.db")]) == 0
    assert "store restored" in capsys.readouterr().out


@pytest.mark.postgres
async def test_postgres_backup_is_a_dump_pg_restore_brings_back(tmp_path: Path) -> None:
    """pg_dump in custom format of the store's schema; dropped and restored, it is all there."""
    with postgres_schema() as url:
        store = await open_store(url)
        ids = [await _hold(store, n) for n in range(3)]
        await store.close()
        copy = await asyncio.to_thread(backup, url, tmp_path / "sendguard.dump")
        assert copy.path.read_bytes()[:5] == b"PGDMP" and copy.entries == 3
        assert stat.S_IMODE(copy.path.stat().st_mode) == 0o600
        base = url.split("?")[0]
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT current_schema()").fetchone()
            assert row is not None
            conn.execute(f"DROP SCHEMA {row[0]} CASCADE".encode())
        restore_cmd = ["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={base}"]
        await asyncio.to_thread(subprocess.run, [*restore_cmd, str(copy.path)], check=True)
        store = await open_store(url)
        try:
            assert sorted(e.id for e in await store.list()) == sorted(ids)
            assert (await store.verify_audit()).ok
        finally:
            await store.close()


@pytest.mark.postgres
def test_postgres_backup_without_pg_dump_names_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No pg_dump on PATH: a clear error with the command to run, nothing written."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("pg_dump") is None
    with postgres_schema() as url, pytest.raises(BackupError, match="pg_dump --format=custom"):
        backup(url, tmp_path / "x.dump")
    assert not (tmp_path / "x.dump").exists()
    assert os.environ["PATH"] == str(empty)
