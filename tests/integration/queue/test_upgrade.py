"""Upgrading a store written by every earlier sendguard: nothing lost, the audit chain still
verifies, migrations run once — before the relay processes fork.

The stores are rebuilt from `upgrade/{backend}-v{N}.json`: rows written by the code that
shipped schema N (`upgrade/generate.py`), on the shipped migrations 1..N, which must never
change (their digest is checked here).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.integration.queue.upgrade.generate import AUDIT_KEY, HERE, SHIPPED, migrations_digest
from tests.support.relay import RelayProcess
from tests.support.store import postgres_schema

from sendguard.queue.auditkey import AuditKey
from sendguard.queue.backends import open_store
from sendguard.queue.migrations import POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS

KEY = AuditKey(base64.b64decode(AUDIT_KEY))
LATEST = {"sqlite": len(SQLITE_MIGRATIONS), "postgres": len(POSTGRES_MIGRATIONS)}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend in turn."""
    return str(request.param)


@pytest.fixture
def empty_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A place for a store of that backend, nothing in it yet."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'sendguard.db'}"
    else:
        with postgres_schema() as url:
            yield url


def _fixture(backend: str, level: int) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HERE / f"{backend}-v{level}.json").read_text("utf-8"))
    return data


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "$b64" in value:
        return base64.b64decode(value["$b64"])
    if isinstance(value, dict) and "$ts" in value:
        return dt.datetime.fromisoformat(value["$ts"])
    return value


def _rebuild(fixture: dict[str, Any], url: str) -> None:
    """The store as the old sendguard left it: its migrations, its version rows, its rows."""
    level, tables = fixture["level"], fixture["tables"]
    if url.startswith("sqlite:"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        conn.execute(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        for number, statements in enumerate(SQLITE_MIGRATIONS[:level], start=1):
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version VALUES (?, '2026-11-20T09:00:00+00:00')", (number,)
            )
        for name, table in tables.items():
            marks = ", ".join("?" * len(table["columns"]))
            sql = f"INSERT INTO {name} ({', '.join(table['columns'])}) VALUES ({marks})"  # noqa: S608
            conn.executemany(sql, [[_decode(v) for v in row] for row in table["rows"]])
        conn.commit()
        conn.close()
        return
    with psycopg.connect(url, autocommit=True) as pg, pg.transaction():
        pg.execute(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
            "applied_at TIMESTAMPTZ NOT NULL)"
        )
        for number, statements in enumerate(POSTGRES_MIGRATIONS[:level], start=1):
            for statement in statements:
                pg.execute(statement.encode())
            pg.execute("INSERT INTO schema_version VALUES (%s, now())", (number,))
        for name, table in tables.items():
            marks = ", ".join(["%s"] * len(table["columns"]))
            sql = f"INSERT INTO {name} ({', '.join(table['columns'])}) VALUES ({marks})"  # noqa: S608
            with pg.cursor() as cur:
                cur.executemany(sql.encode(), [[_decode(v) for v in r] for r in table["rows"]])
        pg.execute("SELECT setval(pg_get_serial_sequence('notice', 'id'), max(id)) FROM notice")


def _rows(fixture: dict[str, Any], table: str) -> list[dict[str, Any]]:
    t = fixture["tables"][table]
    return [dict(zip(t["columns"], [_decode(v) for v in row], strict=True)) for row in t["rows"]]


@pytest.mark.parametrize("level", sorted(SHIPPED))
def test_shipped_migrations_are_unchanged(backend: str, level: int) -> None:
    """Migrations 1..N today are exactly what the sendguard of schema N ran."""
    migrations = SQLITE_MIGRATIONS if backend == "sqlite" else POSTGRES_MIGRATIONS
    assert _fixture(backend, level)["migrations_sha256"] == migrations_digest(migrations[:level])


@pytest.mark.parametrize("level", sorted(SHIPPED))
async def test_upgrade_keeps_every_entry_and_the_audit_chain(
    backend: str, empty_url: str, level: int
) -> None:
    """Opened by today's code: migrated once to the latest schema, every entry reads back
    with its bytes and state, the old chain verifies and today's code extends it."""
    fixture = _fixture(backend, level)
    _rebuild(fixture, empty_url)
    store = await open_store(empty_url, audit_key=KEY)
    try:
        assert store.migrated_from == level
        assert await store.schema_version() == LATEST[backend]
        for row in _rows(fixture, "queue_entry"):
            entry = await store.get(row["id"])
            digest = hashlib.sha256(entry.data).hexdigest()
            assert (entry.state, digest) == (row["state"], fixture["message_sha256"][row["id"]])
            assert entry.envelope.mail_from == row["mail_from"]
        states = sorted(e.state for e in await store.list())
        assert states == ["delayed", "held", "held", "held", "rejected"]
        old = len(fixture["tables"]["audit"]["rows"])
        sealed = await store.seal_chain()  # what `serve` does at start
        assert sealed is not fixture["keyed"]  # an unkeyed chain gets its keyed record
        check = await store.verify_audit()
        assert check.ok and check.records == old + sealed
        await store.audit("verdict", actor="relay", details={"action": "pass"})
        check = await store.verify_audit()
        assert check.ok and check.records == old + sealed + 1
    finally:
        await store.close()
    again = await open_store(empty_url, audit_key=KEY)
    await again.close()
    assert again.migrated_from is None  # once only


@pytest.mark.parametrize("level", [min(SHIPPED), max(SHIPPED)])
def test_serve_with_two_workers_migrates_once_before_forking(
    backend: str, empty_url: str, level: int, tmp_path: Path
) -> None:
    """`serve` with WORKERS=2 on a store of an earlier schema: one migration, in the parent,
    before the workers start; both workers serve; held mail and the chain survive."""
    fixture = _fixture(backend, level)
    _rebuild(fixture, empty_url)
    key_file = tmp_path / "audit.key"
    key_file.write_bytes(AUDIT_KEY + b"\n")
    key_file.chmod(0o600)
    relay = RelayProcess(
        {
            "SENDGUARD_CONFIG": "",
            "SENDGUARD_STORE": empty_url,
            "SENDGUARD_AUDIT_KEY": str(key_file),
            "SENDGUARD_WORKERS": "2",
        },
        cwd=tmp_path,
    )
    relay.start()
    try:
        deadline = time.monotonic() + 60
        while sum(e["event"] == "listening" for e in relay.events()) < 2:
            assert time.monotonic() < deadline, relay.log_path.read_text()
            time.sleep(0.1)
    finally:
        assert relay.stop() == 0
    events = [e["event"] for e in relay.events()]
    migrated = [e for e in relay.events() if e["event"] == "store_migrated"]
    assert len(migrated) == 1 and migrated[0]["from_version"] == level
    assert relay.proc is not None and migrated[0]["pid"] == relay.proc.pid  # the parent
    assert events.index("store_migrated") < events.index("supervisor_started")
    asyncio.run(_everything_there(empty_url, fixture))


async def _everything_there(url: str, fixture: dict[str, Any]) -> None:
    store = await open_store(url, audit_key=KEY)
    try:
        ids = {e.id for e in await store.list()}
        assert ids == {row["id"] for row in _rows(fixture, "queue_entry")}
        assert (await store.verify_audit()).ok
    finally:
        await store.close()
