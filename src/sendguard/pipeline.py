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
   means the upstream (or our durable queue) has the message.
5. One `transaction` log event records the outcome (ids, sizes, action, rule, findings as
   detector/code/count — never content).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

import structlog

from sendguard.deliver import Upstream
from sendguard.errors import InspectionError, StoreError
from sendguard.intake import replies
from sendguard.model import Action, Envelope, Finding, Mail, Reply, Verdict
from sendguard.ops import metrics
from sendguard.policy.replay import replay_facts

log = structlog.get_logger("sendguard.transaction")


class Inspected(Protocol):
    """What inspection hands back: the mail view, all findings, and the verdict."""

    @property
    def mail(self) -> Mail: ...
    @property
    def findings(self) -> tuple[Finding, ...]: ...
    @property
    def verdict(self) -> Verdict: ...


class Inspects(Protocol):
    """parse → detect → policy for one message."""

    async def inspect(self, envelope: Envelope, data: bytes) -> Inspected: ...


class Outgoing(Protocol):
    """One copy to send: its recipients and its bytes (several for a split rewrite)."""

    @property
    def rcpt_tos(self) -> tuple[str, ...]: ...
    @property
    def data(self) -> bytes: ...


Prepare = Callable[[bytes, Inspected, Envelope], tuple[Outgoing, ...]]
"""Apply tag/rewrite edits to a copy of the bytes (`sendguard.actions.rewrite.apply_verdict`)."""
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
        state: Literal["held", "delayed"],
        release_at: datetime | None = None,
    ) -> object:
        """Commit a held/delayed message (with its audit event and notices); return the entry."""
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
        self._audits: set[asyncio.Task[None]] = set()

    async def handle(
        self, envelope: Envelope, data: bytes, *, upstream: Upstream | None = None
    ) -> Reply:
        """The reply for the client; 250 only once the upstream or the queue has the message."""
        started = time.perf_counter()
        structlog.contextvars.bind_contextvars(transaction_id=envelope.transaction_id)
        findings: tuple[Finding, ...] = ()
        with metrics.in_flight(len(data)):
            try:
                inspected = await self._inspect(envelope, data)
            except InspectionError as exc:
                inspect_ms = _ms_since(started)
                reply, verdict = await self._fail_closed(envelope, data, exc)
            else:
                inspect_ms = _ms_since(started)
                verdict, findings = inspected.verdict, inspected.findings
                reply = await self._act(envelope, data, inspected, upstream or self.upstream)
                if self.history is not None and reply.ok and verdict.action <= Action.REWRITE:
                    self.history.delivered(envelope, data)  # queued: the client does not wait
        _log_transaction(envelope, data, verdict, findings, reply, started, inspect_ms)
        self._audit(envelope, verdict, findings, reply)
        structlog.contextvars.unbind_contextvars("transaction_id")
        return reply

    def _audit(
        self, envelope: Envelope, verdict: Verdict, findings: tuple[Finding, ...], reply: Reply
    ) -> None:
        """Every verdict goes into the hash-chained audit log.

        Queued mail is audited by the store in the same commit as the entry. For the rest the
        reply does not wait: the message has already gone (or been refused), and an audit
        failure must not turn a delivered message into a 451 the client would resend.
        """
        if self.queue is None or (verdict.action in (Action.DELAY, Action.HOLD) and reply.ok):
            return
        task = asyncio.create_task(
            self.queue.audit(
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
                    **replay_facts(envelope, findings),
                },
            )
        )
        self._audits.add(task)
        task.add_done_callback(self._audit_done)

    def _audit_done(self, task: asyncio.Task[None]) -> None:
        self._audits.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("audit_write_failed", error=str(task.exception()))

    async def drain(self) -> None:
        """Wait for audit writes still in flight (shutdown)."""
        if self._audits:
            await asyncio.gather(*self._audits, return_exceptions=True)

    async def _inspect(self, envelope: Envelope, data: bytes) -> Inspected:
        try:
            async with asyncio.timeout(self.options.scan_budget):
                return await self.inspector.inspect(envelope, data)
        except TimeoutError as exc:
            raise InspectionError(f"scan budget of {self.options.scan_budget}s exceeded") from exc
        except InspectionError:
            raise
        except Exception as exc:
            # Fail closed: an unexpected bug in any stage must not let the message pass.
            raise InspectionError(f"{type(exc).__name__} during inspection") from exc

    async def _act(
        self, envelope: Envelope, data: bytes, inspected: Inspected, upstream: Upstream
    ) -> Reply:
        verdict = inspected.verdict
        if verdict.action is Action.REJECT:
            return self.reject_reply(verdict, envelope.transaction_id)
        if verdict.action in (Action.DELAY, Action.HOLD):
            # The original is stored: reviewers see what the sender wrote, and the release
            # applies the verdict's tags and rewrite exactly once (`App._prepare_release`).
            return await self._enqueue(envelope, data, verdict)
        copies = self.prepare(data, inspected, envelope)
        return await _deliver_all(upstream, envelope, copies)

    async def _enqueue(self, envelope: Envelope, data: bytes, verdict: Verdict) -> Reply:
        if self.queue is None:
            log.error("queue_unavailable", action=verdict.action.label)
            return replies.TEMPFAIL_INTERNAL
        state: Literal["held", "delayed"] = "held" if verdict.action is Action.HOLD else "delayed"
        release_at = (
            datetime.now(UTC) + timedelta(minutes=verdict.delay_minutes)
            if state == "delayed"
            else None
        )
        try:
            entry = await self.queue.enqueue(
                envelope=envelope, data=data, verdict=verdict, state=state, release_at=release_at
            )
        except StoreError as exc:
            log.error("queue_commit_failed", error=str(exc))
            return replies.TEMPFAIL_INTERNAL
        queue_id = getattr(entry, "id", "?")
        rule = f" by rule {verdict.rule_id}" if verdict.rule_id else ""
        return Reply(250, f"2.0.0 Ok: {state}{rule} as {queue_id}: {verdict.reason}"[:400])

    async def _fail_closed(
        self, envelope: Envelope, data: bytes, error: InspectionError
    ) -> tuple[Reply, Verdict]:
        reference = uuid.uuid4().hex[:12]
        log.error("inspection_failed", reference=reference, error=str(error))
        if self.options.on_error == "hold" and self.queue is not None:
            verdict = Verdict(
                action=Action.HOLD,
                rule_id="on-error",
                reason=f"inspection failed (ref {reference})",
            )
            return await self._enqueue(envelope, data, verdict), verdict
        verdict = Verdict(action=Action.REJECT, rule_id="on-error", reason="inspection failed")
        budget = "time" in str(error) or "budget" in str(error)
        reply = replies.TEMPFAIL_BUDGET if budget else replies.TEMPFAIL_INTERNAL
        return replies.with_reference(reply, reference), verdict


