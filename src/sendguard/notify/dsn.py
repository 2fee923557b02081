"""Delivery status notifications (RFC 3464 ``multipart/report``) for released mail that failed.

The worker asks for a bounce when the upstream refused a released message permanently or
retries ran out; `Notifier.bounce` sends what `build_dsn` makes from the null sender.
The original headers are returned (``text/rfc822-headers``), never the body.
"""

from __future__ import annotations

import re
import uuid
from email.header import Header
from email.utils import format_datetime, formataddr, make_msgid

from sendguard.entry import Entry
from sendguard.parse.headers import split_headers

_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


def status_of(last_error: str, *, gave_up: bool) -> str:
    """The RFC 3463 status for the report: from the upstream's reply, or 4.4.7 on give-up."""
    match = _ENHANCED.search(last_error)
    if gave_up:
        return "4.4.7"
    if match and match.group(1) == "5":
        return match.group(0)
    return "5.0.0"


def _headers_of(data: bytes) -> bytes:
    """The header section of the stored message (up to the first empty line, where the
    parser's `split_headers` ends it), with CRLF line endings."""
    headers, _ = split_headers(data, len(data))
    head = data[: headers.size].replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return head[:-2] if head.endswith(b"\r\n\r\n") else head


def _encoded(text: str) -> str:
    """A header value, RFC 2047-encoded when it is not ASCII."""
    try:
        text.encode("ascii")
    except UnicodeEncodeError:
        return Header(text, "utf-8").encode()
    return text


def build_dsn(
    entry: Entry,
    *,
    hostname: str,
    from_name: str,
    subject: str,
    human: str,
    gave_up: bool,
) -> bytes:
    """The complete bounce message for `entry`, CRLF line ends, ready to send from ``<>``."""
    boundary = f"=_sendguard_{uuid.uuid4().hex}"
    status = status_of(entry.last_error, gave_up=gave_up)
    diagnostic = re.sub(r"[\r\n]+", " ", entry.last_error or "delivery time expired")
    arrival = entry.envelope.received_at or entry.created_at
    per_recipient = "".join(
        f"\r\nFinal-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {diagnostic}\r\n"
        for rcpt in entry.envelope.rcpt_tos
        if rcpt not in entry.delivered_to
    )
    head = (
        f"From: {formataddr((from_name, f'MAILER-DAEMON@{hostname}'))}\r\n"
        f"To: <{entry.envelope.mail_from}>\r\n"
        f"Subject: {_encoded(subject)}\r\n"
        f"Date: {format_datetime(entry.updated_at)}\r\n"
        f"Message-ID: {make_msgid(domain=hostname)}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "X-Sendguard-Notification: yes\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
    )
    human_part = human.replace("\r\n", "\n").replace("\n", "\r\n")
    parts = (
        f"\r\n--{boundary}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        f"{human_part}\r\n"
        f"--{boundary}\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; {hostname}\r\n"
        f"X-Sendguard-Queue-ID: {entry.id}\r\n"
        f"Arrival-Date: {format_datetime(arrival)}\r\n"
        f"{per_recipient}"
        f"--{boundary}\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
    )
    tail = f"\r\n--{boundary}--\r\n"
    return (head + parts).encode("utf-8") + _headers_of(entry.data) + tail.encode("ascii")
