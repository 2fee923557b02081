"""Top-level header block: split, unfold and decode it ourselves, then read the addresses.

First step of `sendguard.parse.parse_message`, before any stdlib parser sees the bytes:
the header size is checked here, and To/Cc/From are read by our own linear tokenizer
(`sendguard.parse.addresses`), so a 20,000-address To header or a 2,000-level MIME bomb
still yields the sender, recipients and subject.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sendguard.model import Address, HeaderField, Problem
from sendguard.parse.addresses import parse_address_header
from sendguard.parse.charsets import decode_rfc2047, normalise

_END = re.compile(rb"\r?\n\r?\n")
_LINE = re.compile(rb"\r?\n")
ADDRESS_FIELDS: tuple[tuple[str, HeaderField], ...] = (
    ("from", "from"),
    ("sender", "sender"),
    ("to", "to"),
    ("cc", "cc"),
    ("bcc", "bcc"),
    ("reply-to", "reply-to"),
    ("resent-to", "resent-to"),
    ("resent-cc", "resent-cc"),
)
VISIBLE_FIELDS: frozenset[str] = frozenset({"to", "cc", "resent-to", "resent-cc"})
"""Address fields every recipient reads; a malformed one is a `visible-recipients` finding."""


def is_visible_address_problem(problem: Problem) -> bool:
    """A To/Cc/Resent-To/Resent-Cc entry our strict parser could not read."""
    return problem.kind == "malformed" and problem.where in VISIBLE_FIELDS


@dataclass(frozen=True, slots=True)
class Headers:
    """Unfolded header fields (lower-case name, decoded raw value) of one header block."""

    fields: tuple[tuple[str, str], ...]
    size: int
    """Bytes of the header block including the blank line that ends it."""

    def get_all(self, name: str) -> list[str]:
        """Every value of the field *name* (lower case), in order."""
        return [value for key, value in self.fields if key == name]

    def first(self, name: str) -> str:
        """The first value of *name*, or ""."""
        values = self.get_all(name)
        return values[0] if values else ""


def decode_header_bytes(raw: bytes) -> str:
    """Header bytes → str: UTF-8 (RFC 6532), raw ISO-2022-JP or CP932 from old mailers."""
    if raw.isascii() and b"\x1b" not in raw:
        return raw.decode("ascii")
    for codec in ("utf-8", "iso2022_jp_ext", "cp932"):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def split_headers(data: bytes, max_bytes: int) -> tuple[Headers, bool]:
    """Read the header block at the start of *data*; True when it exceeded *max_bytes*."""
    match = _END.search(data, 0, max_bytes + 4)
    if data.startswith((b"\r\n", b"\n")):
        return Headers((), 2 if data.startswith(b"\r\n") else 1), False
    too_big = match is None and len(data) > max_bytes
    end = match.end() if match else min(len(data), max_bytes)
    block = data[:end]
    if too_big:
        block = block[: block.rfind(b"\n") + 1]  # keep whole lines only
    return Headers(tuple(_fields(_LINE.split(block))), end), too_big


def _fields(lines: Iterable[bytes]) -> Iterable[tuple[str, str]]:
    name: str | None = None
    value: list[bytes] = []
    for line in lines:
        if line[:1] in (b" ", b"\t") and name is not None:
            value.append(line)
            continue
        if name is not None:
            yield name, decode_header_bytes(b" ".join(value)).strip()
        head, colon, rest = line.partition(b":")
        valid = colon and head and not head.startswith(b"From ") and head.isascii()
        name = head.strip().decode("ascii").lower() if valid else None
        value = [rest]
    if name is not None:
        yield name, decode_header_bytes(b" ".join(value)).strip()


def header_text(value: str) -> str:
    """A free-text header (Subject) decoded from RFC 2047 and NFKC-normalised."""
    return normalise(decode_rfc2047(value)).replace("\r", "").replace("\n", "").strip()


@dataclass(frozen=True, slots=True)
class HeaderAddresses:
    """Addresses read from one header block, per field."""

    by_field: dict[HeaderField, tuple[Address, ...]]
    problems: tuple[Problem, ...]


def read_addresses(headers: Headers, max_addresses: int) -> HeaderAddresses:
    """All address fields of *headers*; *max_addresses* counts across fields together."""
    by_field: dict[HeaderField, tuple[Address, ...]] = {}
    problems: list[Problem] = []
    left = max_addresses
    for name, field in ADDRESS_FIELDS:
        values = headers.get_all(name)
        if not values:
            continue
        if left <= 0:
            detail = f"more than {max_addresses} addresses in the message"
            problems.append(Problem("limit", "address-count", field, detail))
            continue
        found, field_problems = parse_address_header(", ".join(values), field, max_addresses=left)
        by_field[field] = found
        problems.extend(
            Problem("limit", "address-count", field, f"more than {max_addresses} addresses")
            if p.code == "address-count"
            else p
            for p in field_problems
        )
        left -= len(found)
    return HeaderAddresses(by_field, tuple(problems))
