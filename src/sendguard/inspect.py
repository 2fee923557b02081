"""Inspection: the glue parse → detect → policy that turns bytes into findings and a verdict.

Called by `sendguard.pipeline` (live mail, `Inspector.inspect`, under the scan budget) and by
``sendguard policy explain|test`` (`inspect_sync`). Parsing and the content detectors run
together in one worker-process round trip (`parse_and_detect`, top-level so it pickles);
network detectors (DNS) then run on the event loop; `sendguard.policy.evaluate` decides.
Any failure is raised as `InspectionError`/`InspectionTimeout`: the pipeline fails closed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import structlog
from pydantic import BaseModel

from sendguard.correspondence import HistorySnapshot
from sendguard.detect.base import DetectContext
from sendguard.detect.registry import (
    Detectors,
    build,
    cells_gate,
    run_content,
    run_history,
    run_network,
)
from sendguard.errors import InspectionError
from sendguard.model import Address, Envelope, Finding, Mail, Organisation, Verdict
from sendguard.parse import parse_message
from sendguard.parse.addresses import envelope_address
from sendguard.parse.limits import ParseLimits
from sendguard.parse.pool import ExtractionPool
from sendguard.policy.ceiling import PREFIX_ROWS, EarlyStop, early_stop, row_prefix
from sendguard.policy.evaluate import evaluate
from sendguard.policy.holder import PolicyHolder
from sendguard.policy.load import LoadedPolicy

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Inspection:
    """What inspecting one message produced."""

    mail: Mail
    findings: tuple[Finding, ...]
    verdict: Verdict
    notes: tuple[str, ...] = ()
    """Caveats for people (e.g. network detectors skipped offline); empty in the live relay."""
    organisation: Organisation = field(default_factory=Organisation)
    """The organisation of the policy that judged the message: pass it to `apply_verdict`,
    so a reload between inspection and delivery cannot change who counts as external."""


class HistorySource(Protocol):
    """What inspection needs of the correspondent history (`sendguard.history.service`)."""

    @property
    def learned(self) -> Mapping[str, int]:
        """Registrable domain → messages the organisation sent there (the frequent ones)."""
        ...

    async def snapshot(self, envelope: Envelope, mail: Mail) -> HistorySnapshot | None:
        """The per-message snapshot, or None when it could not be had in time."""
        ...

    def snapshot_now(self, envelope: Envelope, mail: Mail) -> HistorySnapshot | None:
        """The same, in the calling (worker) thread."""
        ...


def detect_context(
    envelope: Envelope,
    organisation: Organisation,
    learned: Mapping[str, int] | None = None,
    *,
    exhaustive: bool = False,
) -> DetectContext:
    """The detectors' view of the transaction: envelope addresses parsed strictly.
    ``exhaustive``: the detectors' slow reference paths (see `DetectContext.exhaustive`)."""

    recipients: list[Address] = []
    for rcpt in envelope.rcpt_tos:
        try:
            recipients.append(envelope_address(rcpt))
        except ValueError:
            continue  # intake validated them; an unparsable one is simply not classified
    sender: Address | None = None
    if envelope.mail_from:
        try:
            sender = envelope_address(envelope.mail_from)
        except ValueError:
            sender = None
    return DetectContext(
        organisation=organisation,
        envelope=envelope,
        recipients=tuple(recipients),
        sender=sender,
        exhaustive=exhaustive,
        learned=learned if learned is not None else {},  # replaced, never mutated: no copy
    )


