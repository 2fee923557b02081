"""`sendguard backup` and `sendguard restore`: a consistent copy of the queue store, taken
while the relay runs.

SQLite: the sqlite3 online-backup API copies the database in one step under a read
transaction, so the copy is one consistent snapshot while relay processes keep writing (WAL:
readers never block the writer). The copy is checked (``PRAGMA integrity_check``, schema
version), made self-contained (rollback journal instead of WAL), written beside the
destination with mode 0600 and renamed over it only when complete: a crash never leaves a
half-written backup under the final name. PostgreSQL: ``pg_dump --format=custom`` of the
store's schema (Debian: postgresql-client), checked with ``pg_restore --list``; without
``pg_dump`` the error names the command to run. The key files (audit key, link key) are not
in the database on purpose: back them up separately (docs/operations.md).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sendguard.errors import StoreError
from sendguard.queue.sqlite import sqlite_path

PG_DUMP_HINT = "pg_dump --format=custom --no-owner --schema=SCHEMA --file=FILE 'postgresql://…'"
"""The documented command when ``pg_dump`` is not installed (docs/operations.md)."""


class BackupError(StoreError):
    """The backup or restore could not be made; nothing was written under the final name."""


@dataclass(frozen=True, slots=True)
class Copy:
    """What was written: where, how big, and what it holds."""

    path: Path
    size: int
    schema_version: int
    entries: int
    """Queue entries (every state) in the copy; for PostgreSQL, counted just before the dump."""
    audit_records: int


def backup(store_url: str, destination: Path) -> Copy:
    """Copy the store at `store_url` to `destination` (atomically, mode 0600)."""
    if store_url.startswith("sqlite:"):
        return _sqlite_copy(sqlite_path(store_url), destination, verb="back up")
    if store_url.startswith(("postgresql:", "postgres:")):
        return _pg_dump(store_url, destination)
    raise BackupError(f"unknown store URL {store_url!r}: use sqlite:///PATH or postgresql://…")


def restore(backup_file: Path, store_url: str) -> Copy:
    """Restore a SQLite backup as the store at `store_url`, which must not exist yet (the
    relay stopped, the damaged store moved aside). A PostgreSQL dump is restored with
    ``pg_restore`` (docs/operations.md); this refuses it with that command."""
    if not store_url.startswith("sqlite:"):
        raise BackupError(
            "restore a PostgreSQL store with pg_restore into an empty database or schema: "
            f"pg_restore --no-owner --exit-on-error --dbname='postgresql://…' {backup_file}"
        )
    target = sqlite_path(store_url)
    stale = [p for p in (target, *_sidecars(target)) if p.exists()]
    if stale:
        raise BackupError(
            f"{stale[0]} exists: stop the relay and move the old store and its -wal/-shm files "
            "aside first (a leftover -wal file would be replayed into the restored copy)"
        )
    if not backup_file.is_file():
        raise BackupError(f"no backup at {backup_file}")
    return _sqlite_copy(backup_file, target, verb="restore")


def _sidecars(db: Path) -> tuple[Path, Path]:
    return db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")


def _sqlite_copy(source: Path, destination: Path, *, verb: str) -> Copy:
    source = source.absolute()
    destination = destination.absolute()
    if not source.is_file():
        raise BackupError(f"cannot {verb}: no SQLite store at {source}")
    if destination.exists() and destination.samefile(source):
        raise BackupError(f"{destination} is the store itself; choose another file")
    destination.parent.mkdir(parents=True, exist_ok=True)
    temp = destination.with_name(f".{destination.name}.{os.getpid()}.tmp")
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    try:
        # mode=rw: never creates a store (a wrong path is an error); only reads it.
        src = sqlite3.connect(f"{source.as_uri()}?mode=rw", uri=True, timeout=30)
        dst = sqlite3.connect(temp)
        try:
            with dst:
                src.backup(dst)  # all pages in one step: one consistent snapshot
            dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
            copy = _check_copy(dst, destination)
        finally:
            dst.close()
            src.close()
        with open(temp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(temp, 0o600)
        os.replace(temp, destination)
        _fsync_dir(destination.parent)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot {verb} {source}: {exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    return Copy(destination, destination.stat().st_size, copy[0], copy[1], copy[2])


def _check_copy(conn: sqlite3.Connection, destination: Path) -> tuple[int, int, int]:
    """(schema version, entries, audit records) of a copy that passes integrity_check."""
    problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    if problems != ["ok"]:
        raise BackupError(f"the copy for {destination} is damaged: {'; '.join(problems[:5])}")
    try:
        version = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
        entries = conn.execute("SELECT count(*) FROM queue_entry").fetchone()
        audit = conn.execute("SELECT count(*) FROM audit").fetchone()
    except sqlite3.Error as exc:
        raise BackupError(f"the source is not a sendguard store: {exc}") from exc
    return int(version[0]), int(entries[0]), int(audit[0])


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pg_dump(store_url: str, destination: Path) -> Copy:
    import psycopg  # only for a PostgreSQL store: a SQLite node never loads the driver
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise BackupError(
            "pg_dump is not installed (Debian: apt-get install postgresql-client); "
            f"back up the PostgreSQL store with: {PG_DUMP_HINT}"
        )
    try:
        with psycopg.connect(store_url, connect_timeout=15) as conn:
            row = conn.execute(
                "SELECT current_schema(), (SELECT COALESCE(MAX(version), 0) FROM schema_version),"
                " (SELECT count(*) FROM queue_entry), (SELECT count(*) FROM audit)"
            ).fetchone()
    except psycopg.Error as exc:
        raise BackupError(f"cannot read the PostgreSQL store: {exc}") from exc
    assert row is not None
    schema, version, entries, audit = row
    # The password goes to pg_dump in its environment, never on its command line (ps).
    params = {k: str(v) for k, v in conninfo_to_dict(store_url).items() if v is not None}
    password = params.pop("password", None)
    env = {**os.environ, **({"PGPASSWORD": str(password)} if password else {})}
    destination = destination.absolute()
    destination.parent.mkdir(parents=True, exist_ok=True)
    temp = destination.with_name(f".{destination.name}.{os.getpid()}.tmp")
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    try:
        _run(
            [
                pg_dump,
                "--format=custom",
                "--no-owner",
                f"--schema={schema}",
                f"--file={temp}",
                f"--dbname={make_conninfo('', **params)}",
            ],
            env,
        )
        if pg_restore := shutil.which("pg_restore"):
            _run([pg_restore, "--list", str(temp)], env)
        with open(temp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(temp, 0o600)
        os.replace(temp, destination)
        _fsync_dir(destination.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    return Copy(destination, destination.stat().st_size, int(version), int(entries), int(audit))


def _run(argv: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(  # noqa: S603  # pg_dump/pg_restore found on PATH, no shell
        argv, env=env, capture_output=True, text=True, timeout=3600, check=False
    )
    if done.returncode != 0:
        tool = Path(argv[0]).name
        raise BackupError(f"{tool} failed ({done.returncode}): {done.stderr.strip()[:2000]}")
