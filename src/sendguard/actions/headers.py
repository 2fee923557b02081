"""Byte-exact header surgery for the actions: find fields, build safe new ones.

Used by `sendguard.actions.rewrite`. The original bytes are never re-serialised: the header
block is split into fields by byte offsets, and only the fields being changed are replaced,
so everything else (other headers, the body, DKIM-relevant bytes) stays identical. Values we
generate are single-line ASCII (RFC 2047 for non-ASCII names) with no CR or LF from any
input, so a crafted display name cannot inject a header (CVE-2024-6923 class).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

_ATOM_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?: [A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
_FOLD_AT = 78


@dataclass(frozen=True, slots=True)
class RawField:
    """One header field: its name and its byte span, continuation lines included."""

    name: str
    """Field name as written (compare with ``lower()``)."""
    start: int
    end: int
    """Offset just after the field's last line ending."""


@dataclass(frozen=True, slots=True)
class HeaderBlock:
    """The fields of a message and where the header block ends."""

    fields: tuple[RawField, ...]
    end: int
    """Offset of the blank line that separates header and body (or len(data))."""
    eol: bytes
    """The message's line ending, ``\\r\\n`` or ``\\n``; new fields use the same."""


def split_headers(data: bytes) -> HeaderBlock:
    """Find every header field by byte offsets; linear, never decodes the body."""
    first_nl = data.find(b"\n")
    eol = b"\r\n" if first_nl > 0 and data[first_nl - 1 : first_nl] == b"\r" else b"\n"
    fields: list[RawField] = []
    pos = 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        line_end = len(data) if nl < 0 else nl + 1
        line = data[pos:line_end]
        if line in (b"\r\n", b"\n"):
            return HeaderBlock(tuple(fields), pos, eol)
        # A line without a colon is a defect; count it with the field above, so an address
        # hidden in such a line leaves together with its To/Cc field (hiding is the safe side).
        if fields and (line[:1] in (b" ", b"\t") or b":" not in line):
            last = fields[-1]
            fields[-1] = RawField(last.name, last.start, line_end)
        else:
            name = line.split(b":", 1)[0] if b":" in line else b""
            fields.append(RawField(name.decode("ascii", "replace").strip(), pos, line_end))
        pos = line_end
    return HeaderBlock(tuple(fields), len(data), eol)


def field_value(data: bytes, field: RawField) -> str:
    """The unfolded value of a field (raw UTF-8 tolerated; invalid bytes replaced)."""
    raw = data[field.start : field.end].split(b":", 1)[-1]
    text = raw.decode("utf-8", "replace")
    return re.sub(r"\r?\n(?=[ \t])", "", text).strip()


def clean(text: str) -> str:
    """Remove every line break and control character from a value we are about to emit."""
    return _CONTROLS.sub(" ", text).strip()


def encode_phrase(name: str) -> str:
    """A display name as an atom phrase, a quoted string or RFC 2047 encoded words."""
    name = re.sub(r" +", " ", clean(name))
    if not name:
        return ""
    if name.isascii():
        if _ATOM_PHRASE.fullmatch(name):
            return name
        return '"' + re.sub(r'(["\\])', r"\\\1", name) + '"'
    words: list[str] = []
    chunk = ""
    for char in name:
        # 45 bytes of UTF-8 → 60 base64 characters → a 72-character encoded word (≤ 75).
        if len((chunk + char).encode("utf-8")) > 45:
            words.append(chunk)
            chunk = ""
        chunk += char
    words.append(chunk)
    return " ".join(
        "=?UTF-8?B?" + base64.b64encode(w.encode("utf-8")).decode("ascii") + "?=" for w in words
    )


def format_mailbox(display_name: str, addr_spec: str) -> str:
    """``"Name" <local@domain>`` (or the bare address when there is no name)."""
    addr = clean(addr_spec).replace(" ", "").strip("<>")
    phrase = encode_phrase(display_name)
    return f"{phrase} <{addr}>" if phrase else addr


def render_field(name: str, items: list[str], eol: bytes) -> bytes:
    """``Name: a, b, c`` folded before an item when a line would pass 78 characters."""
    tokens = [clean(item) + ("," if i < len(items) - 1 else "") for i, item in enumerate(items)]
    lines: list[str] = []
    current = f"{name}:"
    for token in tokens:
        if len(current) + 1 + len(token) > _FOLD_AT and current != f"{name}:":
            lines.append(current)
            current = " " + token
        else:
            current += " " + token
    lines.append(current)
    return eol.join(line.encode("utf-8") for line in lines) + eol


def render_simple(name: str, value: str, eol: bytes) -> bytes:
    """One generated field with a cleaned single-line value."""
    return f"{name}: {clean(value)}".encode() + eol
