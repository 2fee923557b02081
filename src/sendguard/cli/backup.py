"""`sendguard backup FILE` and `sendguard restore FILE`: copy the queue store while the relay
runs, and put a copy back.

backup  — SQLite: the online-backup API (one consistent snapshot, integrity-checked, written
          atomically with mode 0600); PostgreSQL: pg_dump --format=custom of the store's
          schema. The relay keeps running. Key files are not in the store: copy them too.
restore — SQLite only: the backup becomes the store named by the settings, which must not
          exist (stop the relay, move the old store and its -wal/-shm aside). PostgreSQL:
          pg_restore, as docs/operations.md shows.

Both read the relay's settings (SENDGUARD_CONFIG or /etc/sendguard/sendguard.toml, then
SENDGUARD_*) unless --store is given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `backup` and `restore`."""
    for name, helptext, func in (
        ("backup", "copy the queue store to FILE while the relay runs", run_backup),
        ("restore", "restore a SQLite backup FILE as a new store", run_restore),
    ):
        p = sub.add_parser(
            name,
            help=helptext,
            description=__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("file", type=Path, help="the backup file")
        p.add_argument("--store", help="store URL (default: the relay's SENDGUARD_STORE)")
        p.set_defaults(func=func)


def _store_url(args: argparse.Namespace) -> str:
    if args.store:
        return str(args.store)
    from sendguard.settings import load_settings

    return load_settings().store


def run_backup(args: argparse.Namespace) -> int:
    """Write the backup and say what it holds."""
    from sendguard.queue.backup import BackupError, backup

    try:
        copy = backup(_store_url(args), args.file)
    except BackupError as exc:
        print(f"sendguard: backup failed: {exc}", file=sys.stderr)
        return 1
    print(
        f"backup written: {copy.path} ({copy.size} bytes, schema {copy.schema_version}, "
        f"{copy.entries} queue entries, {copy.audit_records} audit records)"
    )
    return 0


def run_restore(args: argparse.Namespace) -> int:
    """Restore the backup as the (absent) store."""
    from sendguard.queue.backup import BackupError, restore

    try:
        copy = restore(args.file, _store_url(args))
    except BackupError as exc:
        print(f"sendguard: restore failed: {exc}", file=sys.stderr)
        return 1
    print(
        f"store restored: {copy.path} (schema {copy.schema_version}, {copy.entries} queue "
        f"entries, {copy.audit_records} audit records); start the relay, then run "
        "`sendguard audit verify`"
    )
    return 0
