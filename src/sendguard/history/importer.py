"""Bootstrap the history from mail already sent: mbox, Maildir, CSV exports, Postfix logs.

Each reader yields `Delivery` records with the same idempotency keys live mail gets (the
Message-ID, sender and recipients), so an import run twice — or an import of mail the relay
has already recorded — counts every message once. Unreadable items are counted and skipped,
never fatal: a 10-year mbox always has a few.
"""

from __future__ import annotations

import csv
import datetime as dt
import email.utils
import hashlib
import mailbox
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sendguard.correspondence import Delivery
from sendguard.history.extract import _headers, delivery, header_section
from sendguard.model import Organisation
from sendguard.parse.addresses import parse_address_header


@dataclass
class Tally:
    """What an import read and what became of it."""

    read: int = 0
    recorded: int = 0
    repeated: int = 0
    internal_only: int = 0
    unreadable: int = 0


def _date(value: str) -> dt.datetime | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        parsed = None
    if parsed is None:
        try:
            parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _addresses(values: list[str], field: str) -> list[str]:
    out: list[str] = []
    for value in values:
        try:
            parsed, _ = parse_address_header(
                value, "to" if field == "to" else "cc", max_addresses=5000
            )
        except Exception:  # noqa: BLE001, S112 - an unreadable header gives no addresses
            continue
        out.extend(a.addr_spec for a in parsed)
    return out


def from_message(
    raw: bytes, organisation: Organisation, *, sender: str = "", secret: bytes = b""
) -> Delivery | str | None:
    """One sent message → a `Delivery`; None if no recipient is external; "unreadable"."""
    section = header_section(raw)
    fields = _headers(section)
    rcpts = [
        *_addresses(fields.get("to", []), "to"),
        *_addresses(fields.get("cc", []), "cc"),
        *_addresses(fields.get("bcc", []), "cc"),
    ]
    author = sender or next(iter(_addresses(fields.get("from", []), "cc")), "")
    at = _date(" ".join(fields.get("date", [])[:1]))
    if not author or not rcpts or at is None:
        return "unreadable"
    return delivery(
        sender=author,
        rcpts=rcpts,
        header_bytes=section,
        organisation=organisation,
        at=at,
        thread_secret=secret,
    )


def read_mailbox(path: Path) -> Iterator[bytes]:
    """The raw bytes of every message in an mbox file or a Maildir directory."""
    box: mailbox.Mailbox[mailbox.Message]
    box = mailbox.Maildir(path, create=False) if path.is_dir() else mailbox.mbox(path, create=False)
    try:
        for key in box.iterkeys():
            try:
                yield box.get_bytes(key)
            except (OSError, KeyError, ValueError):
                yield b""
    finally:
        box.close()


_CSV_COLUMNS = {
    "date": ("date", "date-time", "datetime", "timestamp", "time", "sent"),
    "sender": ("sender", "sender-address", "from", "mail-from"),
    "recipients": ("recipients", "recipient", "recipient-address", "to", "rcpt"),
    "message_id": ("message-id", "message_id", "internet-message-id", "messageid"),
    "event": ("event-id", "event", "eventid"),
}


