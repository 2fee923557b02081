"""`Store.use_once`: a signed link's nonce is accepted once, on both backends."""

from __future__ import annotations

import datetime as dt

from sendguard.queue.store import Store
from tests.support.store import FakeClock


async def test_a_nonce_is_used_once_and_forgotten_after_expiry(
    store: Store, clock: FakeClock
) -> None:
    later = clock() + dt.timedelta(hours=72)
    assert await store.use_once("n1", queue_id="q1", action="cancel", expires_at=later)
    assert not await store.use_once("n1", queue_id="q1", action="cancel", expires_at=later)
    assert await store.use_once("n2", queue_id="q1", action="cancel", expires_at=later)
    clock.advance(hours=73)
    # Past its expiry the row is purged (the link itself no longer verifies by then).
    assert await store.use_once("n1", queue_id="q1", action="cancel",
                                expires_at=clock() + dt.timedelta(hours=72))  # fmt: skip
