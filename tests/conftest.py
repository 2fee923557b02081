"""Shared fixtures: a recording upstream on port 0, TLS material, the vendored test corpus."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.parallel import RunLock, WorkerDatabase
from tests.support.tls import CertPair, make_self_signed
from tests.support.upstream import RecordingUpstream

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "corpus" / "mikel-mail"
"""105 real-world MIME messages (MIT, Ruby mail gem fixtures; LICENSE and SOURCE inside)."""


def need_tool(name: str) -> str:
    """Path of a Debian tool the test needs; the test fails (not skips) when CI lacks it."""
    path = shutil.which(name) or (
        f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None
    )
    if path is None:
        pytest.fail(f"{name} is not installed: scripts/test installs postfix and swaks")
    return path


_RUN_LOCK_DIR = pytest.StashKey[Path]()
_RUN_LOCK = pytest.StashKey[RunLock]()
_DATABASE = pytest.StashKey[WorkerDatabase]()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist, in the controller: hand each worker the directory of the run lock."""
    config = node.config
    if _RUN_LOCK_DIR not in config.stash:
        config.stash[_RUN_LOCK_DIR] = Path(tempfile.mkdtemp(prefix="sendguard-tests-"))
    node.workerinput["sendguard_run_lock"] = str(config.stash[_RUN_LOCK_DIR])


def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:  # a pytest-xdist worker
        config.stash[_RUN_LOCK] = RunLock(Path(workerinput["sendguard_run_lock"]))
        config.stash[_DATABASE] = WorkerDatabase(workerinput["workerid"], workerinput["testrunuid"])


def pytest_unconfigure(config: pytest.Config) -> None:
    if _DATABASE in config.stash:
        config.stash[_DATABASE].drop()
    if _RUN_LOCK in config.stash:
        config.stash[_RUN_LOCK].close()
    if _RUN_LOCK_DIR in config.stash:
        shutil.rmtree(config.stash[_RUN_LOCK_DIR], ignore_errors=True)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Under xdist, an ``exclusive`` test waits for the other workers' tests and they wait
    for it; set-up and teardown included, the waiting outside the test's timeout."""
    lock = item.config.stash.get(_RUN_LOCK, None)
    if lock is None:
        return (yield)
    with lock.hold(exclusive=item.get_closest_marker("exclusive") is not None):
        return (yield)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Under xdist, a PostgreSQL test runs in its worker's own database."""
    database = item.config.stash.get(_DATABASE, None)
    if database is not None and item.get_closest_marker("postgres") is not None:
        database.ensure()


@pytest.fixture
async def upstream() -> AsyncIterator[RecordingUpstream]:
    """A plain recording upstream on 127.0.0.1:0."""
    async with RecordingUpstream() as up:
        yield up


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertPair:
    """A self-signed certificate for localhost / 127.0.0.1."""
    return make_self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def serve_logging() -> Iterator[Callable[[str], None]]:
    """Configure logging as `sendguard serve` does (metrics are counted in that chain), and
    undo it afterwards: its stream is pytest's captured stderr, closed after the test."""
    import logging
    import sys
    import warnings

    import structlog

    from sendguard.log import configure_logging

    root = logging.getLogger()
    handlers, level, hook = list(root.handlers), root.level, sys.excepthook
    with warnings.catch_warnings():

        def configure(level_name: str = "info") -> None:
            configure_logging("json", level_name)  # type: ignore[arg-type]

        try:
            yield configure
        finally:
            structlog.reset_defaults()
            logging.captureWarnings(False)
            for handler in list(root.handlers):
                root.removeHandler(handler)
            for handler in handlers:
                root.addHandler(handler)
            root.setLevel(level)
            sys.excepthook = hook
