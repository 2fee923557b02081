"""PostgreSQL store: one queue shared by several relay nodes.

psycopg 3 async with a connection pool; every connection runs with
``synchronous_commit = on`` so a commit (and the 250 that follows it) survives a crash.
Nodes coordinate only through PostgreSQL: due work is claimed with ``FOR UPDATE SKIP
LOCKED``, decisions lock their row with ``FOR UPDATE``, and audit appends take one
transaction-scoped advisory lock so the hash chain has a single order.

Like `queue.sqlite`, one whole `Store` implementation per module (~400 lines), so the two
can be read side by side.
"""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

import psycopg
from psycopg_pool import AsyncConnectionPool

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
    dump_approvals,
    dump_envelope,
    dump_verdict,
)
from sendguard.queue.migrations import POSTGRES_MIGRATIONS
from sendguard.queue.settings import QueueSettings
from sendguard.queue.store import AuditRecord, Clock, CorruptEntry

Conn = psycopg.AsyncConnection[tuple[Any, ...]]
_AUDIT_LOCK = 0x53470001  # advisory lock key serialising audit appends ("SG" + 1)
_MIGRATE_LOCK = 0x53470002  # advisory lock key so two nodes starting together migrate once


async def _configure(conn: Conn) -> None:
    # Durability of the 250 depends on this, whatever the server's default is.
    await conn.execute("SET synchronous_commit = on")


