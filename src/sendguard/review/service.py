"""The review service: the one place reviewers and senders act on queued mail.

The `sendguard queue` CLI, the web console and signed links in notices (`sendguard.web`)
use it. Each caller verifies who is acting and passes that `Actor`
(`sendguard.review.actor`), never a typed name. Every decision goes through `Store.apply`
with a rule from `review.rules`, so it is checked under a row lock and audited in the same
transaction; the worker then delivers what was released.
"""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from sendguard.entry import FINISHED, Decide, Decision, Entry, State
from sendguard.errors import Conflict, NotFound, ReviewError, StoreError
from sendguard.queue.store import Clock, Store, utcnow
from sendguard.review import rules
from sendguard.review.actor import Actor
from sendguard.review.details import EntryDetails, describe

ALL: Literal["ALL"] = "ALL"
"""The literal a bulk release must name (like ``postsuper -H ALL``)."""


@dataclass(frozen=True, slots=True)
class ReleaseResult:
    """What happened to one id of a release: released, one more approval, or refused."""

    queue_id: str
    entry: Entry | None
    error: str = ""

    @property
    def outcome(self) -> str:
        """``released``, ``approved`` (more approvals still needed) or ``refused``."""
        if self.entry is None:
            return "refused"
        return "released" if self.entry.state == "released" else "approved"


class ReviewService:
    """List, show and decide on queued mail; every decision names a verified `Actor`."""

    def __init__(
        self, store: Store, *, clock: Clock = utcnow, default_reviewers: Sequence[str] = ()
    ) -> None:
        """`default_reviewers` review holds whose rule names none (``notify.reviewers``)."""
        self._store = store
        self._clock = clock
        self._default_reviewers = tuple(default_reviewers)

    async def list(self, *, state: State | None = None, limit: int | None = None) -> list[Entry]:
        """Entries (without message bytes), oldest first, optionally of one state."""
        return await self._store.list(states=[state] if state else [], limit=limit)

    async def show(self, queue_id: str) -> EntryDetails:
        """Everything a reviewer needs: envelope, headers, trace with masked evidence, files."""
        return describe(await self._store.get(queue_id))

    async def release(
        self,
        ids: Sequence[str] | Literal["ALL"],
        actor: Actor,
        *,
        context: Mapping[str, object] | None = None,
    ) -> builtins.list[ReleaseResult]:
        """Release (or approve) each id; bulk release of every held entry only with ``ALL``."""
        if ids == ALL:
            targets = [e.id for e in await self._store.list(states=["held"])]
        elif isinstance(ids, str):
            raise ReviewError("give queue ids as a list, or the literal ALL for every held entry")
        else:
            targets = list(ids)
            if not targets:
                raise ReviewError("name at least one queue id, or the literal ALL")
            if ALL in targets:
                raise ReviewError("ALL releases every held entry on its own; give it alone")
            if any(i.upper() == ALL for i in targets):
                raise ReviewError("bulk release needs the literal ALL in capitals")
        results = []
        for queue_id in targets:
            try:
                entry = await self._decide(
                    queue_id,
                    lambda e: rules.release(e, actor, self._clock(), self._default_reviewers),
                    context,
                )
            except (ReviewError, StoreError) as exc:
                results.append(ReleaseResult(queue_id, None, str(exc)))
            else:
                results.append(ReleaseResult(queue_id, entry))
        return results

    def plan_release(self, entries: Sequence[Entry], actor: Actor) -> builtins.list[ReleaseResult]:
        """What releasing `entries` (as read now) would do, changing nothing: the basis of
        a confirmation such as ``release ALL``'s. `release` decides again under the lock."""
        now = self._clock()
        plan = []
        for entry in entries:
            try:
                decided = rules.release(entry, actor, now, self._default_reviewers).entry
            except ReviewError as exc:
                plan.append(ReleaseResult(entry.id, None, str(exc)))
            else:
                plan.append(ReleaseResult(entry.id, decided))
        return plan

    async def reject(
        self,
        queue_id: str,
        actor: Actor,
        reason: str,
        *,
        context: Mapping[str, object] | None = None,
    ) -> Entry:
        """Refuse a held or delayed message; the sender is told `reason`."""
        return await self._decide(
            queue_id,
            lambda e: rules.reject(e, actor, reason, self._clock(), self._default_reviewers),
            context,
        )

    async def cancel(
        self, queue_id: str, actor: Actor, *, context: Mapping[str, object] | None = None
    ) -> Entry:
        """The sender (or an admin) withdraws a delayed message."""
        return await self._decide(
            queue_id, lambda e: rules.cancel(e, actor, self._clock()), context
        )

    async def request_review(
        self, queue_id: str, actor: Actor, *, context: Mapping[str, object] | None = None
    ) -> Entry:
        """The sender of a held message asks its reviewers again (their notice is re-sent)."""
        return await self._decide(queue_id, lambda e: rules.request_review(e, actor), context)

    async def delete(self, queue_id: str, actor: Actor) -> None:
        """Remove an entry without notifying anyone (admins; audited); not while delivering."""
        rules.require_admin(actor, "delete queued mail")
        try:
            await self._store.delete(queue_id, actor=actor.name)
        except Conflict as exc:
            raise ReviewError(str(exc)) from exc

    async def recover(self, queue_id: str, actor: Actor) -> Entry:
        """Put a corrupt entry that reads again back where it was (admins; audited)."""
        rules.require_admin(actor, "recover a corrupt entry")
        try:
            return await self._store.recover(queue_id, actor=actor.name)
        except Conflict as exc:
            raise ReviewError(str(exc)) from exc

    def purge_cutoff(self, older_than: dt.timedelta) -> dt.datetime:
        """The time before which finished entries are purged for `older_than`."""
        if older_than < dt.timedelta(0):
            raise ReviewError("purge age must not be negative")
        return self._clock() - older_than

    async def purgeable(self, before: dt.datetime, actor: Actor) -> builtins.list[Entry]:
        """The finished entries `purge(before, …)` would remove (without message bytes)."""
        rules.require_admin(actor, "purge the queue")
        found = await self._store.list(states=FINISHED, updated_before=before)
        return [e for e in found if e.updated_at < before]  # purge's bound is strict

    async def purge(self, before: dt.datetime, actor: Actor) -> int:
        """Remove finished entries last changed before `before` (admins); return how many."""
        rules.require_admin(actor, "purge the queue")
        return await self._store.purge(before=before, actor=actor.name)

    async def _decide(
        self, queue_id: str, decide: Decide, context: Mapping[str, object] | None = None
    ) -> Entry:
        """Apply `decide`; `context` (e.g. the console's client address) joins the audit
        details of the decision."""
        if context:
            extra = dict(context)
            inner = decide

            def decide(entry: Entry) -> Decision:
                decision = inner(entry)
                return replace(decision, details={**decision.details, **extra})

        try:
            return await self._store.apply(queue_id, decide)
        except NotFound:
            raise
        except Conflict as exc:
            raise ReviewError(str(exc)) from exc
