"""The PostgreSQL driver is an optional extra: a single SQLite node needs none of it.

`require_postgres_driver` is asked before anything imports psycopg, so a postgres store URL
without the extra fails at start with the command that fixes it, not with an ImportError
from deep inside the store.
"""

from __future__ import annotations

from sendguard.errors import ConfigError

INSTALL = "pip install 'sendguard[postgres]'"
"""What installs the PostgreSQL driver (psycopg and psycopg-pool)."""


def require_postgres_driver() -> None:
    """`ConfigError` naming the extra unless psycopg and psycopg-pool can be imported (an
    installation problem: the CLI prints it without a traceback and exits 2)."""
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError as exc:
        missing = exc.name or "psycopg"
        raise ConfigError(
            f"a PostgreSQL store (SENDGUARD_STORE) needs the PostgreSQL driver ({missing} is "
            f"not installed): {INSTALL}"
        ) from exc
