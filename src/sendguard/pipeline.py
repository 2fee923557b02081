"""The whole flow of one message. Read this first.

```
 client ─▶ intake ─▶ inspect ─▶ verdict ─┬─ pass/tag/rewrite ─▶ deliver ─▶ upstream
          (access,   (parse,              ├─ delay/hold ───────▶ queue (250 after commit)
           syntax)    detect, policy)     └─ reject ───────────▶ 550 5.7.1 (451 if soft)
```

1. `sendguard.intake` has already refused what must never get this far (open relay, bad
   addresses, bare CR/LF, size) and hands us the validated envelope and the exact bytes
   the client sent, dot-unstuffed.
2. `Inspector.inspect` parses a copy into a read-only `Mail`, runs every detector and the
   policy, and returns findings plus one `Verdict` with its full trace. It runs under
   `scan_budget`; a timeout or any error fails closed: 451 or hold (`on_error`), never pass.
3. The verdict is acted on here and nowhere else:
   pass → the original bytes go upstream untouched; tag/rewrite → a copy's headers are
   edited (`sendguard.actions`), the envelope is unchanged; delay/hold → the store commits
   the message and only then do we answer 250; reject → 550 with the rule and a reference.
4. Live mail is synchronous: the client's reply is the upstream's reply, so a 250 always
   means the upstream (or our durable queue) has the message. A `split` rewrite sends one
   copy per recipient: once a copy has gone, a later copy's failure is not the client's to
   retry (it would resend the copies that went); the copies still missing are queued for
   the worker and the client gets 250 after that commit (`_deliver_copies`).
5. The verdict is appended to the keyed audit chain and committed (group commit) before the
   client gets its reply, so every 250 has its verdict record. One `transaction` log event
   records the outcome (ids, sizes, action, rule, findings as
   detector/code/count — never content), whatever happens: an error, a shutdown, a client
   that was answered early or went away (`ClientSide`).
6. The client never waits past `reply_deadline` (the intake answers 451 then, see
   `sendguard.intake.server`), and a message is committed (sent upstream, or queued) only
   while the client is still waiting for its reply: a client that was answered or went away
   resends the message, so committing it as well would send it twice. Once committed, a
   delivery is always seen through and logged; if the client was answered meanwhile and the
   upstream still accepts, `duplicate_likely` says so.

Right below are the protocols this file needs of the parts it drives (`Inspects`,
`Queue`, `Learns`); `sendguard.app` wires the real ones. An error becomes a reply by its
class, in `sendguard.replies.reply_for`. docs/design.md's "Layers" says where every other
module sits.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

import structlog

from sendguard import replies
from sendguard.deliver import Upstream
from sendguard.entry import Entry
from sendguard.errors import InspectionError, InspectionTimeout, StoreError
from sendguard.inspect import Inspection
from sendguard.model import Action, Envelope, Finding, Outgoing, Prepare, Reply, Verdict
from sendguard.ops import metrics
from sendguard.policy.replay import replay_facts

log = structlog.get_logger("sendguard.transaction")

_TEMPFAIL_AUDIT = Reply(451, "4.3.0 Could not record the verdict; try again later")


class Inspects(Protocol):
    """parse → detect → policy for one message."""

    async def inspect(
        self, envelope: Envelope, data: bytes, *, spooled: Path | None = None
    ) -> Inspection:
        """The mail view, every finding and one verdict (`sendguard.inspect.Inspector`);
        ``spooled``: a file holding exactly `data`, kept until this returns."""
        ...


RejectReply = Callable[[Verdict, str], Reply]
"""The reply for a reject verdict, given the reference (`sendguard.actions.reject_reply`)."""


class Learns(Protocol):
    """The correspondent history's intake (`sendguard.history.service.History.delivered`)."""

    def delivered(self, envelope: Envelope, data: bytes) -> None:
        """Note a delivered message; returns at once (the write happens in the background)."""
        ...


class Queue(Protocol):
    """The part of the store the live path uses."""

    async def enqueue(
        self,
        *,
        envelope: Envelope,
        data: bytes,
        verdict: Verdict,
        state: Literal["held", "delayed", "released"],
        release_at: datetime | None = None,
        delivered_to: tuple[str, ...] = (),
        last_error: str = "",
    ) -> Entry:
        """Commit a held/delayed message (with its audit event and notices); return the entry.
        ``released`` with `delivered_to`: the rest of a split delivery, due at once."""
        ...

    async def audit(
        self,
        event: str,
        *,
        actor: str,
        queue_id: str | None = None,
        transaction_id: str | None = None,
        details: Mapping[str, object],
    ) -> None:
        """Append one event to the audit log."""
        ...


