"""Fixtures for the store suite: every store test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sendguard.deliver import SmtpOptions, SmtpUpstream, parse_target
from sendguard.notify.notifier import Notifier
from sendguard.notify.settings import NotifySettings
from sendguard.queue.backends import open_store
from sendguard.queue.settings import QueueSettings
from sendguard.queue.store import Store
from sendguard.queue.worker import Worker
from tests.support.store import FakeClock, postgres_schema
from tests.support.upstream import RecordingUpstream


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
    """A clock the test moves by hand (Friday 2026-11-20 09:00 UTC = 18:00 in Tokyo)."""
    return FakeClock()


@pytest.fixture
async def store(
    store_url: str, clock: FakeClock, queue_settings: QueueSettings
) -> AsyncIterator[Store]:
    """An open store on the fresh URL, closed after the test."""
    opened = await open_store(store_url, clock=clock, settings=queue_settings)
    yield opened
    await opened.close()


@pytest.fixture
async def smtp_upstream(upstream: RecordingUpstream) -> AsyncIterator[SmtpUpstream]:
    """The real upstream client (aiosmtplib) pointed at the recording server."""
    client = SmtpUpstream(parse_target(upstream.url), SmtpOptions(local_hostname="relay.test"))
    yield client
    await client.close()


@pytest.fixture
def queue_settings() -> QueueSettings:
    """Queue settings with the defaults (backoff 60 s, 300 s, …; expiry 72 business hours)."""
    return QueueSettings()


@pytest.fixture
def worker(
    store: Store, smtp_upstream: SmtpUpstream, queue_settings: QueueSettings, clock: FakeClock
) -> Worker:
    """A worker on the store, delivering to the recording upstream, notices included."""
    notifier = Notifier(
        smtp_upstream,
        NotifySettings(from_address="sendguard@corp.example", reviewers=("sec@corp.example",)),
        hostname="relay.test",
    )
    return Worker(store, smtp_upstream, notifier, queue_settings, node_id="node-1", clock=clock)
