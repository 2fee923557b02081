"""Make the upgrade fixtures: stores written by the sendguard that shipped each earlier schema.

For every schema level that shipped on main (the last commit at that level, `SHIPPED`), the
source of that commit (``git archive``) writes a store on SQLite and on PostgreSQL with its
own code — held, delayed and rejected entries, their notices and audit chain (keyed from
schema 4 on, with `AUDIT_KEY`) — and the rows are dumped as JSON, one file per level and
backend. `test_upgrade.py` recreates each store (the shipped migrations, which are never
edited — the file records their digest — and these rows) and opens it with today's code.
Run from the repository root when a schema ships (needs git history and the tests'
PostgreSQL): ``python -m tests.integration.queue.upgrade.generate``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SHIPPED = {1: "dd640d5", 2: "55642cc", 3: "8df71e2", 4: "75a33c6", 5: "a455ad8"}
"""Schema level → the last commit of main at that level."""
AUDIT_KEY = base64.b64encode(hashlib.sha256(b"sendguard upgrade fixture key").digest())
"""The fixtures' audit key (a test key: it protects nothing)."""

WRITER = r"""
import asyncio, datetime as dt, hashlib, inspect, json, sys
from pathlib import Path
from sendguard.model import Action
from sendguard.queue import store as st
from sendguard.queue import testing as t

async def main(url: str, key_file: str) -> None:
    kwargs = {}
    if "audit_key" in inspect.signature(st.open_store).parameters:
        from sendguard.queue.auditkey import read_key
        kwargs["audit_key"] = read_key(Path(key_file))
    clock = t.FakeClock()
    s = await st.open_store(url, clock=clock, **kwargs)
    sent = {}
    async def put(data, **kw):
        entry = await s.enqueue(data=data, **kw)
        sent[entry.id] = hashlib.sha256(data).hexdigest()
        return entry
    for n in range(3):
        await put(
            t.sample_message(f"見積書 {n}"), verdict=t.sample_verdict(), state="held",
            envelope=t.sample_envelope("tanaka@corp.example", f"customer{n}@client.example"))
        clock.advance(minutes=1)
    await put(
        t.sample_message("遅延"), envelope=t.sample_envelope(),
        verdict=t.sample_verdict(Action.DELAY, delay_minutes=120), state="delayed",
        release_at=clock.now + dt.timedelta(hours=2))
    rejected = await put(
        t.sample_message("却下"), envelope=t.sample_envelope(),
        verdict=t.sample_verdict(), state="held")
    clock.advance(minutes=5)
    await s.transition(rejected.id, expected="held", to="rejected", actor="boss",
                       event="rejected", details={"reason": "wrong customer"})
    await s.audit("verdict", actor="relay", transaction_id="tx-pass-1",
                  details={"action": "pass", "rule": None})
    await s.close()
    print(json.dumps(sent))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | memoryview):
        return {"$b64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dt.datetime):
        return {"$ts": value.isoformat()}
    return value


def _dump_sqlite(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    names = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " AND name != 'schema_version' ORDER BY name"
        )
    ]
    tables = {}
    for name in names:
        cur = conn.execute(f"SELECT * FROM {name} ORDER BY rowid")  # noqa: S608  # own tables
        columns = [d[0] for d in cur.description]
        tables[name] = {"columns": columns, "rows": [[_encode(v) for v in r] for r in cur]}
    conn.close()
    return tables


def _dump_postgres(url: str) -> dict[str, Any]:
    import psycopg

    tables = {}
    with psycopg.connect(url) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema ="
                " current_schema() AND table_name != 'schema_version' ORDER BY table_name"
            )
        ]
        for name in names:
            order = "seq" if name == "audit" else "1"
            sql = f"SELECT * FROM {name} ORDER BY {order}"  # noqa: S608  # own tables
            cur = conn.execute(sql.encode())
            columns = [d.name for d in cur.description or ()]
            tables[name] = {"columns": columns, "rows": [[_encode(v) for v in r] for r in cur]}
    return tables


def migrations_digest(migrations: tuple[tuple[str, ...], ...]) -> str:
    """sha256 of the statements, so a test can tell that a shipped migration was edited."""
    return hashlib.sha256(json.dumps(migrations).encode()).hexdigest()


def _source(commit: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "src"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def _write(url: str, key_file: Path, env: dict[str, str]) -> dict[str, str]:
    """Run the old code's writer; returns queue id → sha256 of the bytes it enqueued."""
    done = subprocess.run(
        [sys.executable, "-c", WRITER, url, str(key_file)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    sent: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return sent


def main() -> None:
    """Write ``{sqlite,postgres}-v{N}.json`` for every shipped level."""
    from tests.support.store import postgres_schema

    from sendguard.queue.migrations import POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS

    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "audit.key"
        key_file.write_bytes(AUDIT_KEY + b"\n")
        for level, commit in SHIPPED.items():
            src = _source(commit, Path(tmp) / f"v{level}")
            env = {**os.environ, "PYTHONPATH": str(src)}
            for backend in ("sqlite", "postgres"):
                if backend == "sqlite":
                    db = Path(tmp) / f"v{level}.db"
                    url = f"sqlite:///{db}"
                    sent = _write(url, key_file, env)
                    tables = _dump_sqlite(db)
                    digest = migrations_digest(SQLITE_MIGRATIONS[:level])
                else:
                    with postgres_schema() as url:
                        sent = _write(url, key_file, env)
                        tables = _dump_postgres(url)
                    digest = migrations_digest(POSTGRES_MIGRATIONS[:level])
                fixture = {
                    "level": level,
                    "commit": commit,
                    "backend": backend,
                    "migrations_sha256": digest,
                    "keyed": level >= 4,
                    "message_sha256": sent,
                    "tables": tables,
                }
                out = HERE / f"{backend}-v{level}.json"
                out.write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n", "utf-8")
                print(f"{out.name}: {sum(len(t['rows']) for t in tables.values())} rows")


if __name__ == "__main__":
    main()