@dataclass(slots=True)
class ClientSide:
    """The client's side of one transaction: the intake writes it, the pipeline reads it.

    The intake answers the client itself when the reply deadline passes and notices when the
    client goes away; the pipeline goes on (a delivery is never cut half-way) and records both
    in the one `transaction` event.
    """

    transaction_id: str = ""
    answered: Reply | None = None
    """The reply the intake already gave the client (451 at the reply deadline)."""
    gone: bool = False
    """The client disconnected (or the relay closed it) before its reply."""
    committed: bool = False
    """Delivery or queueing has begun: from here the message is seen through."""

    @property
    def waiting(self) -> bool:
        """Whether the client still waits for the pipeline's reply."""
        return self.answered is None and not self.gone


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    """Settings the pipeline reads."""

    scan_budget: float = 30.0
    on_error: Literal["tempfail", "hold"] = "tempfail"


class Pipeline:
    """inspect → verdict → act, for every message the intake accepts."""

    def __init__(
        self,
        *,
        inspector: Inspects,
        upstream: Upstream,
        prepare: Prepare,
        reject_reply: RejectReply,
        queue: Queue | None = None,
        options: PipelineOptions | None = None,
        history: Learns | None = None,
    ) -> None:
        self.inspector = inspector
        self.upstream = upstream
        self.prepare = prepare
        self.reject_reply = reject_reply
        self.queue = queue
        self.options = options or PipelineOptions()
        self.history = history

    async def handle(
        self,
        envelope: Envelope,
        data: bytes,
        *,
        upstream: Upstream | None = None,
        client: ClientSide | None = None,
        spooled: Path | None = None,
    ) -> Reply:
        """The reply for the client; 250 only once the upstream or the queue has the message.

        ``spooled``: the spool file that holds exactly `data`, kept until this returns (the
        extraction process reads it instead of being sent the bytes).

        Exactly one `transaction` event is logged, also when this is cancelled (shutdown) or
        fails; `client` says whether the client is still there to be answered.
        """
        started = time.perf_counter()
        client = client if client is not None else ClientSide()
        client.transaction_id = envelope.transaction_id
        structlog.contextvars.bind_contextvars(transaction_id=envelope.transaction_id)
        findings: tuple[Finding, ...] = ()
        verdict: Verdict | None = None
        reply = replies.INTERRUPTED
        inspect_ms: float | None = None
        try:
            with metrics.in_flight(len(data)):
                try:
                    inspected = await self._inspect(envelope, data, spooled)
                except InspectionError as exc:
                    inspect_ms = _ms_since(started)
                    reply, verdict = await self._fail_closed(envelope, data, exc, client)
                else:
                    inspect_ms = _ms_since(started)
                    verdict, findings = inspected.verdict, inspected.findings
                    reply = await self._act(
                        envelope, data, inspected, upstream or self.upstream, client
                    )
            # Durable before the reply: a 250 always has its verdict record.
            reply = await self._audit(envelope, verdict, findings, reply)
        except Exception as exc:  # noqa: BLE001  # a bug after inspection: tempfail, logged
            reference = uuid.uuid4().hex[:12]
            log.error("internal_error", reference=reference, error=type(exc).__name__)
            reply = replies.with_reference(replies.reply_for(exc), reference)
        finally:
            _log_transaction(envelope, data, verdict, findings, reply, started, client, inspect_ms)
            structlog.contextvars.unbind_contextvars("transaction_id")
        return reply

    async def _audit(
        self, envelope: Envelope, verdict: Verdict, findings: tuple[Finding, ...], reply: Reply
    ) -> Reply:
        """Every verdict goes into the hash-chained audit log, durably before the 250.

        Queued mail is audited by the store in the same commit as the entry. For the rest the
        reply waits for the record's (group) commit, so a 250 always has its verdict record,
        even if the process dies the next instant. If the record cannot be written after the
        upstream took the message, the client gets 451 and resends: a duplicate is better
        than a message relayed without its audit record.
        """
        if self.queue is None or (verdict.action in (Action.DELAY, Action.HOLD) and reply.ok):
            return reply
        try:
            await self.queue.audit(
                "verdict",
                actor="relay",
                transaction_id=envelope.transaction_id,
                details={
                    "action": verdict.action.label,
                    "rule": verdict.rule_id,
                    "warned": list(verdict.warned),
                    "mail_from": envelope.mail_from,
                    "rcpt_count": len(envelope.rcpt_tos),
                    "findings": [f"{f.detector}/{f.code}:{f.count}" for f in findings],
                    "reply_code": reply.code,
                    "policy_version": verdict.trace.policy_version,
                    **({"via": envelope.client_via} if envelope.client_via else {}),
                    **replay_facts(envelope, findings),
                },
            )
        # Whatever failed, the record is not durable: never answer 250 then.
        except Exception as exc:  # noqa: BLE001
            log.error("audit_write_failed", error=str(exc), reply_code=reply.code)
            return _TEMPFAIL_AUDIT if reply.ok else reply
        return reply

    async def drain(self) -> None:
        """Nothing to wait for: every audit record is written before its reply (kept for
        callers that drained the old fire-and-forget writes at shutdown)."""

    async def _inspect(
        self, envelope: Envelope, data: bytes, spooled: Path | None = None
    ) -> Inspection:
        try:
            async with asyncio.timeout(self.options.scan_budget):
                return await self.inspector.inspect(envelope, data, spooled=spooled)
        except InspectionError:
            raise  # InspectionTimeout included: a detector's or the pool's own budget
        except TimeoutError as exc:
            budget = self.options.scan_budget
            raise InspectionTimeout(f"scan budget of {budget}s exceeded") from exc
        except Exception as exc:
            # Fail closed: an unexpected bug in any stage must not let the message pass.
            raise InspectionError(f"{type(exc).__name__} during inspection") from exc

    async def _act(
        self,
        envelope: Envelope,
        data: bytes,
        inspected: Inspection,
        upstream: Upstream,
        client: ClientSide,
    ) -> Reply:
        verdict = inspected.verdict
        if verdict.action is Action.REJECT:
            return self.reject_reply(verdict, envelope.transaction_id)
        if verdict.action in (Action.DELAY, Action.HOLD):
            # The original is stored: reviewers see what the sender wrote, and the release
            # applies the verdict's tags and rewrite exactly once (the worker calls the
            # same `Prepare`).
            return _commit(client) or await self._enqueue(envelope, data, verdict)
        copies = self.prepare(data, verdict, envelope, inspected.organisation)
        return _commit(client) or await self._deliver_copies(
            upstream, envelope, data, verdict, copies
        )

    async def _deliver_copies(
        self,
        upstream: Upstream,
        envelope: Envelope,
        data: bytes,
        verdict: Verdict,
        copies: tuple[Outgoing, ...],
    ) -> Reply:
        """Send each copy in turn and stop at the first failure.

        Nothing sent yet: that failure is the client's reply (it retries or bounces the whole
        message, and no one gets a copy twice). Some copies sent: the client must not resend,
        so the original bytes and verdict are queued as ``released`` with the recipients done
        in `delivered_to`; the worker re-applies the split and sends only the copies still
        missing (retrying a 4xx, bouncing a 5xx to the sender). 250 only after that commit;
        if the commit fails, 451 (a retry repeats the copies that went: duplicates rather than
        a loss) and the log says so (`split_rest_not_queued`)."""
        sent: list[str] = []
        reply = Reply(250, "2.0.0 Ok")
        for copy in copies:
            reply = await upstream.send(_part(envelope, copy), copy.data)
            if not reply.ok:
                break
            sent.extend(copy.rcpt_tos)
        if sent and self.history is not None:
            # Only the recipients the upstream took: the rest of a split goes later through
            # the worker (which notes what it delivers) or bounces (never a correspondent).
            self.history.delivered(replace(envelope, rcpt_tos=tuple(sent)), data)
        if reply.ok or not sent:
            return reply
        went = sum(1 for copy in copies if set(copy.rcpt_tos) <= set(sent))
        counts = {"copies": len(copies), "sent": went, "upstream_code": reply.code}
        if self.queue is None:  # no store to keep the rest in (not a configuration serve runs)
            log.error("split_rest_not_queued", error="no queue store", **counts)
            return reply
        try:
            entry = await self.queue.enqueue(
                envelope=envelope, data=data, verdict=verdict, state="released",
                delivered_to=tuple(sent), last_error=str(reply),
            )  # fmt: skip
        except StoreError as exc:
            log.error("split_rest_not_queued", error=str(exc), **counts)
            return Reply(
                451,
                f"4.3.0 {went} of {len(copies)} copies were delivered but the rest could not "
                "be queued; a retry sends the delivered copies again",
            )
        queue_id = entry.id
        log.warning("split_rest_queued", queue_id=queue_id, **counts)
        return Reply(
            250,
            f"2.0.0 Ok: {went} of {len(copies)} copies delivered, the rest queued as "
            f"{queue_id} (upstream said {reply.code})",
        )

    async def _enqueue(self, envelope: Envelope, data: bytes, verdict: Verdict) -> Reply:
        if self.queue is None:
            log.error("queue_unavailable", action=verdict.action.label)
            return replies.TEMPFAIL_INTERNAL
        state: Literal["held", "delayed"] = "held" if verdict.action is Action.HOLD else "delayed"
        try:
            # The store works out when a delayed message goes (one place: `delay_minutes`
            # from now on its clock) and when a hold expires (business hours).
            entry = await self.queue.enqueue(
                envelope=envelope, data=data, verdict=verdict, state=state
            )
        except StoreError as exc:
            log.error("queue_commit_failed", error=str(exc))
            return replies.TEMPFAIL_INTERNAL
        queue_id = entry.id
        rule = f" by rule {verdict.rule_id}" if verdict.rule_id else ""
        return Reply(250, f"2.0.0 Ok: {state}{rule} as {queue_id}: {verdict.reason}"[:400])

    async def _fail_closed(
        self, envelope: Envelope, data: bytes, error: InspectionError, client: ClientSide
    ) -> tuple[Reply, Verdict]:
        reference = uuid.uuid4().hex[:12]
        log.error("inspection_failed", reference=reference, error=str(error))
        if self.options.on_error == "hold" and self.queue is not None:
            verdict = Verdict(
                action=Action.HOLD,
                rule_id="on-error",
                reason=f"inspection failed (ref {reference})",
            )
            return _commit(client) or await self._enqueue(envelope, data, verdict), verdict
        verdict = Verdict(action=Action.REJECT, rule_id="on-error", reason="inspection failed")
        return replies.with_reference(replies.reply_for(error), reference), verdict