class PostgresStore(StoreBase):
    """The `Store` on a PostgreSQL database (tables in the connection's search_path)."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Conn],
        *,
        key: bytes | None,
        settings: QueueSettings,
        clock: Clock,
    ) -> None:
        super().__init__(key=key, settings=settings, clock=clock)
        self._pool = pool

    @classmethod
    async def open(
        cls, url: str, *, key: bytes | None, settings: QueueSettings, clock: Clock
    ) -> PostgresStore:
        """Connect the pool and migrate."""
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=8,
            open=False,
            kwargs={"autocommit": True},
            configure=_configure,
        )
        try:
            await pool.open(wait=True, timeout=15)
        except psycopg.Error as exc:
            await pool.close()
            raise StoreError(f"cannot connect to the PostgreSQL store: {exc}") from exc
        store = cls(pool, key=key, settings=settings, clock=clock)
        try:
            before = await store._migrate()
        except BaseException:
            await pool.close()
            raise
        store.migrated_from = before if before < len(POSTGRES_MIGRATIONS) else None
        return store

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Conn]:
        try:
            async with self._pool.connection() as conn, conn.transaction():
                yield conn
        except psycopg.Error as exc:
            raise StoreError(f"queue store (PostgreSQL) failed: {exc}") from exc

    async def _migrate(self) -> int:
        """Apply the migrations not yet applied (one node at a time); returns the version found."""
        async with self._tx() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                "applied_at TIMESTAMPTZ NOT NULL)"
            )
            cur = await conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            row = await cur.fetchone()
            version = int(row[0]) if row else 0
            if version > len(POSTGRES_MIGRATIONS):
                raise StoreError(
                    f"store schema version {version} is newer than this sendguard "
                    f"({len(POSTGRES_MIGRATIONS)}); upgrade sendguard"
                )
            for number, statements in enumerate(POSTGRES_MIGRATIONS[version:], start=version + 1):
                for statement in statements:
                    await conn.execute(statement.encode())
                await conn.execute(
                    "INSERT INTO schema_version VALUES (%s, %s)", (number, self._clock())
                )
        return version

    async def _append_audit(
        self,
        conn: Conn,
        event: str,
        *,
        actor: str,
        queue_id: str | None,
        transaction_id: str | None,
        details: Mapping[str, object],
        at: dt.datetime,
    ) -> None:
        pending = PendingAudit(event, actor, queue_id, transaction_id, details, at)
        await self._insert_audit(conn, pending)

    async def _insert_audit(self, conn: Conn, *batch: PendingAudit) -> None:
        # The advisory lock (held to the end of the transaction) gives the chain one order.
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_AUDIT_LOCK,))
        cur = await conn.execute("SELECT seq, hash, v FROM audit ORDER BY seq DESC LIMIT 1")
        last: tuple[Any, ...] | None = await cur.fetchone()
        rows = []
        for pending in batch:
            values = self._audit_values(last, pending)
            rows.append(values)
            last = (values[0], values[8], values[9])
        async with conn.cursor() as many:  # one pipelined round trip for the whole batch
            await many.executemany(
                "INSERT INTO audit VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows
            )

    async def _write_audits(self, batch: Sequence[PendingAudit]) -> None:
        """Append `batch` in one transaction: one commit (one WAL flush) for all."""
        async with self._tx() as conn:
            await self._insert_audit(conn, *batch)

    async def _last_audit(self) -> tuple[Any, ...] | None:
        async with self._tx() as conn:
            cur = await conn.execute("SELECT seq, hash, v, at FROM audit ORDER BY seq DESC LIMIT 1")
            row: tuple[Any, ...] | None = await cur.fetchone()
        return row

    async def _add_notices(
        self, conn: Conn, queue_id: str, kinds: tuple[NoticeKind, ...], now: dt.datetime
    ) -> None:
        for kind in kinds:
            await conn.execute(
                "INSERT INTO notice (queue_id, kind, created_at, next_attempt_at) "
                "VALUES (%s, %s, %s, %s)",
                (queue_id, kind, now, now),
            )

    @staticmethod
    async def _lease(conn: Conn, lease: float) -> tuple[dt.datetime, dt.datetime]:
        """(now, now + lease) on the database's clock: every node compares leases with the
        one clock they share, so a node whose own clock runs ahead never steals a live claim.
        ``clock_timestamp()``, not ``now()``: the time of this statement, not of the
        transaction's start (which may have waited for a lock)."""
        cur = await conn.execute(
            "SELECT clock_timestamp(), clock_timestamp() + make_interval(secs => %s)",
            (float(lease),),
        )
        row = await cur.fetchone()
        assert row is not None  # a SELECT without FROM always has its row
        return row[0], row[1]

    async def _quarantine(self, conn: Conn, queue_id: str, problem: str, now: dt.datetime) -> bool:
        """Move a row to ``corrupt`` (inside the caller's transaction) and audit it."""
        cur = await conn.execute(
            "SELECT state FROM queue_entry WHERE id = %s FOR UPDATE", (queue_id,)
        )
        row = await cur.fetchone()
        if row is None or row[0] == "corrupt":
            return False
        await conn.execute(
            "UPDATE queue_entry SET state = 'corrupt', quarantined_from = state, reason = %s, "
            "claimed_by = NULL, claim_until = NULL, updated_at = %s WHERE id = %s",
            (problem[:500], now, queue_id),
        )
        await self._append_audit(
            conn, "corrupt", actor="system", queue_id=queue_id, transaction_id=None,
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
        async with self._tx() as conn:
            await conn.execute(
                f"INSERT INTO queue_entry ({INSERT_COLUMNS}) VALUES "  # noqa: S608
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0, %s, %s, '[]', NULL, NULL, '', "
                "NULL, NULL, %s, NULL, %s, %s, %s, %s, %s)",
                (
                    entry.id, state, dump_envelope(envelope), dump_verdict(verdict),
                    entry.created_at, entry.updated_at, entry.size, entry.release_at,
                    entry.expires_at, entry.released_at, entry.next_attempt_at,
                    entry.last_error, dump_approvals(entry.delivered_to),
                    envelope.mail_from, verdict.rule_id, envelope.auth_user,
                    envelope.transaction_id, sealed,
                ),
            )  # fmt: skip
            await self._append_audit(
                conn,
                "queued",
                actor="system",
                queue_id=entry.id,
                transaction_id=envelope.transaction_id or None,
                details=self._queued_details(entry),
                at=entry.created_at,
            )
            await self._add_notices(conn, entry.id, self._first_notices(entry), entry.created_at)
        return entry

    async def get(self, queue_id: str, *, with_data: bool = True) -> Entry:
        """One entry; `NotFound` when there is none."""
        async with self._tx() as conn:
            sql = f"SELECT {ENTRY_COLUMNS}, data FROM queue_entry WHERE id = %s"  # noqa: S608
            row = await (await conn.execute(sql.encode(), (queue_id,))).fetchone()
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
        where, args = ["TRUE"], builtins.list[object]()
        if states:
            where.append("state = ANY(%s)")
            args.append(list(states))
        for column, value in (
            ("release_at", due_before),
            ("expires_at", expires_before),
            ("updated_at", updated_before),
        ):
            if value is not None:
                where.append(f"{column} <= %s")
                args.append(value)
        sql = (
            f"SELECT {ENTRY_COLUMNS}, NULL FROM queue_entry "  # noqa: S608
            f"WHERE {' AND '.join(where)} ORDER BY created_at, id LIMIT %s"
        )
        args.append(limit)
        async with self._tx() as conn:
            rows = await (await conn.execute(sql.encode(), args)).fetchall()
        return [self._listed(row) for row in rows]

    async def apply(self, queue_id: str, decide: Decide) -> Entry:
        """Run `decide` with the row locked and commit its decision atomically."""
        now = self._clock()
        try:
            return await self._apply(queue_id, decide, now)
        except CorruptEntry as exc:
            # Rolled back; the row moves to `corrupt` in a transaction of its own.
            await self.quarantine(queue_id, exc.problem)
            raise

    async def _apply(self, queue_id: str, decide: Decide, now: dt.datetime) -> Entry:
        async with self._tx() as conn:
            sql = f"SELECT {ENTRY_COLUMNS}, data FROM queue_entry WHERE id = %s FOR UPDATE"  # noqa: S608
            row = await (await conn.execute(sql.encode(), (queue_id,))).fetchone()
            if row is None:
                raise NotFound(f"no queue entry {queue_id}")
            current = self._decode(row, with_data=True)
            decision = decide(current)
            new = decision.entry
            check_move(queue_id, current.state, new.state)
            assignments = ", ".join(f"{c} = %s" for c in UPDATE_COLUMNS)
            await conn.execute(
                f"UPDATE queue_entry SET {assignments} WHERE id = %s".encode(),  # noqa: S608
                (*update_values(new, now, lambda t: t), queue_id),
            )
            await self._append_audit(
                conn,
                decision.event,
                actor=decision.actor,
                queue_id=queue_id,
                transaction_id=new.envelope.transaction_id or None,
                details={"from": row[1], "to": new.state, **decision.details},
                at=now,
            )
            await self._add_notices(conn, queue_id, decision.notify, now)
        return new

    async def claim_due(
        self, limit: int, node_id: str, *, now: dt.datetime, lease: float = 900.0
    ) -> builtins.list[Entry]:
        """Claim released entries due for delivery (and stale claims) with SKIP LOCKED; leases
        on the database's clock, undecodable rows moved to ``corrupt``."""
        sql = (
            f"SELECT {ENTRY_COLUMNS}, data FROM queue_entry "  # noqa: S608
            "WHERE (state = 'released' AND next_attempt_at <= %s) "
            "OR (state = 'delivering' AND claim_until <= %s) "
            "ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED"
        )
        got: builtins.list[Entry] = []
        async with self._tx() as conn:
            db_now, until = await self._lease(conn, lease)
            rows = await (await conn.execute(sql.encode(), (now, db_now, limit))).fetchall()
            for row in rows:
                try:
                    entry = self._decode(row, with_data=True)
                except CorruptEntry as exc:
                    await self._quarantine(conn, str(row[0]), exc.problem, now)
                    continue
                await conn.execute(
                    "UPDATE queue_entry SET state = 'delivering', claimed_by = %s, "
                    "claim_until = %s, updated_at = %s WHERE id = %s",
                    (node_id, until, now, row[0]),
                )
                got.append(claimed(entry, node_id, now, until))
        return got

    async def renew_claim(self, queue_id: str, node_id: str, *, lease: float) -> bool:
        """Extend this node's claim by `lease` seconds of the database's clock."""
        async with self._tx() as conn:
            cur = await conn.execute(
                "UPDATE queue_entry SET claim_until = clock_timestamp() "
                "+ make_interval(secs => %s) "
                "WHERE id = %s AND state = 'delivering' AND claimed_by = %s",
                (float(lease), queue_id, node_id),
            )
            return cur.rowcount == 1

    async def quarantine(self, queue_id: str, problem: str) -> bool:
        """Move an undecodable entry to ``corrupt`` (audited); False if it already was."""
        async with self._tx() as conn:
            return await self._quarantine(conn, queue_id, problem, self._clock())

    async def claim_notices(
        self, limit: int, node_id: str, *, now: dt.datetime, lease: float = 300.0
    ) -> builtins.list[Notice]:
        """Claim outbox notices due for sending, with SKIP LOCKED (leases on the database's
        clock)."""
        sql = (
            "UPDATE notice SET claimed_by = %s, claim_until = clock_timestamp() + "
            "make_interval(secs => %s), attempts = attempts + 1 "
            "WHERE id IN (SELECT id FROM notice WHERE next_attempt_at <= %s "
            "AND (claim_until IS NULL OR claim_until <= clock_timestamp()) ORDER BY id LIMIT %s "
            "FOR UPDATE SKIP LOCKED) RETURNING id, queue_id, kind, attempts - 1, created_at"
        )
        async with self._tx() as conn:
            cur = await conn.execute(sql, (node_id, float(lease), now, limit))
            rows = await cur.fetchall()
        return [notice_from_row(row) for row in sorted(rows)]

    async def finish_notice(
        self, notice_id: int, *, retry_at: dt.datetime | None = None, error: str = ""
    ) -> None:
        """Drop a sent (or abandoned) notice, or schedule its retry at `retry_at`."""
        async with self._tx() as conn:
            if retry_at is None:
                await conn.execute("DELETE FROM notice WHERE id = %s", (notice_id,))
            else:
                await conn.execute(
                    "UPDATE notice SET next_attempt_at = %s, claimed_by = NULL, "
                    "claim_until = NULL, last_error = %s WHERE id = %s",
                    (retry_at, error, notice_id),
                )

    async def delete(self, queue_id: str, *, actor: str, event: str = "deleted") -> None:
        """Remove an entry (not while delivering) and audit it."""
        async with self._tx() as conn:
            cur = await conn.execute(
                "SELECT state FROM queue_entry WHERE id = %s FOR UPDATE", (queue_id,)
            )
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"no queue entry {queue_id}")
            if row[0] == "delivering":
                raise Conflict(f"queue entry {queue_id} is being delivered; try again later")
            await conn.execute("DELETE FROM queue_entry WHERE id = %s", (queue_id,))
            await conn.execute("DELETE FROM notice WHERE queue_id = %s", (queue_id,))
            await self._append_audit(
                conn, event, actor=actor, queue_id=queue_id, transaction_id=None,
                details={"state": row[0]}, at=self._clock(),
            )  # fmt: skip

    async def purge(self, *, before: dt.datetime, actor: str) -> int:
        """Remove finished entries last changed before `before`; return how many."""
        async with self._tx() as conn:
            cur = await conn.execute(
                "DELETE FROM queue_entry WHERE state = ANY(%s) AND updated_at < %s RETURNING id",
                (list(FINISHED), before),
            )
            ids = sorted(str(r[0]) for r in await cur.fetchall())
            if ids:
                await conn.execute("DELETE FROM notice WHERE queue_id = ANY(%s)", (ids,))
                details = {"count": len(ids), "ids": ids, "before": before.isoformat()}
                await self._append_audit(
                    conn, "purged", actor=actor, queue_id=None, transaction_id=None,
                    details=details, at=self._clock(),
                )  # fmt: skip
        return len(ids)

    async def audit_records(
        self, *, after_seq: int = 0, since: dt.datetime | None = None, limit: int = 1000
    ) -> builtins.list[AuditRecord]:
        """Audit records in chain order, after `after_seq` and not before `since`."""
        start = since or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        async with self._tx() as conn:
            cur = await conn.execute(
                "SELECT * FROM audit WHERE seq > %s AND at >= %s ORDER BY seq LIMIT %s",
                (after_seq, start, limit),
            )
            rows = await cur.fetchall()
        return [audit_from_row(row) for row in rows]

    async def depth(self) -> tuple[dict[str, int], dt.datetime | None]:
        """Entries by state, and when the oldest held entry was queued."""
        async with self._tx() as conn:
            counts = await conn.execute("SELECT state, COUNT(*) FROM queue_entry GROUP BY state")
            rows = await counts.fetchall()
            cur = await conn.execute("SELECT MIN(created_at) FROM queue_entry WHERE state = 'held'")
            oldest = await cur.fetchone()
        return {str(s): int(n) for s, n in rows}, oldest[0] if oldest else None

    async def schema_version(self) -> int:
        """The migration version the database is at."""
        async with self._tx() as conn:
            row = await (await conn.execute("SELECT MAX(version) FROM schema_version")).fetchone()
        return int(row[0]) if row else 0

    async def use_once(
        self, key: str, *, queue_id: str, action: str, expires_at: dt.datetime
    ) -> bool:
        """Record `key` once; False when it was recorded before."""
        now = self._clock()
        async with self._tx() as conn:
            await conn.execute("DELETE FROM used_once WHERE expires_at < %s", (now,))
            cur = await conn.execute(
                "INSERT INTO used_once VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (key, queue_id, action, now, expires_at),
            )
            return cur.rowcount == 1

    async def close(self) -> None:
        """Close the pool (after the audit commit in progress)."""
        await self._drain_audits()
        await self._pool.close()
