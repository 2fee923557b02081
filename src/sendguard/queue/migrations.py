"""Schema migrations for both store backends, applied in order when a store opens.

Each migration is a tuple of statements; its number is its position (1-based), recorded in
``schema_version`` in the same transaction, so a crash mid-migration leaves the old version.
Never edit a shipped migration: append a new one (to both lists, same number).

Tables: ``queue_entry`` (one row per held/delayed message; ``data`` holds the original
bytes, sealed when a key is set), ``notice`` (outbox of notifications and bounces, so they
survive a crash), ``audit`` (append-only hash chain; triggers refuse UPDATE and DELETE),
``history_*`` (correspondent history, `sendguard.history.store`).
"""

from __future__ import annotations

import os

import structlog

_SQLITE_V1 = (
    """CREATE TABLE queue_entry (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        envelope TEXT NOT NULL,
        verdict TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        size INTEGER NOT NULL,
        release_at TEXT,
        expires_at TEXT,
        released_at TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        last_error TEXT NOT NULL DEFAULT '',
        approvals TEXT NOT NULL DEFAULT '[]',
        decided_by TEXT,
        decided_at TEXT,
        reason TEXT NOT NULL DEFAULT '',
        claimed_by TEXT,
        claim_until TEXT,
        mail_from TEXT NOT NULL,
        auth_user TEXT,
        transaction_id TEXT NOT NULL DEFAULT '',
        rule_id TEXT,
        data BLOB NOT NULL
    )""",
    "CREATE INDEX queue_entry_due ON queue_entry (state, next_attempt_at)",
    "CREATE INDEX queue_entry_release ON queue_entry (state, release_at)",
    "CREATE INDEX queue_entry_expiry ON queue_entry (state, expires_at)",
    "CREATE INDEX queue_entry_updated ON queue_entry (state, updated_at)",
    """CREATE TABLE notice (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        queue_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        created_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        claimed_by TEXT,
        claim_until TEXT,
        last_error TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX notice_due ON notice (next_attempt_at)",
    """CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        event TEXT NOT NULL,
        actor TEXT NOT NULL,
        queue_id TEXT,
        transaction_id TEXT,
        details TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )""",
    "CREATE INDEX audit_at ON audit (at)",
    """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    """CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
)

# 2: recipients already delivered, so a split (per-recipient) delivery resumes without repeats.
_SQLITE_V2 = ("ALTER TABLE queue_entry ADD COLUMN delivered_to TEXT NOT NULL DEFAULT '[]'",)

# 3: the state an entry was in when it was found undecodable and moved to `corrupt`, so an
# admin can recover it once the cause (e.g. the encryption key) is fixed. Envelope and verdict
# blobs written from now on carry their schema version ("v": 2); older ones read as version 1.
_SQLITE_V3 = ("ALTER TABLE queue_entry ADD COLUMN quarantined_from TEXT",)

# 4: keyed audit chain. `v` 1 = unkeyed SHA-256 (every older record), 2 = HMAC-SHA256 with
# the audit key named by `key_id`; adding columns changes no existing record or hash.
_SQLITE_V4 = (
    "ALTER TABLE audit ADD COLUMN v INTEGER NOT NULL DEFAULT 1",
    "ALTER TABLE audit ADD COLUMN key_id TEXT",
)

# 5 (web): things that happen once: a signed link's nonce, a hold's reminder and
# escalation (`Store.use_once`). IF NOT EXISTS: a new table, so re-running it over a database
# whose version row was rolled back (an upgrade test, a restored backup) is harmless.
_SQLITE_V5 = (
    """CREATE TABLE IF NOT EXISTS used_once (
        key TEXT PRIMARY KEY,
        queue_id TEXT NOT NULL,
        action TEXT NOT NULL,
        used_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS used_once_expiry ON used_once (expires_at)",
)


def _history(ts: str) -> tuple[str, ...]:
    """The correspondent history (`sendguard.history.store`): separate tables, no foreign keys
    to the queue's. ``ts`` is the timestamp type of the backend. ``IF NOT EXISTS``: the
    migration may be renumbered at a merge, and must then not trip over its own tables."""
    return (
        f"""CREATE TABLE IF NOT EXISTS history_recipient (
            sender TEXT NOT NULL,
            address TEXT NOT NULL,
            domain TEXT NOT NULL,
            local TEXT NOT NULL,
            name TEXT NOT NULL DEFAULT '',
            first_at {ts} NOT NULL,
            last_at {ts} NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (sender, address)
        )""",
        "CREATE INDEX IF NOT EXISTS history_recipient_address ON history_recipient (address)",
        # Covering: the neighbour query reads addresses of one domain without table look-ups.
        "CREATE INDEX IF NOT EXISTS history_recipient_domain "
        "ON history_recipient (domain, address)",
        "CREATE INDEX IF NOT EXISTS history_recipient_local ON history_recipient (sender, local)",
        "CREATE INDEX IF NOT EXISTS history_recipient_name ON history_recipient (sender, name)",
        "CREATE INDEX IF NOT EXISTS history_recipient_last ON history_recipient (last_at)",
        f"""CREATE TABLE IF NOT EXISTS history_domain (
            domain TEXT PRIMARY KEY,
            first_at {ts} NOT NULL,
            last_at {ts} NOT NULL,
            count INTEGER NOT NULL
        )""",
        f"""CREATE TABLE IF NOT EXISTS history_thread (
            thread TEXT NOT NULL,
            domain TEXT NOT NULL,
            last_at {ts} NOT NULL,
            PRIMARY KEY (thread, domain)
        )""",
        "CREATE INDEX IF NOT EXISTS history_thread_last ON history_thread (last_at)",
        f"CREATE TABLE IF NOT EXISTS history_seen (key TEXT PRIMARY KEY, at {ts} NOT NULL)",
        "CREATE INDEX IF NOT EXISTS history_seen_at ON history_seen (at)",
    )


