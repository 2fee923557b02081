"""Fixtures for review tests: a store of each backend, a settable clock, the CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sendguard.queue.backends import open_store
from sendguard.queue.store import Store
from tests.support.store import FakeClock, postgres_schema


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store URL of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'queue.db'}"
    else:
        with postgres_schema() as url:
            yield url


@pytest.fixture
def clock() -> FakeClock:
    """A clock the test moves by hand."""
    return FakeClock()


@pytest.fixture
async def store(store_url: str, clock: FakeClock) -> AsyncIterator[Store]:
    """An open store on the fresh URL, closed after the test."""
    opened = await open_store(store_url, clock=clock)
    yield opened
    await opened.close()
