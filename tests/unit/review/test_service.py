"""Review rules through the service, on both backends: self-release, N approvals, ALL, cancel."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest

from sendguard.entry import Entry
from sendguard.errors import NotFound, ReviewError
from sendguard.model import Action, HoldParams
from sendguard.queue.store import Store
from sendguard.review.actor import Actor
from sendguard.review.rules import is_sender
from sendguard.review.service import ALL, ReviewService
from tests.support.review import actor, root
from tests.support.store import FakeClock, sample_envelope, sample_message, sample_verdict

BOSS = actor("boss", "boss@corp.example")
SECURITY = actor("security", "security@corp.example")
TANAKA = actor("tanaka", "tanaka@corp.example", role="sender")


async def _held(store: Store, hold: HoldParams | None = None) -> Entry:
    """A message from tanaka (AUTH user tanaka) held by a rule with `hold` (default: boss
    reviews)."""
    return await store.enqueue(
        envelope=sample_envelope("tanaka@corp.example", auth_user="tanaka"),
        data=sample_message(),
        verdict=sample_verdict(hold=hold or HoldParams(reviewers=("boss@corp.example",))),
        state="held",
    )


async def test_reviewer_release_moves_entry_to_released_and_is_audited(store: Store) -> None:
    """One approval by someone other than the sender releases; the audit names the reviewer."""
    entry = await _held(store)
    (result,) = await ReviewService(store).release([entry.id], BOSS)
    assert result.outcome == "released"
    stored = await store.get(entry.id)
    assert (stored.state, stored.decided_by, stored.approvals) == ("released", "boss", ("boss",))
    assert stored.next_attempt_at is not None
    last = (await store.audit_records())[-1]
    assert (last.event, last.actor, last.queue_id) == ("released", "boss", entry.id)
    notices = await store.claim_notices(10, "n", now=stored.updated_at)
    assert "released" in [n.kind for n in notices]


@pytest.mark.parametrize(
    "sender",
    [
        actor("tanaka", "boss@corp.example"),  # the AUTH login, though a reviewer of the rule
        actor("t2", "TANAKA@corp.example", "boss@corp.example"),  # may send as MAIL FROM
        actor("t3", "@corp.example", role="admin"),  # a wildcard covers it: even an admin
    ],
)
async def test_sender_cannot_release_own_hold(store: Store, sender: Actor) -> None:
    """The sender (by AUTH login or an address it may send as) is refused when self-release
    is off, even when it is a reviewer of the rule or an admin."""
    entry = await _held(store)
    (result,) = await ReviewService(store).release([entry.id], sender)
    assert result.outcome == "refused"
    assert "does not allow the sender to release" in result.error
    assert "boss@corp.example" in result.error
    assert (await store.get(entry.id)).state == "held"


async def test_sender_may_release_when_the_rule_allows_it(store: Store) -> None:
    """With self_release the sender's own release goes through."""
    entry = await _held(store, HoldParams(self_release=True))
    (result,) = await ReviewService(store).release([entry.id], TANAKA)
    assert result.outcome == "released"


async def test_two_approvals_needed_and_one_person_counts_once(store: Store) -> None:
    """Approvals count verified identities: a repeat by the same login is refused, root
    counts once whatever --actor it gives, and the last distinct reviewer releases."""
    reviewers = ("boss@corp.example", "security@corp.example")
    entry = await _held(store, HoldParams(reviewers=reviewers, approvals_required=3))
    service = ReviewService(store)
    (first,) = await service.release([entry.id], BOSS)
    assert first.outcome == "approved"
    assert (await store.get(entry.id)).state == "held"
    (again,) = await service.release([entry.id], actor("BOSS", "boss@corp.example"))
    assert "already approved" in again.error
    (as_admin,) = await service.release([entry.id], root().acting_for("kacho"))
    assert as_admin.outcome == "approved"  # root is one more identity, whatever it names
    last = (await store.audit_records())[-1]
    assert (last.event, last.actor) == ("approved", "kacho, by admin root")
    assert json.loads(last.details)["by"] == "root"
    (twice,) = await service.release([entry.id], root().acting_for("security"))
    assert "root has already approved" in twice.error
    (third,) = await service.release([entry.id], SECURITY)
    assert third.outcome == "released"
    stored = await store.get(entry.id)
    assert (stored.state, stored.approvals) == ("released", ("boss", "root", "security"))


