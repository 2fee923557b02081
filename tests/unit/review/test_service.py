"""Review rules through the service, on both backends: self-release, N approvals, ALL, cancel."""

from __future__ import annotations

import asyncio

import pytest

from sendguard.errors import NotFound, ReviewError
from sendguard.model import Action, HoldParams
from sendguard.queue.store import Entry, Store
from sendguard.queue.testing import FakeClock, sample_envelope, sample_message, sample_verdict
from sendguard.review.rules import is_sender
from sendguard.review.service import ALL, ReviewService


async def _held(store: Store, hold: HoldParams | None = None) -> Entry:
    """A message from tanaka (AUTH user tanaka) held by a rule with `hold`."""
    return await store.enqueue(
        envelope=sample_envelope("tanaka@corp.example", auth_user="tanaka"),
        data=sample_message(),
        verdict=sample_verdict(hold=hold or HoldParams(reviewers=("boss@corp.example",))),
        state="held",
    )


async def test_reviewer_release_moves_entry_to_released_and_is_audited(store: Store) -> None:
    """One approval by someone other than the sender releases; the audit names the reviewer."""
    entry = await _held(store)
    (result,) = await ReviewService(store).release([entry.id], "boss")
    assert result.outcome == "released"
    stored = await store.get(entry.id)
    assert (stored.state, stored.decided_by, stored.approvals) == ("released", "boss", ("boss",))
    assert stored.next_attempt_at is not None
    last = (await store.audit_records())[-1]
    assert (last.event, last.actor, last.queue_id) == ("released", "boss", entry.id)
    notices = await store.claim_notices(10, "n", now=stored.updated_at)
    assert "released" in [n.kind for n in notices]


@pytest.mark.parametrize("actor", ["tanaka", "TANAKA@corp.example", "tanaka@corp.example"])
async def test_sender_cannot_release_own_hold(store: Store, actor: str) -> None:
    """The sender (by login, address or AUTH user) is refused when self-release is off."""
    entry = await _held(store)
    (result,) = await ReviewService(store).release([entry.id], actor)
    assert result.outcome == "refused"
    assert "does not allow the sender to release" in result.error
    assert "boss@corp.example" in result.error
    assert (await store.get(entry.id)).state == "held"


async def test_sender_may_release_when_the_rule_allows_it(store: Store) -> None:
    """With self_release the sender's own release goes through."""
    entry = await _held(store, HoldParams(self_release=True))
    (result,) = await ReviewService(store).release([entry.id], "tanaka")
    assert result.outcome == "released"


async def test_two_approvals_needed_and_one_person_counts_once(store: Store) -> None:
    """With approvals_required=2 the first approval keeps it held, a repeat is refused,
    and a second reviewer releases it."""
    entry = await _held(store, HoldParams(approvals_required=2))
    service = ReviewService(store)
    (first,) = await service.release([entry.id], "boss")
    assert first.outcome == "approved"
    assert (await store.get(entry.id)).state == "held"
    (again,) = await service.release([entry.id], "BOSS")
    assert "already approved" in again.error
    (second,) = await service.release([entry.id], "security")
    assert second.outcome == "released"
    assert (await store.get(entry.id)).approvals == ("boss", "security")


async def test_simultaneous_approvals_are_all_counted(store: Store) -> None:
    """Three reviewers approving at once on a 3-approval rule: none is lost, it is released."""
    entry = await _held(store, HoldParams(approvals_required=3))
    service = ReviewService(store)
    results = await asyncio.gather(*(service.release([entry.id], f"r{i}") for i in range(3)))
    assert sorted(r[0].outcome for r in results) == ["approved", "approved", "released"]
    stored = await store.get(entry.id)
    assert (stored.state, sorted(stored.approvals)) == ("released", ["r0", "r1", "r2"])