def parse_and_detect(
    data: bytes,
    limits: ParseLimits,
    detectors: Detectors,
    ctx: DetectContext,
    stop: EarlyStop | None = None,
    rows: int = PREFIX_ROWS,
) -> tuple[Mail, tuple[Finding, ...]]:
    """Parse the bytes and run the content detectors: one worker round trip, picklable.

    With `stop` (the relay; never `policy explain`), the parts read so far are judged
    between leaves, and the rest of the message is not read once they already reach the
    most severe action the policy could take for the envelope. A CSV or workbook is read
    first to its first `rows` rows, and no further when those already reach it
    (`parse.Context.row_cap`)."""

    if stop is not None:
        ctx = replace(ctx, memo={})  # each part is read once, alone and then in the whole

    def reached(view: Mail) -> bool:
        assert stop is not None
        return stop.reached(run_content(detectors, view, ctx), view)

    mail = parse_message(
        data,
        limits,
        stop=reached if stop is not None else None,
        cells_gate=None if ctx.exhaustive else cells_gate(detectors),
        row_cap=None if ctx.exhaustive else rows,
    )
    if mail.stopped_early:
        log.info(
            "inspection_stopped_early",
            parts=len(mail.parts),
            rows=mail.rows_cut or None,
            action=stop and stop.action.label,
        )
        if mail.rows_cut:
            read = run_content(detectors, mail, ctx)
            return mail, tuple(_lower_bound(finding, mail.rows_cut) for finding in read)
    elif stop is not None and not ctx.exhaustive:
        found = prefix_findings(mail, detectors, ctx, stop)
        if found is not None:
            return mail, found
    return mail, run_content(detectors, mail, ctx)


def prefix_findings(
    mail: Mail, detectors: Detectors, ctx: DetectContext, stop: EarlyStop
) -> tuple[Finding, ...] | None:
    """The findings of `mail`'s long tables cut to their first rows (`row_prefix`) when they
    already reach the ceiling, else None (read everything). A 50,000-row customer list is
    then judged on 1,000 rows: its counts are lower bounds, the action is explain's."""
    view = row_prefix(mail)
    if view is None:
        return None
    found = run_content(detectors, view, ctx)
    if not stop.reached(found, view):
        return None
    log.info("inspection_stopped_in_rows", rows=PREFIX_ROWS, action=stop.action.label)
    return tuple(_lower_bound(finding, PREFIX_ROWS) for finding in found)


def _lower_bound(finding: Finding, rows: int) -> Finding:
    """A finding counted on a prefix says so: the reviewer and the notice must not read
    "999 phone numbers" as the size of a 50,000-row list (explain gives the exact count)."""
    return replace(
        finding,
        message=finding.message + " (at least: only the first {prefix_rows} rows of long tables"
        " were read)",
        params={**finding.params, "prefix_rows": rows},
    )


@dataclass(frozen=True, slots=True)
class DetectorSpec:
    """What a pool worker needs to build (once per policy version) the content detectors."""

    version: str
    settings: Mapping[str, BaseModel]
    enabled: frozenset[str]


# Per process: the content detectors of the latest policy version, kept across messages so
# their caches (the lookalike index: ~4.5 ms to build) survive. In a pool worker this is the
# only state; it is rebuilt from `DetectorSpec` when the version changes.
_WORKER_DETECTORS: dict[str, Detectors] = {}


def _worker_detectors(spec: DetectorSpec) -> Detectors:

    detectors = _WORKER_DETECTORS.get(spec.version)
    if detectors is None:
        _WORKER_DETECTORS.clear()
        built = build(spec.settings, enabled=spec.enabled)
        detectors = _WORKER_DETECTORS[spec.version] = Detectors(content=built.content, network=())
    return detectors


def parse_and_detect_in_worker(
    data: bytes,
    limits: ParseLimits,
    spec: DetectorSpec,
    ctx: DetectContext,
    stop: EarlyStop | None = None,
) -> tuple[Mail, tuple[Finding, ...]]:
    """`parse_and_detect` with the worker's own long-lived detectors (what the pool runs)."""
    return parse_and_detect(data, limits, _worker_detectors(spec), ctx, stop)


def parse_and_detect_file_in_worker(
    path: str,
    size: int,
    limits: ParseLimits,
    spec: DetectorSpec,
    ctx: DetectContext,
    stop: EarlyStop | None = None,
) -> tuple[Mail, tuple[Finding, ...]]:
    """`parse_and_detect_in_worker` of a spooled message, read here from its file.

    Only the path crosses the pipe: pickling 34 MB to the worker and unpickling it there
    cost the relay process ~55 ms and a full copy. The worker runs as the same user and the
    file stays until the verdict; a file that is gone or not `size` octets long (the relay
    read `size` for delivery) raises, and the message fails closed."""
    with open(path, "rb") as file:
        data = file.read(size + 1)
    if len(data) != size:
        raise InspectionError(f"spool file holds {len(data)} octets, not the {size} received")
    return parse_and_detect(data, limits, _worker_detectors(spec), ctx, stop)


