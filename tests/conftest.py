"""Shared fixtures: a recording upstream on port 0, TLS material, the vendored test corpus."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

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