async def _deliver_all(
    upstream: Upstream, envelope: Envelope, copies: tuple[Outgoing, ...]
) -> Reply:
    """Send each copy; the first failure is the client's reply (earlier copies may have gone)."""
    reply = Reply(250, "2.0.0 Ok")
    for copy in copies:
        part = Envelope(
            mail_from=envelope.mail_from,
            rcpt_tos=copy.rcpt_tos,
            mail_options=envelope.mail_options,
            transaction_id=envelope.transaction_id,
        )
        reply = await upstream.send(part, copy.data)
        if not reply.ok:
            return reply
    return reply


def _log_transaction(
    envelope: Envelope,
    data: bytes,
    verdict: Verdict,
    findings: tuple[Finding, ...],
    reply: Reply,
    started: float,
    inspect_ms: float,
) -> None:
    log.info(
        "transaction",
        client=envelope.client_address,
        auth_user=envelope.auth_user,
        mail_from=envelope.mail_from,
        rcpt_count=len(envelope.rcpt_tos),
        size=len(data),
        action=verdict.action.label,
        rule=verdict.rule_id,
        warned=list(verdict.warned),
        findings=[f"{f.detector}/{f.code}:{f.count}" for f in findings],
        reply_code=reply.code,
        reply=reply.text[:120],
        duration_ms=_ms_since(started),
        inspect_ms=inspect_ms,
    )


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
