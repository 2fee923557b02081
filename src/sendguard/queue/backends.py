"""Open the queue store a URL names: ``sqlite:///PATH`` (one node) or ``postgresql://…``
(several nodes sharing one queue). Above both backends, so `queue.store` (the interface
they implement) imports neither.
"""

from __future__ import annotations

from sendguard.errors import StoreError
from sendguard.queue.auditkey import AuditKey
from sendguard.queue.pgdriver import require_postgres_driver
from sendguard.queue.settings import QueueSettings
from sendguard.queue.sqlite import SqliteStore
from sendguard.queue.store import Clock, Store, utcnow


async def open_store(
    url: str,
    *,
    key: bytes | None = None,
    settings: QueueSettings | None = None,
    clock: Clock = utcnow,
    audit_key: AuditKey | None = None,
    group_commit: bool = True,
) -> Store:
    """Open (and migrate) the store at `url`: ``sqlite:///PATH`` or ``postgresql://…``.

    `key` turns on AES-256-GCM encryption of message bytes; `settings` gives hold expiry
    and the business calendar (defaults otherwise); `clock` is for tests. `audit_key` keys
    the audit chain (HMAC); without it the store can append only to a chain that has no
    keyed record yet. `group_commit` batches concurrent audit appends into one commit.
    """
    settings = settings or QueueSettings()
    if url.startswith("sqlite:"):
        sqlite = await SqliteStore.open(url, key=key, settings=settings, clock=clock)
        sqlite.set_audit(audit_key, group_commit=group_commit)
        return sqlite
    if url.startswith(("postgresql:", "postgres:")):
        # Imported only here: psycopg (the postgres extra) is needed only by a node that
        # uses PostgreSQL, and may not be installed.
        require_postgres_driver()
        from sendguard.queue.postgres import PostgresStore

        postgres = await PostgresStore.open(url, key=key, settings=settings, clock=clock)
        postgres.set_audit(audit_key, group_commit=group_commit)
        return postgres
    raise StoreError(f"unknown store URL {url!r}: use sqlite:///PATH or postgresql://…")


async def open_configured_store(
    store_url: str, settings: QueueSettings, *, audit_key: AuditKey | None = None
) -> Store:
    """Open the store with the key and calendar from `settings` (what `serve` and the CLI use)."""
    return await open_store(store_url, key=settings.key, settings=settings, audit_key=audit_key)
