"""Fixtures for the history suite: every store test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sendguard.history.store import HistoryStore
from tests.support.store import postgres_schema


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store URL of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'history.db'}"
    else:
        with postgres_schema() as url:
            yield url


@pytest.fixture
async def history(store_url: str) -> AsyncIterator[HistoryStore]:
    """An open (migrated) history store, closed after the test."""
    store = await HistoryStore.open(store_url)
    yield store
    await store.close()
