"""Explain an inspection to people and machines: ``sendguard policy explain`` output.

Sits after `sendguard.inspect.inspect_sync`. `ExplainReport` is the stable, documented JSON
schema (``--json``; docs/policy.md); `render_text` is the human view: every detector's
findings (evidence is already masked by the detectors), every rule hit or miss with its
reasons, then the final action and the rule that decided it.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from sendguard.inspect import Inspection
from sendguard.model import Action, Envelope, Finding, Organisation, RuleResult


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FindingReport(_Out):
    """One finding as ``explain --json`` prints it."""

    detector: str
    """Detector id, e.g. ``personal-data``."""
    code: str
    """Finding code, e.g. ``customer-list``."""
    count: int
    """How many (records, addresses, occurrences)."""
    severity: str
    """info, low, medium, high or critical."""
    message: str
    """English explanation with its parameters filled in."""
    evidence: list[str]
    """Masked samples (never raw personal data)."""
    where: list[str]
    """Where it was seen: part labels, ``subject``, ``to``, ``envelope``…"""


class RuleReport(_Out):
    """One rule's outcome."""

    id: str
    matched: bool
    action: str
    """What the rule does when it matches (kebab-case action name)."""
    mode: str
    """``enforce`` or ``warn``."""
    reasons: list[str]
    """Why it hit or missed, one sentence per condition checked."""


class ExplainReport(_Out):
    """The ``explain --json`` document (schema version 1; keys are never renamed or removed)."""

    action: str
    """Final action: pass, tag, rewrite-bcc, delay, hold or reject."""
    rule: str | None
    """The deciding rule id; null for the default pass."""
    reason: str
    """Short ASCII reason."""
    findings: list[FindingReport]
    rules: list[RuleReport]
    warned: list[str]
    """Warn-mode rules that would have acted."""
    policy_version: str
    """sha256 of the policy files."""


def finding_report(finding: Finding) -> FindingReport:
    """A finding as reported (message rendered from its parameters)."""
    return FindingReport(
        detector=finding.detector,
        code=finding.code,
        count=finding.count,
        severity=finding.severity,
        message=finding.render(),
        evidence=list(finding.evidence),
        where=list(finding.where),
    )


def report(inspection: Inspection) -> ExplainReport:
    """The JSON-ready report of an inspection."""
    verdict = inspection.verdict
    return ExplainReport(
        action=verdict.action.label,
        rule=verdict.rule_id,
        reason=verdict.reason,
        findings=[finding_report(f) for f in inspection.findings],
        rules=[
            RuleReport(
                id=r.rule_id,
                matched=r.matched,
                action=r.action.label,
                mode=r.mode,
                reasons=list(r.reasons),
            )
            for r in verdict.trace.rules
        ],
        warned=list(verdict.warned),
        policy_version=verdict.trace.policy_version,
    )


def _finding_lines(finding: Finding) -> list[str]:
    lines = [
        f"    {finding.code}  count={finding.count}  severity={finding.severity}",
        f"      {finding.render()}",
    ]
    if finding.where:
        lines.append(f"      where: {', '.join(finding.where)}")
    if finding.evidence:
        lines.append(f"      evidence: {', '.join(finding.evidence)}")
    return lines


def _rule_lines(result: RuleResult) -> list[str]:
    mark = "HIT " if result.matched else "miss"
    mode = "  (warn mode: would act, does not)" if result.mode == "warn" else ""
    lines = [f"  {mark}  {result.rule_id}  -> {result.action.label}{mode}"]
    lines += [f"        - {reason}" for reason in result.reasons or ("matches every message",)]
    return lines


def render_text(inspection: Inspection, envelope: Envelope, detector_ids: Sequence[str]) -> str:
    """The human explanation: findings per detector, rules hit/miss, the decision."""
    verdict = inspection.verdict
    out = [
        f"Envelope: from <{envelope.mail_from}> to {len(envelope.rcpt_tos)} recipient(s)",
        f"Policy version: {verdict.trace.policy_version[:16]}",
        *(f"Note: {note}" for note in inspection.notes),
        "",
        "Findings:",
    ]
    for detector in detector_ids:
        mine = [f for f in inspection.findings if f.detector == detector]
        out.append(f"  {detector}: {'none' if not mine else f'{len(mine)} finding(s)'}")
        for finding in mine:
            out += _finding_lines(finding)
    out += ["", "Rules:"]
    for result in verdict.trace.rules:
        out += _rule_lines(result)
    if not verdict.trace.rules:
        out.append("  (no rules)")
    out.append("")
    if verdict.warned:
        out.append(f"Warn-mode rules that would have acted: {', '.join(verdict.warned)}")
    decided = f" by rule {verdict.rule_id}" if verdict.rule_id else " (no rule matched)"
    extra = []
    if verdict.rewrite:
        extra.append(f"rewrite={verdict.rewrite}")
    if verdict.delay_minutes:
        extra.append(f"delay={verdict.delay_minutes:g} min")
    if verdict.hold.reviewers and verdict.action.label == "hold":
        extra.append(f"reviewers={', '.join(verdict.hold.reviewers)}")
    suffix = f"  [{'; '.join(extra)}]" if extra else ""
    out.append(f"Result: {verdict.action.label.upper()}{decided}: {verdict.reason}{suffix}")
    return "\n".join(out)


def rewrite_preview(
    data: bytes, inspection: Inspection, envelope: Envelope, organisation: Organisation
) -> list[str]:
    """What the recipients would see in To/Cc after the verdict's rewrite (empty if none)."""
    from sendguard.actions.headers import field_value, split_headers
    from sendguard.actions.rewrite import apply_verdict

    verdict = inspection.verdict
    if verdict.action is Action.REJECT or (
        verdict.rewrite is None and verdict.action is not Action.REWRITE
    ):
        return []
    copies = apply_verdict(data, inspection, envelope, organisation)
    mode = verdict.rewrite or "undisclosed"
    lines = [f"Rewrite preview ({mode}): {len(copies)} cop{'y' if len(copies) == 1 else 'ies'}"]
    for copy in copies[:_PREVIEW_COPIES]:
        block = split_headers(copy.data)
        shown = [
            f"{f.name}: {_short(field_value(copy.data, f))}"
            for f in block.fields
            if f.name.lower() in ("to", "cc")
        ]
        lines.append(f"  to {len(copy.rcpt_tos)} recipient(s): {' | '.join(shown) or 'no To/Cc'}")
    if len(copies) > _PREVIEW_COPIES:
        lines.append(f"  … and {len(copies) - _PREVIEW_COPIES} more")
    return lines


_PREVIEW_COPIES = 3


def _short(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
