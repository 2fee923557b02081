"""Policy replay: re-decide past traffic with a changed policy, from the audit log alone.

Every verdict the relay audits carries the facts a decision needs (`replay_facts`): the
sender identity, the login, the client, the recipient domains with counts and the findings
with count, severity, numeric parameters and where-kind — never message content. `replay`
rebuilds an envelope and the findings from them and runs the new policy's `evaluate` on
each; held and delayed mail (audited by the store as "queued") is rebuilt from its queue
entry while that still exists. Older records without the facts are replayed approximately
(every recipient taken as external, severities as recorded nowhere: ``medium``) and counted
as such, so the admin knows how far to trust the figures.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sendguard.model import Envelope, Finding, Mail, Severity
from sendguard.policy.evaluate import evaluate
from sendguard.policy.load import LoadedPolicy

_SEVERITIES: tuple[Severity, ...] = ("info", "low", "medium", "high", "critical")
_KEEP_WHERE = frozenset({"envelope", "subject", "body", "message", "to", "cc", "from"})


def _where_kind(where: str) -> str:
    """An attachment's label names its file: keep only what the policy's ``where`` needs."""
    if where.startswith("attachment"):
        return "attachment"
    return where if where in _KEEP_WHERE else "body"


def replay_facts(envelope: Envelope, findings: Iterable[Finding]) -> dict[str, object]:
    """The ``replay`` entry of an audited verdict (no content, addresses only of the sender)."""
    domains = Counter(r.rpartition("@")[2].lower() for r in envelope.rcpt_tos)
    return {
        "replay": {
            "sender": envelope.sender,
            "auth_user": envelope.auth_user,
            "client": envelope.client_address,
            "rcpt_domains": dict(sorted(domains.items())),
            "findings": [
                [
                    f.detector,
                    f.code,
                    f.count,
                    f.severity,
                    {k: v for k, v in f.params.items() if isinstance(v, int | float)},
                    sorted({_where_kind(w) for w in f.where}),
                ]
                for f in findings
            ],
        }
    }


@dataclass(frozen=True, slots=True)
class Past:
    """One past decision, rebuilt: what the new policy is asked to decide again."""

    reference: str
    """The transaction id (or queue id) the admin can look up in the audit log."""
    envelope: Envelope
    findings: tuple[Finding, ...]
    action: str
    rule: str | None
    approximate: bool = False


def _finding(detector: str, code: str, count: int, severity: str = "medium") -> Finding:
    level: Severity = next((s for s in _SEVERITIES if s == severity), "medium")
    return Finding(detector=detector, code=code, message="", count=count, severity=level)


def from_facts(reference: str, details: Mapping[str, object]) -> Past | None:
    """Rebuild a past decision from a "verdict"/"queued" audit record's details."""
    action = details.get("action")
    if not isinstance(action, str):
        return None
    rule = details.get("rule")
    facts = details.get("replay")
    if isinstance(facts, dict):
        rcpts: list[str] = []
        for domain, count in dict(facts.get("rcpt_domains") or {}).items():
            rcpts.extend(f"r{i}@{domain}" for i in range(int(count)))
        findings = tuple(
            Finding(
                detector=str(d),
                code=str(c),
                message="",
                count=int(n),
                severity=_finding("x", "x", 1, str(s)).severity,
                params={str(k): v for k, v in dict(p).items() if isinstance(v, int | float)},
                where=tuple(str(w) for w in where),
            )
            for d, c, n, s, p, where in facts.get("findings") or []
        )
        sender = str(facts.get("sender") or "")
        auth = facts.get("auth_user")
        envelope = Envelope(
            mail_from=str(details.get("mail_from") or sender),
            rcpt_tos=tuple(rcpts),
            client_address=str(facts.get("client") or ""),
            auth_user=str(auth) if isinstance(auth, str) else None,
            sender_identity=sender if isinstance(auth, str) else None,
        )
        return Past(reference, envelope, findings, action, str(rule) if rule else None)
    # Older records: "detector/code:count" and a recipient count only.
    findings_list: list[Finding] = []
    for item in details.get("findings") or []:  # type: ignore[attr-defined]
        name, _, count = str(item).rpartition(":")
        detector, _, code = name.partition("/")
        if detector and code and count.isdigit():
            findings_list.append(_finding(detector, code, int(count)))
    count = details.get("rcpt_count")
    rcpts_n = int(count) if isinstance(count, int) else 1
    envelope = Envelope(
        mail_from=str(details.get("mail_from") or ""),
        rcpt_tos=tuple(f"r{i}@unknown.invalid" for i in range(rcpts_n)),
    )
    return Past(
        reference, envelope, tuple(findings_list), action, str(rule) if rule else None, True
    )


@dataclass
class Report:
    """How many past messages the new policy decides differently, by rule, with examples."""

    considered: int = 0
    changed: int = 0
    approximate: int = 0
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_rule: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """The report as a person reads it."""
        out = [
            f"{self.considered} past messages re-decided; {self.changed} would change action"
            + (
                f" ({self.approximate} approximately: recorded before replay facts)"
                if self.approximate
                else ""
            )
        ]
        for (old, new), n in sorted(self.transitions.items(), key=lambda kv: -kv[1]):
            out.append(f"  {old} → {new}: {n}")
        for rule, n in self.by_rule.most_common():
            refs = ", ".join(self.examples.get(rule, []))
            out.append(f"  rule {rule}: {n} changed (e.g. {refs})")
        return out

    def as_json(self) -> dict[str, object]:
        """The report as a JSON document."""
        return {
            "considered": self.considered,
            "changed": self.changed,
            "approximate": self.approximate,
            "transitions": [
                {"from": old, "to": new, "count": n} for (old, new), n in self.transitions.items()
            ],
            "by_rule": dict(self.by_rule),
            "examples": self.examples,
        }


def replay(past: Sequence[Past], policy: LoadedPolicy, *, examples: int = 3) -> Report:
    """Decide every past message again with `policy`; count and sample the changes."""
    report = Report()
    empty = Mail()
    for item in past:
        report.considered += 1
        report.approximate += item.approximate
        envelope = policy.people.bind(item.envelope) if item.envelope.auth_user else item.envelope
        verdict = evaluate(policy, item.findings, envelope, empty)
        new = verdict.action.label
        if new == item.action:
            continue
        report.changed += 1
        report.transitions[(item.action, new)] += 1
        rule = verdict.rule_id or f"(none: was {item.rule or 'default'})"
        report.by_rule[rule] += 1
        refs = report.examples.setdefault(rule, [])
        if len(refs) < examples:
            refs.append(item.reference)
    return report


def details_of(text: str) -> dict[str, object]:
    """An audit record's details (canonical JSON text) as a dict ({} when unreadable)."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
