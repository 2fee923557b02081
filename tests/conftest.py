"""Shared fixtures: a recording upstream on port 0, TLS material, the vendored test corpus."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sendguard.testing.tls import CertPair, make_self_signed
from sendguard.testing.upstream import RecordingUpstream

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
