"""Turn a delivered message (envelope + header bytes) into a `Delivery` the store records.

Used by the recorder (live and released mail) and the importers (old sent mail). Only the
header section is read — with our own strict address parser — and only external recipients
are kept: internal mail says nothing about misdelivery.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from typing import Literal

from sendguard.correspondence import Delivery, Recipient, message_ids, name_key, thread_key
from sendguard.detect.domains import is_internal
from sendguard.model import Address, Organisation
from sendguard.parse.addresses import envelope_address, parse_address_header
from sendguard.parse.headers import split_headers

_HEADER_CAP = 256 * 1024


def header_section(data: bytes) -> bytes:
    """The bytes before the first empty line (capped): all a history record needs."""
    end = data.find(b"\r\n\r\n", 0, _HEADER_CAP)
    if end < 0:
        end = data.find(b"\n\n", 0, _HEADER_CAP)
    return data[: end if end >= 0 else _HEADER_CAP]


def _headers(section: bytes) -> dict[str, list[str]]:
    """Unfolded header fields by lower-case name, read as the parser reads them
    (`sendguard.parse.headers.split_headers`: one header splitter for every reader)."""
    headers, _ = split_headers(section, len(section))
    fields: dict[str, list[str]] = {}
    for name, value in headers.fields:
        fields.setdefault(name, []).append(value)
    return fields


def header_names(fields: dict[str, list[str]]) -> dict[str, str]:
    """Address (lower case) → `name_key` of its display name in To/Cc."""
    names: dict[str, str] = {}
    field: Literal["to", "cc"]
    for field in ("to", "cc"):
        for value in fields.get(field, ()):
            try:
                parsed, _ = parse_address_header(value, field, max_addresses=1000)
            except Exception:  # noqa: BLE001, S112 - a header we cannot read gives no names
                continue
            for address in parsed:
                if address.display_name:
                    names.setdefault(address.addr_spec.lower(), name_key(address.display_name))
    return names


def external(rcpts: Iterable[str], organisation: Organisation) -> list[Address]:
    """The envelope recipients outside the organisation, parsed strictly."""
    out: list[Address] = []
    for rcpt in rcpts:
        try:
            address = envelope_address(rcpt)
        except ValueError:
            continue
        if not is_internal(address, organisation):
            out.append(address)
    return out


def delivery(
    *,
    sender: str,
    rcpts: Iterable[str],
    header_bytes: bytes,
    organisation: Organisation,
    at: dt.datetime,
    key: str = "",
    thread_secret: bytes = b"",
) -> Delivery | None:
    """The history record of one delivered message; None when no recipient is external."""
    addresses = external(rcpts, organisation)
    if not addresses:
        return None
    fields = _headers(header_section(header_bytes))
    names = header_names(fields)
    ids = [
        *message_ids(" ".join(fields.get("message-id", ()))),
        *message_ids(" ".join(fields.get("in-reply-to", ()))),
        *message_ids(" ".join(fields.get("references", ()))),
    ]
    recipients = tuple(
        Recipient(
            address=a.addr_spec.lower(),
            domain=a.registrable_domain,
            name=names.get(a.addr_spec.lower(), ""),
        )
        for a in addresses
    )
    own_id = message_ids(" ".join(fields.get("message-id", ())))
    if not key:
        basis = own_id[0] if own_id else header_bytes[:4096].hex()
        key = hashlib.blake2b(
            f"{sender.lower()}|{basis}|{','.join(sorted(r.address for r in recipients))}".encode(
                "utf-8", "surrogateescape"
            ),
            digest_size=16,
        ).hexdigest()
    return Delivery(
        key=key,
        sender=sender.lower(),
        at=at,
        recipients=recipients,
        threads=tuple(dict.fromkeys(thread_key(i, thread_secret) for i in ids)),
    )
