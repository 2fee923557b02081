"""SQLite store: the embedded default for one node (WAL, ``synchronous=FULL``).

Every call runs in a thread (`asyncio.to_thread`) on one connection guarded by a lock, so
the event loop never waits on disk. Writes use ``BEGIN IMMEDIATE``: SQLite's single writer
lock is what serialises claims, CAS transitions and audit appends, also across processes
(the CLI and a running server share the file).

The module is longer than most (~450 lines) on purpose: it is one `Store` implementation,
method for method against the protocol, and reads best whole next to `queue.postgres`.
"""

from __future__ import annotations

import asyncio
import builtins
import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from sendguard.entry import FINISHED, Decide, Entry, Notice, NoticeKind, State, check_move
from sendguard.errors import Conflict, NotFound, StoreError
from sendguard.model import Envelope, Verdict
from sendguard.queue.base import (
    UPDATE_COLUMNS,
    PendingAudit,
    StoreBase,
    claimed,
    corrupt_details,
    notice_from_row,
    update_values,
)
from sendguard.queue.codec import (
    ENTRY_COLUMNS,
    INSERT_COLUMNS,
    audit_from_row,
    aware,
    dump_envelope,
    dump_verdict,
    iso,
)
from sendguard.queue.migrations import SQLITE_MIGRATIONS
from sendguard.queue.settings import QueueSettings
from sendguard.queue.store import AuditRecord, Clock, CorruptEntry

T = TypeVar("T")
Cursor = sqlite3.Connection
_DB_TIME = "strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now'{})"
"""SQLite's own clock as `iso` text, optionally moved by a modifier (leases)."""


def sqlite_path(url: str) -> Path:
    """``sqlite:///var/x.db`` → ``var/x.db``; ``sqlite:////abs/x.db`` → ``/abs/x.db``."""
    if not url.startswith("sqlite:///"):
        raise StoreError(f"SQLite store URL must look like sqlite:///PATH, not {url!r}")
    return Path(url.removeprefix("sqlite:///"))


