"""What a reviewer sees of one queued message (``sendguard queue show``, later the web page).

Headers and the list of attachments are read from a copy of the stored bytes; bodies and
attachment contents are never shown, only the findings' masked evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy

from sendguard.entry import Entry
from sendguard.model import Finding, RuleResult

SHOWN_HEADERS = ("From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID")


@dataclass(frozen=True, slots=True)
class Attachment:
    """One attached file as declared in the message."""

    filename: str
    content_type: str
    size: int
    """Decoded size in bytes."""


@dataclass(frozen=True, slots=True)
class EntryDetails:
    """The entry with the parts of the message a reviewer may see."""

    entry: Entry
    headers: tuple[tuple[str, str], ...]
    attachments: tuple[Attachment, ...]
    findings: tuple[Finding, ...]
    rules: tuple[RuleResult, ...]
    """Rules that matched (a reviewer sees every reason, not only the deciding one)."""


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def _attachments(msg: EmailMessage) -> tuple[Attachment, ...]:
    found = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        filename = part.get_filename()
        if not filename and part.get_content_disposition() != "attachment":
            continue
        payload = part.get_payload(decode=True)
        size = len(payload) if isinstance(payload, bytes) else 0
        found.append(Attachment(_one_line(filename or "(no name)"), part.get_content_type(), size))
    return tuple(found)


def describe(entry: Entry) -> EntryDetails:
    """Headers, attachments and trace of `entry` (read with its bytes)."""
    msg = message_from_bytes(entry.data, _class=EmailMessage, policy=default_policy)
    headers = []
    for name in SHOWN_HEADERS:
        for value in msg.get_all(name, []):
            headers.append((name, _one_line(value)))
    trace = entry.verdict.trace
    return EntryDetails(
        entry=entry,
        headers=tuple(headers),
        attachments=_attachments(msg),
        findings=trace.findings,
        rules=tuple(r for r in trace.rules if r.matched),
    )
