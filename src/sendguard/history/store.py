"""The correspondent history tables (``history_*``, created by the store's migrations).

One implementation for SQLite and PostgreSQL: a plain DB-API connection used from a thread
under a lock (`asyncio.to_thread`), so the event loop never waits on disk. The SQL is
portable (``INSERT … ON CONFLICT … DO UPDATE`` with ``excluded``); only the placeholder and
the timestamp type differ. Writes come from the recorder's background task and imports,
never from a client's transaction; reads are a handful of indexed look-ups per message.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from sendguard.correspondence import Delivery, HistorySnapshot, Known, Recipient
from sendguard.errors import ConfigError, StoreError
from sendguard.queue.backends import open_store
from sendguard.queue.pgdriver import require_postgres_driver
from sendguard.queue.settings import QueueSettings
from sendguard.queue.sqlite import sqlite_path

T = TypeVar("T")

_NEIGHBOURS = 300
"""Addresses at one domain fetched for the one-edit check: enough for any real counterpart."""
_SAME = 5
_SENDER_CAP = 1000


class HistoryStore:
    """Record deliveries, answer snapshots, forget people, expire old rows."""

    def __init__(self, conn: Any, *, postgres: bool, url: str = "") -> None:
        self._conn = conn
        self._postgres = postgres
        self._url = url
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> HistoryStore:
        """Connect to the store named by `url` (the queue's), migrating it first if asked."""
        if migrate:
            queue = await open_store(url, key=None, settings=QueueSettings())
            await queue.close()
        postgres = url.startswith(("postgresql://", "postgres://"))
        try:
            conn = await asyncio.to_thread(_connect_postgres if postgres else _connect_sqlite, url)
        except ConfigError:
            raise  # the PostgreSQL extra is missing: already says what to install
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the history store: {exc}") from exc
        except Exception as exc:
            raise StoreError(f"cannot open the history store: {type(exc).__name__}: {exc}") from exc
        return cls(conn, postgres=postgres, url=url)

    async def close(self) -> None:
        """Close the connection once no call is using it (a write still running in its
        thread — its task cancelled at shutdown — finishes first)."""

        def close() -> None:
            with self._lock:
                self._closed = True
                self._conn.close()

        await asyncio.to_thread(close)

    # ------------------------------------------------------------------ plumbing

    async def _call(self, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(self._locked, fn)
        except StoreError:
            raise
        except Exception as exc:
            if isinstance(exc, sqlite3.Error) or type(exc).__module__.startswith("psycopg"):
                raise StoreError(f"history store failed: {exc}") from exc
            raise

    def _locked(self, fn: Callable[[], T]) -> T:
        with self._lock:
            if self._closed:
                raise StoreError("the history store is closed")
            if self._postgres and self._url and self._conn.closed:
                # A restarted server or a dropped connection: the history must come back by
                # itself (look-ups are skipped and logged until it does).
                self._conn = _connect_postgres(self._url)
            return fn()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self._postgres else sql

    def _ts(self, when: dt.datetime) -> object:
        when = when.astimezone(dt.UTC)
        return when if self._postgres else when.isoformat(timespec="microseconds")

    def _rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        cur = self._conn.execute(self._sql(sql), tuple(params))
        return list(cur.fetchall())

    def _exec(self, sql: str, params: Sequence[object] = ()) -> int:
        cur = self._conn.execute(self._sql(sql), tuple(params))
        return int(cur.rowcount or 0)

    def _tx(self, fn: Callable[[], T]) -> T:
        self._conn.execute("BEGIN" if self._postgres else "BEGIN IMMEDIATE")
        try:
            result = fn()
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return result

    # ------------------------------------------------------------------ writes

    async def record(self, deliveries: Sequence[Delivery]) -> int:
        """Add deliveries in one transaction; return how many were new (repeats count once)."""
        if not deliveries:
            return 0
        return await self._call(lambda: self._tx(lambda: sum(map(self._record_one, deliveries))))

    def _record_one(self, delivery: Delivery) -> int:
        at = self._ts(delivery.at)
        fresh = self._exec(
            "INSERT INTO history_seen (key, at) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
            (delivery.key, at),
        )
        if not fresh:
            return 0
        for r in _distinct(delivery.recipients):
            self._exec(
                "INSERT INTO history_recipient "
                "(sender, address, domain, local, name, first_at, last_at, count) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT (sender, address) DO UPDATE SET "
                "count = history_recipient.count + 1, "
                "name = CASE WHEN excluded.name <> '' THEN excluded.name "
                "ELSE history_recipient.name END, " + _SPAN.format(table="history_recipient"),
                (delivery.sender, r.address, r.domain, r.local, r.name, at, at),
            )
        domains = sorted({r.domain for r in delivery.recipients})
        for domain in domains:
            self._exec(
                "INSERT INTO history_domain (domain, first_at, last_at, count) "
                "VALUES (?, ?, ?, 1) ON CONFLICT (domain) DO UPDATE SET "
                "count = history_domain.count + 1, " + _SPAN.format(table="history_domain"),
                (domain, at, at),
            )
        for thread in dict.fromkeys(delivery.threads):
            for domain in domains:
                self._exec(
                    "INSERT INTO history_thread (thread, domain, last_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (thread, domain) DO UPDATE SET last_at = CASE WHEN "
                    "excluded.last_at > history_thread.last_at THEN excluded.last_at "
                    "ELSE history_thread.last_at END",
                    (thread, domain, at),
                )
        return 1

    async def forget(self, address: str) -> int:
        """Remove a person (as recipient and as sender): a data subject's request.

        Per-domain counts and thread participation hold domains only and stay.
        """
        address = address.strip().lower()
        return await self._call(
            lambda: self._tx(
                lambda: self._exec(
                    "DELETE FROM history_recipient WHERE address = ? OR sender = ?",
                    (address, address),
                )
            )
        )

    async def expire(self, before: dt.datetime) -> int:
        """Delete everything last seen before `before` (the retention); return rows removed."""
        cutoff = self._ts(before)

        def run() -> int:
            return sum(
                self._exec(f"DELETE FROM {table} WHERE {column} < ?", (cutoff,))  # noqa: S608 -- fixed names
                for table, column in (
                    ("history_recipient", "last_at"),
                    ("history_domain", "last_at"),
                    ("history_thread", "last_at"),
                    ("history_seen", "at"),
                )
            )

        return await self._call(lambda: self._tx(run))

    # ------------------------------------------------------------------ reads

    async def learned_domains(self, min_count: int) -> dict[str, int]:
        """Registrable domains written to at least `min_count` times, with their counts."""
        rows = await self._call(
            lambda: self._rows(
                "SELECT domain, count FROM history_domain WHERE count >= ?", (min_count,)
            )
        )
        return {str(d): int(n) for d, n in rows}

    async def snapshot(
        self, sender: str, recipients: Sequence[Recipient], threads: Sequence[str] = ()
    ) -> HistorySnapshot:
        """What the history knows about `sender` writing to these external `recipients`."""
        return await self._call(lambda: self.snapshot_sync(sender, recipients, threads))

    def snapshot_locked(
        self, sender: str, recipients: Sequence[Recipient], threads: Sequence[str] = ()
    ) -> HistorySnapshot:
        """`snapshot` in the calling thread, serialised with the writer."""
        try:
            return self._locked(lambda: self.snapshot_sync(sender, recipients, threads))
        except sqlite3.Error as exc:
            raise StoreError(f"history store failed: {exc}") from exc
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg"):
                raise StoreError(f"history store failed: {exc}") from exc
            raise

    def snapshot_sync(
        self, sender: str, recipients: Sequence[Recipient], threads: Sequence[str] = ()
    ) -> HistorySnapshot:
        """`snapshot` in the calling thread (benchmarks, the CLI); caller holds no lock."""
        sender = sender.lower()
        recipients = _distinct(recipients)
        addresses = [r.address for r in recipients]
        domains = sorted({r.domain for r in recipients})
        written: dict[str, int] = {}
        known_domains: dict[str, int] = {}
        if addresses:
            written = {
                str(a): int(n)
                for a, n in self._rows(
                    "SELECT address, count FROM history_recipient "  # noqa: S608 -- placeholders
                    f"WHERE sender = ? AND address IN ({_marks(addresses)})",
                    (sender, *addresses),
                )
            }
            known_domains = {
                str(d): int(n)
                for d, n in self._rows(
                    "SELECT domain, count FROM history_domain "  # noqa: S608 -- placeholders only
                    f"WHERE domain IN ({_marks(domains)})",
                    domains,
                )
            }
        total = self._rows(
            "SELECT COUNT(*) FROM (SELECT 1 FROM history_recipient WHERE sender = ? LIMIT ?) s",
            (sender, _SENDER_CAP),
        )[0][0]
        same_local: dict[str, tuple[Known, ...]] = {}
        same_name: dict[str, tuple[Known, ...]] = {}
        neighbours: dict[str, tuple[Known, ...]] = {}
        for r in recipients:
            if r.address in written:
                continue
            same_local[r.address] = self._known(
                "SELECT address, count, name FROM history_recipient WHERE sender = ? "
                "AND local = ? AND domain <> ? ORDER BY count DESC LIMIT ?",
                (sender, r.local, r.domain, _SAME),
            )
            if r.name:
                same_name[r.address] = self._known(
                    "SELECT address, count, name FROM history_recipient WHERE sender = ? "
                    "AND name = ? AND domain <> ? ORDER BY count DESC LIMIT ?",
                    (sender, r.name, r.domain, _SAME),
                )
            if r.domain in known_domains and r.domain not in neighbours:
                neighbours[r.domain] = self._known(
                    "SELECT DISTINCT address, 0, '' FROM history_recipient WHERE domain = ? "
                    "LIMIT ?",
                    (r.domain, _NEIGHBOURS),
                )
        thread_domains: set[str] = set()
        thread_known = False
        if threads:
            rows = self._rows(
                "SELECT DISTINCT domain FROM history_thread "  # noqa: S608 -- placeholders only
                f"WHERE thread IN ({_marks(threads)})",
                tuple(threads),
            )
            thread_known = bool(rows)
            thread_domains = {str(d) for (d,) in rows}
        return HistorySnapshot(
            sender=sender,
            sender_messages=int(total),
            written=written,
            domains=known_domains,
            same_local={k: v for k, v in same_local.items() if v},
            same_name={k: v for k, v in same_name.items() if v},
            neighbours={k: v for k, v in neighbours.items() if v},
            thread_known=thread_known,
            thread_domains=frozenset(thread_domains),
        )

    def _known(self, sql: str, params: Sequence[object]) -> tuple[Known, ...]:
        return tuple(Known(str(a), int(n), str(nm or "")) for a, n, nm in self._rows(sql, params))

    async def counts(self) -> dict[str, int]:
        """Rows per history table (``sendguard history stats``)."""

        def run() -> dict[str, int]:
            return {
                table: int(self._rows(f"SELECT COUNT(*) FROM {table}")[0][0])  # noqa: S608 -- fixed
                for table in ("history_recipient", "history_domain", "history_thread")
            }

        return await self._call(run)


_SPAN = (
    "first_at = CASE WHEN excluded.first_at < {table}.first_at THEN excluded.first_at "
    "ELSE {table}.first_at END, "
    "last_at = CASE WHEN excluded.last_at > {table}.last_at THEN excluded.last_at "
    "ELSE {table}.last_at END"
)


def _marks(items: Iterable[object]) -> str:
    return ", ".join("?" for _ in items)


def _distinct(recipients: Iterable[Recipient]) -> list[Recipient]:
    seen: dict[str, Recipient] = {}
    for r in recipients:
        seen.setdefault(r.address, r)
    return list(seen.values())


def _connect_sqlite(url: str) -> sqlite3.Connection:
    conn = sqlite3.connect(sqlite_path(url), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 30000")
    # History is rebuilt by traffic; losing the last writes at a power cut costs nothing.
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _connect_postgres(url: str) -> Any:
    require_postgres_driver()
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=15)
