"""Queue ids: ULIDs that sort by creation time and cannot be guessed from a neighbour."""

from __future__ import annotations

import datetime as dt
import itertools

from ulid import ULID

from sendguard.queue.codec import new_queue_id

CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def test_an_id_is_a_ulid_carrying_its_millisecond() -> None:
    now = dt.datetime(2026, 11, 20, 9, 3, 4, 567000, tzinfo=dt.UTC)
    queue_id = new_queue_id(now)
    assert len(queue_id) == 26 and set(queue_id) <= CROCKFORD
    assert ULID.from_str(queue_id).datetime == now


def test_ids_sort_by_time() -> None:
    start = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    ids = [new_queue_id(start + dt.timedelta(milliseconds=i)) for i in range(0, 5000, 7)]
    assert ids == sorted(ids)


def test_ids_of_one_millisecond_share_no_predictable_step() -> None:
    """Not monotonic within a millisecond (id + 1): each id has 80 fresh random bits."""
    now = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    values = [int(ULID.from_str(new_queue_id(now))) for _ in range(200)]
    assert len(set(values)) == 200
    steps = {b - a for a, b in itertools.pairwise(values)}
    assert all(abs(step) > 2**40 for step in steps)