def _part(envelope: Envelope, copy: Outgoing) -> Envelope:
    """The envelope of one copy: the client's (its address and HELO go on by XFORWARD),
    with the copy's recipients."""
    return replace(envelope, rcpt_tos=copy.rcpt_tos)


def _commit(client: ClientSide) -> Reply | None:
    """None once the message may be committed; the reply of an abandoned transaction if the
    client no longer waits (it resends what it was not told 250 for)."""
    if not client.waiting:
        return replies.ABANDONED
    client.committed = True
    return None


def _log_transaction(
    envelope: Envelope,
    data: bytes,
    verdict: Verdict | None,
    findings: tuple[Finding, ...],
    reply: Reply,
    started: float,
    client: ClientSide,
    inspect_ms: float | None,
) -> None:
    # What the client was told: the pipeline's reply, the intake's own earlier one, or
    # nothing (it went away).
    told = client.answered or (None if client.gone else reply)
    log.info(
        "transaction",
        client=envelope.client_address,
        via=envelope.client_via or None,
        postfix_id=envelope.client_ident or None,
        auth_user=envelope.auth_user,
        mail_from=envelope.mail_from,
        rcpt_count=len(envelope.rcpt_tos),
        size=len(data),
        action=verdict.action.label if verdict is not None else None,
        rule=verdict.rule_id if verdict is not None else None,
        warned=list(verdict.warned) if verdict is not None else [],
        findings=[f"{f.detector}/{f.code}:{f.count}" for f in findings],
        reply_code=reply.code,
        reply=reply.text[:120],
        client_reply_code=told.code if told is not None else None,
        client_gone=client.gone,
        duration_ms=_ms_since(started),
        inspect_ms=inspect_ms,
    )
    if reply is replies.INTERRUPTED and client.committed:
        log.error(
            "duplicate_possible",
            transaction_id=envelope.transaction_id,
            detail="interrupted while delivering or queueing: the upstream may have it",
        )
    elif reply.ok and told is not reply:
        # Accepted (upstream or queue) after the client was answered otherwise or left: the
        # client will resend, and the recipients will likely get the message twice.
        log.error(
            "duplicate_likely",
            transaction_id=envelope.transaction_id,
            reply_code=reply.code,
            reply=reply.text[:120],
            client_reply_code=told.code if told is not None else None,
            client_gone=client.gone,
        )


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