class SqliteStore(StoreBase):
    """The `Store` on one SQLite file."""

    def __init__(
        self, conn: sqlite3.Connection, *, key: bytes | None, settings: QueueSettings, clock: Clock
    ) -> None:
        super().__init__(key=key, settings=settings, clock=clock)
        self._conn = conn
        self._lock = threading.Lock()

    @classmethod
    async def open(
        cls, url: str, *, key: bytes | None, settings: QueueSettings, clock: Clock
    ) -> SqliteStore:
        """Open the file (creating its directory), set durability pragmas, migrate."""
        path = sqlite_path(url)

        def connect() -> sqlite3.Connection:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA journal_mode = WAL")
            # FULL: the WAL is fsynced at every commit, so a 250 survives power loss.
            conn.execute("PRAGMA synchronous = FULL")
            return conn

        try:
            conn = await asyncio.to_thread(connect)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store {path}: {exc}") from exc
        store = cls(conn, key=key, settings=settings, clock=clock)
        before = await store._call(store._write, store._migrate)
        store.migrated_from = before if before < len(SQLITE_MIGRATIONS) else None
        return store

    # ------------------------------------------------------------------ plumbing

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.to_thread(fn, *args)
        except sqlite3.Error as exc:
            raise StoreError(f"queue store (SQLite) failed: {exc}") from exc

    def _read(self, fn: Callable[[Cursor], T]) -> T:
        with self._lock:
            return fn(self._conn)

    def _write(self, fn: Callable[[Cursor], T]) -> T:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            return result

    def _migrate(self, cur: Cursor) -> int:
        """Apply the migrations not yet applied; returns the version found."""
        cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
            "applied_at TEXT NOT NULL)"
        )
        current = cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
        version = int(current[0])
        if version > len(SQLITE_MIGRATIONS):
            raise StoreError(
                f"store schema version {version} is newer than this sendguard "
                f"({len(SQLITE_MIGRATIONS)}); upgrade sendguard"
            )
        for number, statements in enumerate(SQLITE_MIGRATIONS[version:], start=version + 1):
            for statement in statements:
                cur.execute(statement)
            cur.execute("INSERT INTO schema_version VALUES (?, ?)", (number, iso(self._clock())))
        return version

    def _append_audit(
        self,
        cur: Cursor,
        event: str,
        *,
        actor: str,
        queue_id: str | None,
        transaction_id: str | None,
        details: Mapping[str, object],
        at: dt.datetime,
    ) -> None:
        pending = PendingAudit(event, actor, queue_id, transaction_id, details, at)
        self._insert_audit(cur, pending)

    def _insert_audit(self, cur: Cursor, *batch: PendingAudit) -> None:
        last = cur.execute("SELECT seq, hash, v FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        for pending in batch:
            values = list(self._audit_values(last, pending))
            values[1] = iso(pending.at)
            cur.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
            last = (values[0], values[8], values[9])

    async def _write_audits(self, batch: Sequence[PendingAudit]) -> None:
        """Append `batch` in one ``BEGIN IMMEDIATE`` transaction: one fsync for all."""
        await self._call(self._write, lambda cur: self._insert_audit(cur, *batch))

    async def _last_audit(self) -> tuple[Any, ...] | None:
        sql = "SELECT seq, hash, v, at FROM audit ORDER BY seq DESC LIMIT 1"
        row: tuple[Any, ...] | None = await self._call(
            self._read, lambda cur: cur.execute(sql).fetchone()
        )
        return row

    def _add_notices(
        self, cur: Cursor, queue_id: str, kinds: tuple[NoticeKind, ...], now: dt.datetime
    ) -> None:
        for kind in kinds:
            cur.execute(
                "INSERT INTO notice (queue_id, kind, created_at, next_attempt_at) "
                "VALUES (?, ?, ?, ?)",
                (queue_id, kind, iso(now), iso(now)),
            )

    def _lease(self, cur: Cursor, lease: float) -> tuple[str, str]:
        """(now, now + lease) on the database's clock, as stored text.

        SQLite has one node, so its clock is this machine's; it is still read from SQLite
        (not `self._clock`) so leases behave as on PostgreSQL, whatever clock the caller has.
        """
        row = cur.execute(
            f"SELECT {_DB_TIME.format('')}, {_DB_TIME.format(', ?')}",
            (f"+{float(lease)} seconds",),
        ).fetchone()
        return str(row[0]), str(row[1])

    def _quarantine(self, cur: Cursor, queue_id: str, problem: str, now: dt.datetime) -> bool:
        """Move a row to ``corrupt`` (inside the caller's transaction) and audit it."""
        row = cur.execute("SELECT state FROM queue_entry WHERE id = ?", (queue_id,)).fetchone()
        if row is None or row[0] == "corrupt":
            return False
        cur.execute(
            "UPDATE queue_entry SET state = 'corrupt', quarantined_from = state, reason = ?, "
            "claimed_by = NULL, claim_until = NULL, updated_at = ? WHERE id = ?",
            (problem[:500], iso(now), queue_id),
        )
        self._append_audit(
            cur, "corrupt", actor="system", queue_id=queue_id, transaction_id=None,
            details=corrupt_details(str(row[0]), problem), at=now,
        )  # fmt: skip
        return True

    # ------------------------------------------------------------------ Store

    async def enqueue(
        self,
        *,
        envelope: Envelope,
        data: bytes,
        verdict: Verdict,
        state: Literal["held", "delayed", "released"],
        release_at: dt.datetime | None = None,
        delivered_to: tuple[str, ...] = (),
        last_error: str = "",
    ) -> Entry:
        """Store a held or delayed message (and its notices and audit event); return it."""
        entry = self._new_entry(
            envelope=envelope, data=data, verdict=verdict, state=state, release_at=release_at,
            delivered_to=delivered_to, last_error=last_error,
        )  # fmt: skip
        sealed = self._sealer.seal(entry.id, data)

        def write(cur: Cursor) -> None:
            cur.execute(
                f"INSERT INTO queue_entry ({INSERT_COLUMNS}) VALUES "  # noqa: S608
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, '[]', NULL, NULL, '', NULL, NULL, "
                "?, NULL, ?, ?, ?, ?, ?)",
                (
                    entry.id, state, dump_envelope(envelope), dump_verdict(verdict),
                    iso(entry.created_at), iso(entry.updated_at), entry.size,
                    iso(entry.release_at), iso(entry.expires_at), iso(entry.released_at),
                    iso(entry.next_attempt_at), entry.last_error,
                    json.dumps(list(entry.delivered_to), ensure_ascii=False),
                    envelope.mail_from, verdict.rule_id, envelope.auth_user,
                    envelope.transaction_id, sealed,
                ),
            )  # fmt: skip
            self._append_audit(
                cur,
                "queued",
                actor="system",
                queue_id=entry.id,
                transaction_id=envelope.transaction_id or None,
                details=self._queued_details(entry),
                at=entry.created_at,
            )
            self._add_notices(cur, entry.id, self._first_notices(entry), entry.created_at)

        await self._call(self._write, write)
        return entry

    async def get(self, queue_id: str, *, with_data: bool = True) -> Entry:
        """One entry; `NotFound` when there is none."""

        def read(cur: Cursor) -> tuple[Any, ...] | None:
            sql = f"SELECT {ENTRY_COLUMNS}, data FROM queue_entry WHERE id = ?"  # noqa: S608
            row: tuple[Any, ...] | None = cur.execute(sql, (queue_id,)).fetchone()
            return row

        row = await self._call(self._read, read)
        if row is None:
            raise NotFound(f"no queue entry {queue_id}")
        return self._decode(row, with_data)

    async def list(
        self,
        *,
        states: Collection[State] = (),
        due_before: dt.datetime | None = None,
        expires_before: dt.datetime | None = None,
        updated_before: dt.datetime | None = None,
        limit: int | None = None,
    ) -> builtins.list[Entry]:
        """Entries (without data), oldest first, filtered by state and times."""
        where, args = ["1 = 1"], builtins.list[object]()
        if states:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            args.extend(states)
        for column, value in (
            ("release_at", due_before),
            ("expires_at", expires_before),
            ("updated_at", updated_before),
        ):
            if value is not None:
                where.append(f"{column} <= ?")
                args.append(iso(value))
        sql = (
            f"SELECT {ENTRY_COLUMNS}, NULL FROM queue_entry "  # noqa: S608
            f"WHERE {' AND '.join(where)} ORDER BY created_at, id LIMIT ?"
        )
        args.append(-1 if limit is None else limit)
        rows = await self._call(self._read, lambda cur: cur.execute(sql, args).fetchall())
        return [self._listed(row) for row in rows]

    async def apply(self, queue_id: str, decide: Decide) -> Entry:
        """Run `decide` under the write lock and commit its decision atomically."""
        now = self._clock()

        def write(cur: Cursor) -> Entry | CorruptEntry:
            sql = f"SELECT {ENTRY_COLUMNS}, data FROM queue_entry WHERE id = ?"  # noqa: S608
            row = cur.execute(sql, (queue_id,)).fetchone()
            if row is None:
                raise NotFound(f"no queue entry {queue_id}")
            try:
                current = self._decode(row, with_data=True)
            except CorruptEntry as exc:
                self._quarantine(cur, queue_id, exc.problem, now)
                return exc  # committed, then raised
            decision = decide(current)
            new = decision.entry
            check_move(queue_id, current.state, new.state)
            values = _update_values(new, now)
            assignments = ", ".join(f"{c} = ?" for c in UPDATE_COLUMNS)
            cur.execute(
                f"UPDATE queue_entry SET {assignments} WHERE id = ?",  # noqa: S608
                (*values, queue_id),
            )
            self._append_audit(
                cur,
                decision.event,
                actor=decision.actor,
                queue_id=queue_id,
                transaction_id=new.envelope.transaction_id or None,
                details={"from": row[1], "to": new.state, **decision.details},
                at=now,
            )
            self._add_notices(cur, queue_id, decision.notify, now)
            return new

        result: Entry | CorruptEntry = await self._call(self._write, write)
        if isinstance(result, CorruptEntry):
            raise result
        return result

    async def claim_due(
        self, limit: int, node_id: str, *, now: dt.datetime, lease: float = 900.0
    ) -> builtins.list[Entry]:
        """Claim released entries due for delivery (and stale claims) for this node; leases
        on SQLite's clock, undecodable rows moved to ``corrupt``."""

        def write(cur: Cursor) -> builtins.list[Entry]:
            db_now, until = self._lease(cur, lease)
            sql = (
                f"SELECT {ENTRY_COLUMNS}, data FROM queue_entry "  # noqa: S608
                "WHERE (state = 'released' AND next_attempt_at <= ?) "
                "OR (state = 'delivering' AND claim_until <= ?) "
                "ORDER BY next_attempt_at LIMIT ?"
            )
            got: builtins.list[Entry] = []
            for row in cur.execute(sql, (iso(now), db_now, limit)).fetchall():
                try:
                    entry = self._decode(row, with_data=True)
                except CorruptEntry as exc:
                    self._quarantine(cur, str(row[0]), exc.problem, now)
                    continue
                cur.execute(
                    "UPDATE queue_entry SET state = 'delivering', claimed_by = ?, "
                    "claim_until = ?, updated_at = ? WHERE id = ?",
                    (node_id, until, iso(now), row[0]),
                )
                got.append(claimed(entry, node_id, now, _time(until)))
            return got

        return await self._call(self._write, write)

    async def renew_claim(self, queue_id: str, node_id: str, *, lease: float) -> bool:
        """Extend this node's claim by `lease` seconds of SQLite's clock."""

        def write(cur: Cursor) -> bool:
            _, until = self._lease(cur, lease)
            done = cur.execute(
                "UPDATE queue_entry SET claim_until = ? "
                "WHERE id = ? AND state = 'delivering' AND claimed_by = ?",
                (until, queue_id, node_id),
            )
            return done.rowcount == 1

        return await self._call(self._write, write)

    async def quarantine(self, queue_id: str, problem: str) -> bool:
        """Move an undecodable entry to ``corrupt`` (audited); False if it already was."""
        now = self._clock()
        return await self._call(
            self._write, lambda cur: self._quarantine(cur, queue_id, problem, now)
        )

    async def claim_notices(
        self, limit: int, node_id: str, *, now: dt.datetime, lease: float = 300.0
    ) -> builtins.list[Notice]:
        """Claim outbox notices due for sending (leases on SQLite's clock)."""

        def write(cur: Cursor) -> builtins.list[Notice]:
            db_now, until = self._lease(cur, lease)
            rows = cur.execute(
                "SELECT id, queue_id, kind, attempts, created_at FROM notice "
                "WHERE next_attempt_at <= ? AND (claim_until IS NULL OR claim_until <= ?) "
                "ORDER BY id LIMIT ?",
                (iso(now), db_now, limit),
            ).fetchall()
            for row in rows:
                cur.execute(
                    "UPDATE notice SET claimed_by = ?, claim_until = ?, attempts = attempts + 1 "
                    "WHERE id = ?",
                    (node_id, until, row[0]),
                )
            return [notice_from_row(row) for row in rows]

        return await self._call(self._write, write)

    async def finish_notice(
        self, notice_id: int, *, retry_at: dt.datetime | None = None, error: str = ""
    ) -> None:
        """Drop a sent (or abandoned) notice, or schedule its retry at `retry_at`."""

        def write(cur: Cursor) -> None:
            if retry_at is None:
                cur.execute("DELETE FROM notice WHERE id = ?", (notice_id,))
            else:
                cur.execute(
                    "UPDATE notice SET next_attempt_at = ?, claimed_by = NULL, "
                    "claim_until = NULL, last_error = ? WHERE id = ?",
                    (iso(retry_at), error, notice_id),
                )

        await self._call(self._write, write)

    async def delete(self, queue_id: str, *, actor: str, event: str = "deleted") -> None:
        """Remove an entry (not while delivering) and audit it."""
        now = self._clock()

        def write(cur: Cursor) -> None:
            row = cur.execute("SELECT state FROM queue_entry WHERE id = ?", (queue_id,)).fetchone()
            if row is None:
                raise NotFound(f"no queue entry {queue_id}")
            if row[0] == "delivering":
                raise Conflict(f"queue entry {queue_id} is being delivered; try again later")
            cur.execute("DELETE FROM queue_entry WHERE id = ?", (queue_id,))
            cur.execute("DELETE FROM notice WHERE queue_id = ?", (queue_id,))
            self._append_audit(
                cur,
                event,
                actor=actor,
                queue_id=queue_id,
                transaction_id=None,
                details={"state": row[0]},
                at=now,
            )

        await self._call(self._write, write)

    async def purge(self, *, before: dt.datetime, actor: str) -> int:
        """Remove finished entries last changed before `before`; return how many."""
        now = self._clock()
        marks = ", ".join("?" * len(FINISHED))

        def write(cur: Cursor) -> int:
            rows = cur.execute(
                f"SELECT id FROM queue_entry WHERE state IN ({marks}) "  # noqa: S608
                "AND updated_at < ?",
                (*FINISHED, iso(before)),
            ).fetchall()
            ids = [str(r[0]) for r in rows]
            for queue_id in ids:
                cur.execute("DELETE FROM queue_entry WHERE id = ?", (queue_id,))
                cur.execute("DELETE FROM notice WHERE queue_id = ?", (queue_id,))
            if ids:
                details = {"count": len(ids), "ids": ids, "before": iso(before)}
                self._append_audit(
                    cur, "purged", actor=actor, queue_id=None, transaction_id=None,
                    details=details, at=now,
                )  # fmt: skip
            return len(ids)

        return await self._call(self._write, write)

    async def audit_records(
        self, *, after_seq: int = 0, since: dt.datetime | None = None, limit: int = 1000
    ) -> builtins.list[AuditRecord]:
        """Audit records in chain order, after `after_seq` and not before `since`."""
        sql = "SELECT * FROM audit WHERE seq > ? AND at >= ? ORDER BY seq LIMIT ?"
        start = iso(since) or ""
        rows = await self._call(
            self._read, lambda cur: cur.execute(sql, (after_seq, start, limit)).fetchall()
        )
        return [audit_from_row(row) for row in rows]

    async def depth(self) -> tuple[dict[str, int], dt.datetime | None]:
        """Entries by state, and when the oldest held entry was queued."""

        def read(cur: sqlite3.Cursor) -> tuple[list[Any], Any]:
            counts = cur.execute("SELECT state, COUNT(*) FROM queue_entry GROUP BY state")
            rows = counts.fetchall()
            oldest = cur.execute("SELECT MIN(created_at) FROM queue_entry WHERE state = 'held'")
            return rows, oldest.fetchone()[0]

        rows, oldest = await self._call(self._read, read)
        return {str(s): int(n) for s, n in rows}, dt.datetime.fromisoformat(
            oldest
        ) if oldest else None

    async def schema_version(self) -> int:
        """The migration version the database is at."""
        row = await self._call(
            self._read,
            lambda cur: cur.execute("SELECT MAX(version) FROM schema_version").fetchone(),
        )
        return int(row[0])

    async def use_once(
        self, key: str, *, queue_id: str, action: str, expires_at: dt.datetime
    ) -> bool:
        """Record `key` once; False when it was recorded before."""
        now = self._clock()

        def write(cur: Cursor) -> bool:
            cur.execute("DELETE FROM used_once WHERE expires_at < ?", (iso(now),))
            inserted = cur.execute(
                "INSERT OR IGNORE INTO used_once VALUES (?, ?, ?, ?, ?)",
                (key, queue_id, action, iso(now), iso(expires_at)),
            )
            return inserted.rowcount == 1

        return await self._call(self._write, write)

    async def close(self) -> None:
        """Close the connection (after the audit commit in progress)."""
        await self._drain_audits()
        await self._call(self._read, lambda cur: cur.close())


def _time(text: str) -> dt.datetime:
    value = aware(text)
    assert value is not None  # strftime never returns NULL for 'now'
    return value


def _update_values(entry: Entry, now: dt.datetime) -> tuple[object, ...]:
    """Values for `UPDATE_COLUMNS`, in order, as SQLite stores them."""
    return update_values(entry, now, iso)