Lookup = Callable[[Envelope, Mail], HistorySnapshot | None]
_Early = tuple[HistorySnapshot | None] | None
"""A snapshot already looked up (in a 1-tuple, as it may itself be None), or None."""


def _inline(
    data: bytes,
    limits: ParseLimits,
    detectors: Detectors,
    ctx: DetectContext,
    lookup: Lookup | None,
    stop: EarlyStop | None = None,
) -> tuple[Mail, tuple[Finding, ...], _Early]:
    mail, found = parse_and_detect(data, limits, detectors, ctx, stop)
    return mail, found, (lookup(ctx.envelope, mail),) if lookup is not None else None


class Inspector:
    """Inspects live mail against the policy the holder currently serves."""

    def __init__(
        self,
        *,
        policy: PolicyHolder,
        limits: ParseLimits,
        pool: ExtractionPool | None = None,
        network_timeout: float = 5.0,
        content_timeout: float = 30.0,
        inline_max_bytes: int = 64 * 1024,
        history: HistorySource | None = None,
    ) -> None:
        """``content_timeout`` bounds the worker round trip; the pipeline's budget bounds all.

        ``inline_max_bytes``: plain mail up to this size (no attachment, archive or forwarded
        message; see `is_plain`) is inspected in the relay process itself. Its cost is bounded
        by its size — text only shrinks when decoded — and the worker round trip would cost
        more than the inspection. Everything else goes to the pool, which can be abandoned.
        """
        self.policy = policy
        self.limits = limits
        self.pool = pool
        self.network_timeout = network_timeout
        self.content_timeout = content_timeout
        self.inline_max_bytes = inline_max_bytes
        self.history = history
        """The correspondent history; None: history detectors find nothing, no learned targets."""
        self._built: tuple[str, Detectors] | None = None

    def _detectors(self, loaded: LoadedPolicy) -> Detectors:
        """Detectors for this policy version, rebuilt only when the policy changed."""

        if self._built is None or self._built[0] != loaded.version:
            enabled = loaded.enabled_detectors()
            self._built = (loaded.version, build(loaded.detector_settings, enabled=enabled))
        return self._built[1]

    async def inspect(
        self, envelope: Envelope, data: bytes, *, spooled: Path | None = None
    ) -> Inspection:
        """Parse, detect and decide; raises InspectionError/InspectionTimeout on any failure.

        ``spooled``: the file that holds exactly `data` (a big message, `intake.spool`) and
        stays until this returns; the extraction process then reads that instead of `data`."""

        loaded = self.policy.current  # one policy for the whole message, even across a reload
        detectors = self._detectors(loaded)
        learned = self.history.learned if self.history is not None else None
        ctx = detect_context(envelope, loaded.organisation, learned)
        content_only = Detectors(content=detectors.content, network=())
        lookup = (
            self.history.snapshot_now if self.history is not None and detectors.history else None
        )
        try:
            mail, found, early = await self._content(
                data, loaded, content_only, ctx, lookup, spooled
            )
            network, snapshot = await asyncio.gather(
                run_network(detectors, mail, ctx, timeout=self.network_timeout),
                self._snapshot(detectors, envelope, mail, early),
            )
            learned_found = (
                run_history(detectors, mail, replace(ctx, history=snapshot))
                if snapshot is not None
                else ()
            )
        except InspectionError:
            raise
        except Exception as exc:
            raise InspectionError(f"{type(exc).__name__} during inspection") from exc
        findings = (*found, *network, *learned_found)
        # Lean: a pass or tag verdict's trace has no reasons (nothing keeps or shows them).
        verdict = evaluate(loaded, findings, envelope, mail, lean=True)
        _log_warned(verdict)
        return Inspection(mail, findings, verdict, organisation=loaded.organisation)

    async def _snapshot(
        self, detectors: Detectors, envelope: Envelope, mail: Mail, early: _Early
    ) -> HistorySnapshot | None:
        """Look the history up only when a history detector will read it (and the inline
        inspection has not already done so in its thread)."""
        if self.history is None or not detectors.history:
            return None
        if early is not None:
            return early[0]
        return await self.history.snapshot(envelope, mail)

    async def _content(
        self,
        data: bytes,
        loaded: LoadedPolicy,
        detectors: Detectors,
        ctx: DetectContext,
        lookup: Lookup | None = None,
        spooled: Path | None = None,
    ) -> tuple[Mail, tuple[Finding, ...], _Early]:
        """Parse and run the content detectors: inline when that is safe and cheaper, else pool.

        Inline, the history snapshot (`lookup`) is looked up in the same thread right after
        parsing: one thread hop instead of two for the commonest mail."""
        if self.pool is None:
            stop = early_stop(loaded, ctx.envelope)
            mail, found = await asyncio.to_thread(
                parse_and_detect, data, self.limits, detectors, ctx, stop
            )
            return mail, found, None
        if len(data) <= self.inline_max_bytes and is_plain(data):
            # A thread, not the loop itself: should a detector ever loop on some input, the
            # relay keeps serving and the scan budget still fails the message closed. Tight
            # limits keep the inline cost small; anything that hits one (a sniffed archive in
            # a text part, say) is inspected again in the pool with the real limits.
            mail, found, early = await asyncio.to_thread(
                _inline, data, inline_limits(self.limits), detectors, ctx, lookup
            )
            if not any(p.kind in ("limit", "timeout") for p in mail.problems):
                return mail, found, early
        spec = DetectorSpec(
            version=loaded.version,
            settings=loaded.detector_settings,
            enabled=frozenset(loaded.enabled_detectors()),
        )
        # Not for plain mail (above: one or two text leaves, nothing worth skipping); ~0.4 ms.
        stop = early_stop(loaded, ctx.envelope)
        if spooled is not None:
            mail, found = await self.pool.run(
                parse_and_detect_file_in_worker,
                str(spooled),
                len(data),
                self.limits,
                spec,
                ctx,
                stop,
                timeout=self.content_timeout,
            )
            return mail, found, None
        mail, found = await self.pool.run(
            parse_and_detect_in_worker,
            data,
            self.limits,
            spec,
            ctx,
            stop,
            timeout=self.content_timeout,
        )
        return mail, found, None

    async def warm_up(self) -> None:
        """Run one small message through every pool worker, so no client pays the first-use cost
        (imports, compiled patterns: about a second) of a fresh extraction process."""
        if self.pool is None:
            return
        loaded = self.policy.current
        spec = DetectorSpec(
            version=loaded.version,
            settings=loaded.detector_settings,
            enabled=frozenset(loaded.enabled_detectors()),
        )
        envelope = Envelope(mail_from="warm-up@sendguard.invalid", rcpt_tos=("a@b.invalid",))
        ctx = detect_context(envelope, loaded.organisation)
        sample = _WARM_UP_MESSAGE
        await asyncio.gather(
            *(
                self.pool.run(
                    parse_and_detect_in_worker, sample, self.limits, spec, ctx, timeout=60
                )
                for _ in range(self.pool.workers)
            ),
            return_exceptions=True,
        )


