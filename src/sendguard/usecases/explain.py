"""Explain an inspection to people and machines: ``sendguard policy explain`` output.

Sits after `sendguard.inspect.inspect_sync`. `ExplainReport` is the stable, documented JSON
schema (``--json``; docs/policy.md); `render_text` is the human view: every detector's
findings (evidence is already masked by the detectors), every rule hit or miss with its
reasons, then the final action and the rule that decided it.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from sendguard.actions.headers import field_value, split_headers
from sendguard.actions.rewrite import apply_verdict
from sendguard.inspect import Inspection
from sendguard.model import Action, Envelope, Finding, Organisation, RuleResult
from sendguard.policy.people import People


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
    auth_user: str | None = None
    """The login given with ``--auth-user``; null without AUTH."""
    sender: str = ""
    """The sender that sender groups were matched for: the login's own address with
    ``--auth-user`` ("" when it has none), else the envelope sender."""
    sender_allowed: bool | None = None
    """With ``--auth-user``: may the login use this MAIL FROM? false = the relay refuses it
    at MAIL (``553 5.7.1``) before any rule runs. null without AUTH."""


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


def report(
    inspection: Inspection, envelope: Envelope | None = None, people: People | None = None
) -> ExplainReport:
    """The JSON-ready report of an inspection (with the sender binding when given)."""
    verdict = inspection.verdict
    login = envelope.auth_user if envelope else None
    allowed = (
        people.may_send_as(login, envelope.mail_from) if envelope and login and people else None
    )
    return ExplainReport(
        auth_user=login,
        sender=envelope.sender if envelope else "",
        sender_allowed=allowed,
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


def _client_lines(envelope: Envelope, people: People | None) -> list[str]:
    """Who the client is and whom sender groups were matched for."""
    where = envelope.client_address or "(not given: --client)"
    if envelope.auth_user is None:
        return [f"Client: {where} without AUTH; sender groups use the envelope sender"]
    login = envelope.auth_user
    lines = [
        f"Client: {where} with AUTH as {login}; sender groups and notices use its own"
        f" address <{envelope.sender}>" + ("" if envelope.sender else " (none in [people])")
    ]
    if people is not None and not people.may_send_as(login, envelope.mail_from):
        lines.append(
            f"Sender binding: {login} may not use MAIL FROM <{envelope.mail_from}>; the relay"
            " refuses it at MAIL (553 5.7.1) before any rule runs"
        )
    return lines


def render_text(
    inspection: Inspection,
    envelope: Envelope,
    detector_ids: Sequence[str],
    people: People | None = None,
) -> str:
    """The human explanation: client, findings per detector, rules hit/miss, the decision."""
    verdict = inspection.verdict
    out = [
        f"Envelope: from <{envelope.mail_from}> to {len(envelope.rcpt_tos)} recipient(s)",
        *_client_lines(envelope, people),
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
    verdict = inspection.verdict
    if verdict.action is Action.REJECT or (
        verdict.rewrite is None and verdict.action is not Action.REWRITE
    ):
        return []
    copies = apply_verdict(data, inspection.verdict, envelope, organisation)
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
