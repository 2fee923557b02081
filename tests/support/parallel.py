"""What lets the suite run on several pytest-xdist workers at once (`scripts/test` passes
``-n auto``) without the tests seeing each other: tests/conftest.py wires these in.

- A PostgreSQL database per worker: every PostgreSQL test already gets its own schema
  (`tests.support.store.postgres_schema`), but advisory locks (the audit chain's, the
  migration's) and server-wide views are per database, so a worker's tests get a database of
  their own, created from the `test` connection on first use and dropped when it finishes.
- A run lock: a test marked ``exclusive`` (it asserts timings relative to an unloaded
  machine, or loads every core by itself) runs while no other worker runs a test.

Without xdist (``-n 0``, or a single test file run by hand) neither does anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from tests.support.store import TEST_POSTGRES

POSTGRES_ENV = "SENDGUARD_TEST_POSTGRES"


class RunLock:
    """A readers-writer lock over files shared by the workers of one run (`fcntl.flock`:
    the `filelock` package has no shared mode). Every test holds it shared, an exclusive
    test holds it alone. The gate, taken by everybody before the lock itself, keeps a
    waiting exclusive test from being overtaken for ever by workers that never pause."""

    def __init__(self, directory: Path) -> None:
        # Opened once per worker and kept: a path opened again could be a new file.
        self._gate: BinaryIO = (directory / "gate.lock").open("ab")
        self._lock: BinaryIO = (directory / "run.lock").open("ab")

    @contextlib.contextmanager
    def hold(self, *, exclusive: bool) -> Iterator[None]:
        fcntl.flock(self._gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            if not exclusive:
                fcntl.flock(self._gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            if exclusive:
                fcntl.flock(self._gate, fcntl.LOCK_UN)

    def close(self) -> None:
        self._gate.close()
        self._lock.close()


class WorkerDatabase:
    """The worker's own PostgreSQL database, made on first use; its URL is then put in
    ``SENDGUARD_TEST_POSTGRES``, which `postgres_schema` (and the relays it is passed to)
    read, so the tests need no change."""

    def __init__(self, worker: str, run: str) -> None:
        self.name = f"sendguard_{worker}_{run[:12]}"
        self._given = os.environ.get(POSTGRES_ENV)
        self._base = self._given or TEST_POSTGRES
        self._created = False

    def ensure(self) -> None:
        if self._created:
            return
        import psycopg

        with psycopg.connect(self._base, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"'.encode())
        self._created = True
        os.environ[POSTGRES_ENV] = urlsplit(self._base)._replace(path=f"/{self.name}").geturl()

    def drop(self) -> None:
        if not self._created:
            return
        import psycopg

        if self._given is None:
            os.environ.pop(POSTGRES_ENV, None)
        else:
            os.environ[POSTGRES_ENV] = self._given
        with psycopg.connect(self._base, autocommit=True) as conn:
            # FORCE: a relay child a failed test left behind must not keep the database.
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'.encode())
        self._created = False
