"""Is there a store at this URL already? The CLI asks before opening one, so that a command
run from the wrong directory or with the wrong settings says so instead of creating (and
then reporting on) a new, empty database. Only ``sendguard serve`` creates a store.
"""

from __future__ import annotations

from sendguard.errors import StoreError
from sendguard.queue.pgdriver import require_postgres_driver
from sendguard.queue.sqlite import sqlite_path

WHERE_HINT = (
    "set SENDGUARD_STORE or --store to the relay's store, or SENDGUARD_CONFIG to its "
    "settings file (default /etc/sendguard/sendguard.toml), or run this from the relay's "
    "working directory"
)


async def require_existing(url: str) -> None:
    """`StoreError` unless `url` names a store `serve` has created: an existing SQLite file
    (the message gives its absolute path), or a PostgreSQL schema with sendguard's tables.
    Unknown URL kinds are left to `open_store`, which names the kinds it knows."""
    if url.startswith("sqlite:"):
        path = sqlite_path(url).absolute()
        if not path.is_file():
            raise StoreError(f"no queue store at {path} (sendguard serve creates it); {WHERE_HINT}")
    elif url.startswith(("postgresql:", "postgres:")):
        await _require_postgres_schema(url)


async def _require_postgres_schema(url: str) -> None:
    require_postgres_driver()
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(url)
        where = f"database {info.get('dbname', '?')} on {info.get('host', 'localhost')}"
    except psycopg.Error:
        where = "the PostgreSQL database"
    try:
        async with await psycopg.AsyncConnection.connect(url, connect_timeout=15) as conn:
            cur = await conn.execute("SELECT to_regclass('schema_version') IS NOT NULL")
            row = await cur.fetchone()
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to the PostgreSQL store: {exc}") from exc
    if not (row and row[0]):
        raise StoreError(
            f"{where} has no sendguard queue tables in its search_path (sendguard serve "
            f"creates them); {WHERE_HINT}"
        )