async def test_simultaneous_approvals_are_all_counted(store: Store) -> None:
    """Three reviewers approving at once on a 3-approval rule: none is lost, it is released."""
    reviewers = tuple(f"r{i}@corp.example" for i in range(3))
    entry = await _held(store, HoldParams(reviewers=reviewers, approvals_required=3))
    service = ReviewService(store)
    results = await asyncio.gather(
        *(service.release([entry.id], actor(f"r{i}", f"r{i}@corp.example")) for i in range(3))
    )
    assert sorted(r[0].outcome for r in results) == ["approved", "approved", "released"]
    stored = await store.get(entry.id)
    assert (stored.state, sorted(stored.approvals)) == ("released", ["r0", "r1", "r2"])


async def test_bulk_release_needs_the_literal_all(store: Store) -> None:
    """An empty id list or a lowercase 'all' is refused; ALL releases every held entry."""
    a, b = await _held(store), await _held(store)
    service = ReviewService(store)
    with pytest.raises(ReviewError, match="literal ALL"):
        await service.release([], BOSS)
    with pytest.raises(ReviewError, match="literal ALL"):
        await service.release("all", BOSS)
    with pytest.raises(ReviewError, match="literal ALL in capitals"):
        await service.release(["all"], BOSS)
    with pytest.raises(ReviewError, match="on its own"):
        await service.release([a.id, "ALL"], BOSS)
    results = await service.release(ALL, BOSS)
    assert {r.queue_id for r in results} == {a.id, b.id}
    assert {r.outcome for r in results} == {"released"}


async def test_bulk_release_still_applies_each_rule(store: Store) -> None:
    """ALL by a reviewer who is also a sender skips (refuses) its own hold and releases the
    others it reviews; the plan shown before asking says the same, changing nothing."""
    own = await _held(store, HoldParams(reviewers=("tanaka@corp.example",)))
    other = await store.enqueue(
        envelope=sample_envelope("suzuki@corp.example", auth_user="suzuki"),
        data=b"x",
        verdict=sample_verdict(hold=HoldParams(reviewers=("tanaka@corp.example",))),
        state="held",
    )
    not_mine = await store.enqueue(
        envelope=sample_envelope("suzuki@corp.example", auth_user="suzuki"),
        data=b"x",
        verdict=sample_verdict(),  # reviewed by boss
        state="held",
    )
    reviewer = actor("tanaka", "tanaka@corp.example")
    service = ReviewService(store)
    plan = service.plan_release(await service.list(state="held"), reviewer)
    outcomes = {p.queue_id: p.outcome for p in plan}
    assert outcomes == {own.id: "refused", other.id: "released", not_mine.id: "refused"}
    assert (await store.get(other.id)).state == "held"
    results = {r.queue_id: r for r in await service.release(ALL, reviewer)}
    assert results[own.id].outcome == "refused"
    assert results[other.id].outcome == "released"
    assert "addresses is among the reviewers" in results[not_mine.id].error