async def test_bulk_release_needs_the_literal_all(store: Store) -> None:
    """An empty id list or a lowercase 'all' is refused; ALL releases every held entry."""
    a, b = await _held(store), await _held(store)
    service = ReviewService(store)
    with pytest.raises(ReviewError, match="literal ALL"):
        await service.release([], "boss")
    with pytest.raises(ReviewError, match="literal ALL"):
        await service.release("all", "boss")
    with pytest.raises(ReviewError, match="literal ALL in capitals"):
        await service.release(["all"], "boss")
    with pytest.raises(ReviewError, match="on its own"):
        await service.release([a.id, "ALL"], "boss")
    results = await service.release(ALL, "boss")
    assert {r.queue_id for r in results} == {a.id, b.id}
    assert {r.outcome for r in results} == {"released"}


async def test_bulk_release_still_applies_each_rule(store: Store) -> None:
    """ALL by the sender skips (refuses) the sender's own hold and releases the others."""
    own = await _held(store)
    other = await store.enqueue(
        envelope=sample_envelope("suzuki@corp.example", auth_user="suzuki"),
        data=b"x",
        verdict=sample_verdict(),
        state="held",
    )
    results = {r.queue_id: r for r in await ReviewService(store).release(ALL, "tanaka")}
    assert results[own.id].outcome == "refused"
    assert results[other.id].outcome == "released"


async def test_reject_needs_a_reason_and_tells_the_sender(store: Store) -> None:
    """Reject without a reason is refused; with one the entry is rejected and noticed."""
    entry = await _held(store)
    service = ReviewService(store)
    with pytest.raises(ReviewError, match="reason is required"):
        await service.reject(entry.id, "boss", "  ")
    rejected = await service.reject(entry.id, "boss", "顧客リストの添付は禁止")
    assert (rejected.state, rejected.reason) == ("rejected", "顧客リストの添付は禁止")
    with pytest.raises(ReviewError, match="is rejected; only held or delayed"):
        await service.reject(entry.id, "boss", "again")
    (late,) = await service.release([entry.id], "boss")
    assert "only held or delayed mail can be released" in late.error


async def test_cancel_is_only_for_the_sender_of_delayed_mail(
    store: Store, clock: FakeClock
) -> None:
    """Another user cannot cancel; the sender can; a held message cannot be cancelled."""
    delayed = await store.enqueue(
        envelope=sample_envelope("tanaka@corp.example", auth_user="tanaka"),
        data=b"x",
        verdict=sample_verdict(Action.DELAY, delay_minutes=5),
        state="delayed",
    )
    held = await _held(store)
    service = ReviewService(store)
    with pytest.raises(ReviewError, match=r"only the sender \(tanaka@corp.example\)"):
        await service.cancel(delayed.id, "suzuki")
    with pytest.raises(ReviewError, match="held, not delayed"):
        await service.cancel(held.id, "tanaka")
    cancelled = await service.cancel(delayed.id, "tanaka")
    assert (cancelled.state, cancelled.decided_by) == ("cancelled", "tanaka")


async def test_release_of_unknown_id_is_reported_per_id(store: Store) -> None:
    """An unknown id in a release list is refused with its id; known ones still go."""
    entry = await _held(store)
    results = await ReviewService(store).release([entry.id, "01UNKNOWN"], "boss")
    assert [r.outcome for r in results] == ["released", "refused"]
    assert "no queue entry 01UNKNOWN" in results[1].error
    with pytest.raises(NotFound):
        await ReviewService(store).reject("01UNKNOWN", "boss", "r")


async def test_show_gives_headers_attachments_and_masked_findings(store: Store) -> None:
    """show lists the CSV attachment and masked evidence but not the body's raw number."""
    entry = await _held(store)
    details = await ReviewService(store).show(entry.id)
    assert ("Subject", "見積書の送付") in details.headers
    assert [(a.filename, a.content_type) for a in details.attachments] == [("顧客.csv", "text/csv")]
    assert details.findings[0].evidence == ("1234****9012", "2345****0123")
    assert [r.rule_id for r in details.rules] == ["hold-my-number"]


def test_sender_identity_matching() -> None:
    """Login name, address and AUTH user all identify the sender; other users do not."""
    env = sample_envelope("tanaka@corp.example", auth_user="t.tanaka@corp.example")
    assert is_sender("tanaka", env)
    assert is_sender("t.tanaka", env)
    assert is_sender("T.Tanaka@corp.example", env)
    assert not is_sender("suzuki", env)
    assert not is_sender("tanaka@other.example", env)
    assert not is_sender("", env)