_NOT_PLAIN = re.compile(
    rb"^content-(?:type:\s*+(?!text/|multipart/(?:alternative|related|mixed))"
    rb"|disposition:\s*+attachment)"
    rb"|\bname\*?=",
    re.IGNORECASE | re.MULTILINE,
)
_WARM_UP_MESSAGE = (
    b"From: a@example.co.jp\r\nTo: b@example.com\r\nSubject: =?UTF-8?B?44OG44K544OI?=\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    + "個人番号 123456789018 電話 090-1234-5678 社外秘\r\n".encode()
)


_INLINE_EXPANSION = 4 * 1024 * 1024


def inline_limits(limits: ParseLimits) -> ParseLimits:
    """The limits for inline inspection: at most a few MB expanded and two seconds.

    A small text message never comes near them; a text part that hides an archive does,
    and is then inspected again in the pool with `limits`.
    """
    return limits.model_copy(
        update={
            "max_expanded_bytes": min(limits.max_expanded_bytes, _INLINE_EXPANSION),
            "max_member_bytes": min(limits.max_member_bytes, _INLINE_EXPANSION),
            "time_budget_seconds": min(limits.time_budget_seconds, 2.0),
        }
    )


def is_plain(data: bytes) -> bool:
    """Only text parts: no attachment, file name, document or forwarded message.

    A cheap byte scan that errs towards "not plain" (the pool then handles it): any
    Content-Type other than text/* or the usual multiparts, any attachment disposition and
    any file name sends the message to the pool. Encoded (base64, QP) text stays inline —
    that is how mail clients send Japanese — under `inline_limits`.
    """
    # Every match of `_NOT_PLAIN` starts at "content-" or "name" (any case): trying the
    # pattern only where one of those literals begins gives exactly `search`'s answer
    # (`^` and `\b` still see the byte before `pos`), without `re` trying all 20,000
    # positions of a plain message (no literal prefix under IGNORECASE): ~9 % of its CPU.
    lowered = data.lower()
    for literal in (b"content-", b"name"):
        pos = lowered.find(literal)
        while pos >= 0:
            if _NOT_PLAIN.match(data, pos) is not None:
                return False
            pos = lowered.find(literal, pos + 1)
    return True