async def test_reject_needs_a_reason_and_tells_the_sender(store: Store) -> None:
    """Reject without a reason is refused; with one the entry is rejected and noticed."""
    entry = await _held(store)
    service = ReviewService(store)
    with pytest.raises(ReviewError, match="reason is required"):
        await service.reject(entry.id, BOSS, "  ")
    with pytest.raises(ReviewError, match="tanaka is listed as a sender, not a reviewer"):
        await service.reject(entry.id, TANAKA, "no")
    rejected = await service.reject(entry.id, BOSS, "顧客リストの添付は禁止")
    assert (rejected.state, rejected.reason) == ("rejected", "顧客リストの添付は禁止")
    with pytest.raises(ReviewError, match="is rejected; only held or delayed"):
        await service.reject(entry.id, BOSS, "again")
    (late,) = await service.release([entry.id], BOSS)
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
    with pytest.raises(ReviewError, match=r"only the sender \(tanaka@corp.example\) or an admin"):
        await service.cancel(delayed.id, actor("suzuki", "suzuki@corp.example"))
    with pytest.raises(ReviewError, match="held, not delayed"):
        await service.cancel(held.id, TANAKA)
    cancelled = await service.cancel(delayed.id, TANAKA)
    assert (cancelled.state, cancelled.decided_by) == ("cancelled", "tanaka")


async def test_release_of_unknown_id_is_reported_per_id(store: Store) -> None:
    """An unknown id in a release list is refused with its id; known ones still go."""
    entry = await _held(store)
    results = await ReviewService(store).release([entry.id, "01UNKNOWN"], BOSS)
    assert [r.outcome for r in results] == ["released", "refused"]
    assert "no queue entry 01UNKNOWN" in results[1].error
    with pytest.raises(NotFound):
        await ReviewService(store).reject("01UNKNOWN", BOSS, "r")


async def test_show_gives_headers_attachments_and_masked_findings(store: Store) -> None:
    """show lists the CSV attachment and masked evidence but not the body's raw number."""
    entry = await _held(store)
    details = await ReviewService(store).show(entry.id)
    assert ("Subject", "見積書の送付") in details.headers
    assert [(a.filename, a.content_type) for a in details.attachments] == [("顧客.csv", "text/csv")]
    assert details.findings[0].evidence == ("1234****9012", "2345****0123")
    assert [r.rule_id for r in details.rules] == ["hold-my-number"]


def test_sender_identity_matching() -> None:
    """The AUTH login, or a person who may send as MAIL FROM (or as an AUTH user that is an
    address), is the sender; other people are not, whatever their name looks like."""
    env = sample_envelope("tanaka@corp.example", auth_user="t.tanaka@corp.example")
    assert is_sender(actor("t.tanaka@corp.example"), env)
    assert is_sender(actor("x", "tanaka@corp.example"), env)
    assert is_sender(actor("y", "T.Tanaka@corp.example"), env)
    assert is_sender(actor("z", "@corp.example"), env)
    assert not is_sender(actor("tanaka", "tanaka@other.example"), env)
    assert not is_sender(actor("suzuki", "suzuki@corp.example"), env)
    assert not is_sender(actor("tanaka", listed=False), env)  # a bare name is no proof


async def test_delete_and_purge_are_for_admins(store: Store, clock: FakeClock) -> None:
    """A reviewer may neither delete nor purge; root may, and the audit names it."""
    entry = await _held(store)
    service = ReviewService(store)
    with pytest.raises(ReviewError, match="only an admin may delete queued mail"):
        await service.delete(entry.id, BOSS)
    before = service.purge_cutoff(dt.timedelta(0))
    with pytest.raises(ReviewError, match="only an admin may purge"):
        await service.purgeable(before, BOSS)
    with pytest.raises(ReviewError, match="only an admin may purge"):
        await service.purge(before, BOSS)
    await service.delete(entry.id, root().acting_for("boss"))
    last = (await store.audit_records())[-1]
    assert (last.event, last.actor) == ("deleted", "boss, by admin root")


async def test_default_reviewers_review_holds_whose_rule_names_none(store: Store) -> None:
    """With no reviewers on the rule, the configured default reviewers decide."""
    entry = await _held(store, HoldParams())
    (refused,) = await ReviewService(store).release([entry.id], BOSS)
    assert "only an admin can decide" in refused.error
    service = ReviewService(store, default_reviewers=("boss@corp.example",))
    (released,) = await service.release([entry.id], BOSS)
    assert released.outcome == "released"
