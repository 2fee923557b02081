"""Turn a queue entry into the text of a notice: template fields, masked findings, languages.

Templates are package data (``notify/templates/KIND.LANG.txt``): a ``Subject:`` line, a
blank line, then the body, with ``$name`` fields (`string.Template`). Only masked evidence
from findings and envelope facts go in; never message bodies or attachment text.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from importlib import resources
from string import Template
from typing import Protocol
from zoneinfo import ZoneInfo

from sendguard.entry import Entry, NoticeKind
from sendguard.model import Finding
from sendguard.notify.settings import Language, NotifySettings

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_MAX_RECIPIENTS = 20
_MAX_EVIDENCE = 5
_CANCEL_HINT: dict[Language, str] = {
    "ja": "送信を取り消すには、待機中に次のコマンドを実行してください:\n  {command}",
    "en": "To cancel it, run this before it is sent:\n  {command}",
}


@dataclass(frozen=True, slots=True)
class Rendered:
    """One notice's subject and body, all languages together."""

    subject: str
    body: str


def original_subject(data: bytes) -> str:
    """The decoded Subject of the stored message, on one line; "" when absent or unreadable."""
    if not data:
        return ""
    try:
        headers = BytesHeaderParser(policy=default_policy).parsebytes(data)
        subject = str(headers.get("subject", ""))
    except (ValueError, TypeError, IndexError):
        return ""
    return _one_line(subject)[:200]


def _one_line(text: str) -> str:
    """No CR, LF or other controls: the value goes into a header (injection)."""
    return _CONTROL.sub(" ", text).strip()


def deciding_findings(entry: Entry) -> tuple[Finding, ...]:
    """Findings of the rule that decided, or every finding if that rule is not in the trace."""
    verdict = entry.verdict
    for rule in verdict.trace.rules:
        if rule.rule_id == verdict.rule_id and rule.matched and rule.findings:
            return rule.findings
    return verdict.trace.findings


def format_finding(finding: Finding) -> str:
    """One entry per finding: rendered message and ids, then where, then masked evidence."""
    text = _one_line(finding.render())
    line = f"  - {text} ({finding.detector}/{finding.code}, x{finding.count})"
    if finding.where:
        line += "\n      @ " + _one_line(", ".join(finding.where[:3]))
    if finding.evidence:
        line += "\n      : " + _one_line(", ".join(finding.evidence[:_MAX_EVIDENCE]))
    return line


def shown_time(value: dt.datetime | None, zone: ZoneInfo, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A time as people read it, in the one display zone (``notify.timezone``): notices, the
    review console and the queue CLI all show times through here ("-" for none)."""
    return "-" if value is None else value.astimezone(zone).strftime(fmt)


def _when(value: dt.datetime | None, zone: ZoneInfo) -> str:
    return shown_time(value, zone, f"%Y-%m-%d %H:%M ({zone.key})")


def reviewers_of(entry: Entry, settings: NotifySettings) -> tuple[str, ...]:
    """The rule's reviewers, else the configured default reviewers."""
    return entry.verdict.hold.reviewers or settings.reviewers


def fields(entry: Entry, settings: NotifySettings) -> dict[str, str]:
    """Template fields for `entry`."""
    zone = ZoneInfo(settings.timezone)
    env, verdict = entry.envelope, entry.verdict
    rcpts = ", ".join(env.rcpt_tos[:_MAX_RECIPIENTS])
    if len(env.rcpt_tos) > _MAX_RECIPIENTS:
        rcpts += f" (+{len(env.rcpt_tos) - _MAX_RECIPIENTS})"
    description = next(
        (r.description for r in verdict.trace.rules if r.rule_id == verdict.rule_id), ""
    )
    findings = "\n".join(format_finding(f) for f in deciding_findings(entry)) or "  -"
    return {
        "queue_id": entry.id,
        "subject": original_subject(entry.data) or "(no subject)",
        "sender": _one_line(env.mail_from or env.auth_user or "-"),
        "recipients": _one_line(rcpts),
        "rule_id": verdict.rule_id or "-",
        "rule_description": _one_line(description) or "-",
        "reason": _one_line(verdict.reason) or "-",
        "findings": findings,
        "reviewers": ", ".join(reviewers_of(entry, settings)) or "-",
        "approvals_required": str(verdict.hold.approvals_required),
        "release_at": _when(entry.release_at, zone),
        "expires_at": _when(entry.expires_at, zone),
        "decided_by": _one_line(entry.decided_by or "-"),
        "reject_reason": _one_line(entry.reason) or "-",
        "last_error": _one_line(entry.last_error) or "-",
        "cancel_command": f"{settings.cancel_command} {entry.id}",
    }


class LinkBlock(Protocol):
    """Makes the signed links of one notice (`sendguard.web.links.LinkSigner.notice_links`)."""

    def __call__(self, kind: NoticeKind, entry: Entry, language: Language) -> str: ...


def _template(kind: NoticeKind, language: Language) -> tuple[str, str]:
    text = (
        resources.files("sendguard.notify")
        .joinpath("templates", f"{kind}.{language}.txt")
        .read_text(encoding="utf-8")
    )
    head, _, body = text.partition("\n\n")
    return head.removeprefix("Subject:").strip(), body


def render(
    kind: NoticeKind, entry: Entry, settings: NotifySettings, links: LinkBlock | None = None
) -> Rendered:
    """Subject and body of notice `kind` for `entry`, in the configured languages; `links`
    fills ``$links`` (signed links, when ``notify.base_url`` is set; else nothing)."""
    values = fields(entry, settings)
    subjects, bodies = [], []
    for language in settings.languages:
        subject, body = _template(kind, language)
        values["links"] = links(kind, entry, language) if links else ""
        # A delay notice offers the signed links when there are any; the command only
        # helps someone with a shell on the relay host.
        values["cancel_hint"] = values["links"] or _CANCEL_HINT[language].format(
            command=values["cancel_command"]
        )
        subjects.append(_one_line(Template(subject).safe_substitute(values)))
        bodies.append(Template(body).safe_substitute(values).rstrip() + "\n")
    rule = "\n" + "-" * 60 + "\n\n"
    return Rendered(subject=" / ".join(subjects), body=rule.join(bodies))