# 6 (history): correspondent history; tables of its own, depending on nothing after 2.
_SQLITE_HISTORY = _history("TEXT")

SQLITE_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    _SQLITE_V1,
    _SQLITE_V2,
    _SQLITE_V3,
    _SQLITE_V4,
    _SQLITE_V5,
    _SQLITE_HISTORY,
)

_POSTGRES_V1 = (
    """CREATE TABLE queue_entry (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        envelope TEXT NOT NULL,
        verdict TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        size BIGINT NOT NULL,
        release_at TIMESTAMPTZ,
        expires_at TIMESTAMPTZ,
        released_at TIMESTAMPTZ,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TIMESTAMPTZ,
        last_error TEXT NOT NULL DEFAULT '',
        approvals TEXT NOT NULL DEFAULT '[]',
        decided_by TEXT,
        decided_at TIMESTAMPTZ,
        reason TEXT NOT NULL DEFAULT '',
        claimed_by TEXT,
        claim_until TIMESTAMPTZ,
        mail_from TEXT NOT NULL,
        auth_user TEXT,
        transaction_id TEXT NOT NULL DEFAULT '',
        rule_id TEXT,
        data BYTEA NOT NULL
    )""",
    "CREATE INDEX queue_entry_due ON queue_entry (state, next_attempt_at)",
    "CREATE INDEX queue_entry_release ON queue_entry (state, release_at)",
    "CREATE INDEX queue_entry_expiry ON queue_entry (state, expires_at)",
    "CREATE INDEX queue_entry_updated ON queue_entry (state, updated_at)",
    """CREATE TABLE notice (
        id BIGSERIAL PRIMARY KEY,
        queue_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TIMESTAMPTZ NOT NULL,
        claimed_by TEXT,
        claim_until TIMESTAMPTZ,
        last_error TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX notice_due ON notice (next_attempt_at)",
    # `details` is TEXT, not JSONB: the chain hashes the exact canonical text, which JSONB
    # would re-order and re-space.
    """CREATE TABLE audit (
        seq BIGINT PRIMARY KEY,
        at TIMESTAMPTZ NOT NULL,
        event TEXT NOT NULL,
        actor TEXT NOT NULL,
        queue_id TEXT,
        transaction_id TEXT,
        details TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )""",
    "CREATE INDEX audit_at ON audit (at)",
    """CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$""",
    """CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
        FOR EACH ROW EXECUTE FUNCTION audit_append_only()""",
)

_POSTGRES_V2 = ("ALTER TABLE queue_entry ADD COLUMN delivered_to TEXT NOT NULL DEFAULT '[]'",)

_POSTGRES_V3 = ("ALTER TABLE queue_entry ADD COLUMN quarantined_from TEXT",)

_POSTGRES_V4 = (
    "ALTER TABLE audit ADD COLUMN v INTEGER NOT NULL DEFAULT 1",
    "ALTER TABLE audit ADD COLUMN key_id TEXT",
)

_POSTGRES_V5 = (
    """CREATE TABLE IF NOT EXISTS used_once (
        key TEXT PRIMARY KEY,
        queue_id TEXT NOT NULL,
        action TEXT NOT NULL,
        used_at TIMESTAMPTZ NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS used_once_expiry ON used_once (expires_at)",
)

_POSTGRES_HISTORY = _history("TIMESTAMPTZ")

POSTGRES_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    _POSTGRES_V1,
    _POSTGRES_V2,
    _POSTGRES_V3,
    _POSTGRES_V4,
    _POSTGRES_V5,
    _POSTGRES_HISTORY,
)


def log_migration(migrated_from: int | None, to_version: int) -> None:
    """The relay's ``store_migrated`` event when opening the store moved its schema (an
    upgrade, or a new store), with the process id: an operator (and the upgrade test) sees
    that it ran once, in the process that opened the store before the relay processes were
    forked. The stores themselves print nothing (the CLI's stdout is its output)."""
    if migrated_from is not None:
        structlog.get_logger("sendguard.queue").info(
            "store_migrated", from_version=migrated_from, to_version=to_version, pid=os.getpid()
        )