def _log_warned(verdict: Verdict) -> None:
    """Warn-mode rules log what they would have done: the admin's rollout evidence."""
    for result in verdict.trace.rules:
        if result.rule_id in verdict.warned:
            log.warning(
                "policy_rule_warned",
                rule=result.rule_id,
                would_be=result.action.label,
                actual=verdict.action.label,
                findings=[f"{f.detector}/{f.code}" for f in result.findings],
            )


def inspect_sync(
    envelope: Envelope,
    data: bytes,
    policy: LoadedPolicy,
    limits: ParseLimits,
    *,
    offline: bool = False,
    network_timeout: float = 5.0,
    exhaustive: bool = False,
    history: HistorySnapshot | None = None,
    learned: Mapping[str, int] | None = None,
) -> Inspection:
    """The same inspection without a relay, for the CLI; ``offline`` skips network detectors.

    By default it runs exactly what the relay runs. ``exhaustive`` takes the detectors' slow
    reference paths instead (every number read one by one, tables as text): the same
    findings, which tests/unit/detect/test_fast_paths.py proves; for comparing, not needed
    for exact figures. ``history`` is the snapshot the history detectors read (from the store
    or a file) and ``learned`` the organisation's frequent domains; without a snapshot those
    detectors do not run.
    """

    detectors = build(policy.detector_settings, enabled=policy.enabled_detectors())
    ctx = detect_context(envelope, policy.organisation, learned, exhaustive=exhaustive)
    mail, found = parse_and_detect(data, limits, Detectors(detectors.content, ()), ctx)
    notes: tuple[str, ...] = ()
    if policy.disabled_detectors:
        notes += (f"disabled by the policy: {', '.join(sorted(policy.disabled_detectors))}",)
    network: tuple[Finding, ...] = ()
    if offline:
        if detectors.network:
            skipped = ", ".join(d.id for d in detectors.network)
            notes += (f"offline: network detectors not run ({skipped})",)
    else:
        network = asyncio.run(run_network(detectors, mail, ctx, timeout=network_timeout))
    learned_found: tuple[Finding, ...] = ()
    if history is not None:
        learned_found = run_history(detectors, mail, replace(ctx, history=history))
    findings = (*found, *network, *learned_found)
    verdict = evaluate(policy, findings, envelope, mail)
    return Inspection(mail, findings, verdict, notes, organisation=policy.organisation)