def read_csv(
    path: Path, organisation: Organisation, secret: bytes = b""
) -> Iterator[Delivery | str | None]:
    """Rows of a CSV export: date, sender, recipients (``;``- or ``,``-separated), optionally
    message-id and event-id (Exchange message tracking: only ``SEND`` rows are deliveries)."""
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        reader = csv.DictReader(fh)
        names = {(n or "").strip().lower(): n for n in reader.fieldnames or []}
        column = {
            key: next((names[a] for a in aliases if a in names), None)
            for key, aliases in _CSV_COLUMNS.items()
        }
        missing = [k for k in ("date", "sender", "recipients") if column[k] is None]
        if missing:
            raise ValueError(
                f"{path}: CSV needs columns {', '.join(missing)} "
                f"(found: {', '.join(names) or 'none'})"
            )
        for row in reader:
            event = (row.get(column["event"] or "") or "").strip().upper()
            if column["event"] and event and event != "SEND":
                continue
            at = _date(row.get(column["date"] or "") or "")
            sender = (row.get(column["sender"] or "") or "").strip()
            rcpts = [
                r.strip()
                for r in re.split(r"[;,\s]+", row.get(column["recipients"] or "") or "")
                if "@" in r
            ]
            if at is None or not sender or not rcpts:
                yield "unreadable"
                continue
            msgid = (row.get(column["message_id"] or "") or "").strip()
            basis = msgid or f"{at.isoformat()}|{sender}|{','.join(sorted(rcpts))}"
            key = hashlib.blake2b(
                f"{sender.lower()}|{basis}|{','.join(sorted(r.lower() for r in rcpts))}".encode(
                    "utf-8", "surrogateescape"
                ),
                digest_size=16,
            ).hexdigest()
            header = f"Message-ID: {msgid}\r\n".encode() if msgid else b""
            yield delivery(
                sender=sender,
                rcpts=rcpts,
                header_bytes=header,
                organisation=organisation,
                at=at,
                key=key,
                thread_secret=secret,
            )


_POSTFIX = re.compile(
    r"^(?P<stamp>\w{3}\s+\d+\s+[\d:]+|\d{4}-\d\d-\d\dT[\d:.]+(?:[+-]\d\d:?\d\d|Z)?)\s+\S+\s+"
    r"postfix[^:]*:\s+(?P<qid>[0-9A-Za-z]+):\s+(?P<rest>.*)$"
)
_FIELD = re.compile(r"(\w+)=<?([^,>]*)>?")


def _syslog_time(stamp: str, year: int) -> dt.datetime | None:
    try:
        if "T" in stamp:
            parsed = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
        return dt.datetime.strptime(f"{year} {stamp}", "%Y %b %d %H:%M:%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def read_postfix_log(
    path: Path, organisation: Organisation, secret: bytes = b"", *, year: int | None = None
) -> Iterator[Delivery | str | None]:
    """Postfix maillog: ``from=`` (qmgr), ``message-id=`` (cleanup) and every ``to=…
    status=sent`` (smtp/lmtp) of one queue id make one delivery, emitted at ``removed``."""
    year = year or dt.datetime.now(dt.UTC).year
    pending: dict[str, dict[str, object]] = {}
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            m = _POSTFIX.match(line.rstrip("\n"))
            if m is None:
                continue
            qid, rest = m["qid"], m["rest"]
            item = pending.setdefault(qid, {"rcpts": []})
            if rest == "removed":
                done = pending.pop(qid)
                rcpts = done["rcpts"]
                if not isinstance(rcpts, list) or not rcpts or not done.get("from"):
                    continue
                msgid = str(done.get("message-id", ""))
                at = _syslog_time(m["stamp"], year)
                if at is None:
                    yield "unreadable"
                    continue
                yield delivery(
                    sender=str(done["from"]),
                    rcpts=[str(r) for r in rcpts],
                    header_bytes=f"Message-ID: {msgid}\r\n".encode() if msgid else b"",
                    organisation=organisation,
                    at=at,
                    key=hashlib.blake2b(
                        f"postfix|{qid}|{msgid}|{at:%Y%m%d}".encode(), digest_size=16
                    ).hexdigest(),
                    thread_secret=secret,
                )
                continue
            fields = dict(_FIELD.findall(rest))
            if rest.startswith("message-id="):
                item["message-id"] = "<" + rest.removeprefix("message-id=").strip("<> ") + ">"
            elif "from" in fields and "to" not in fields:
                item["from"] = fields["from"]
            elif "to" in fields and fields.get("status", "").startswith("sent"):
                rcpts = item["rcpts"]
                if isinstance(rcpts, list):
                    rcpts.append(fields["to"])
