"""MIME structure: pre-check the bytes, parse with the stdlib, walk every leaf iteratively.

Second step of `sendguard.parse.parse_message`. The stdlib parser fails at ~2,000 nested
multiparts and `Message.walk()` at ~500, so `precheck` measures nesting and part count on
the raw bytes (one linear scan of boundary lines) before the parser runs, and `walk` uses
an explicit stack instead of `walk()`. Each leaf becomes a `Blob` handed to
`sendguard.parse.extract.extract`; forwarded messages recurse through `walk_message`.
"""

from __future__ import annotations

import binascii
import re
from email.feedparser import FeedParser
from email.message import Message
from email.policy import compat32

from sendguard import compat
from sendguard.model import Part, Problem
from sendguard.parse.charsets import decode_bytes, decode_rfc2047
from sendguard.parse.context import Blob, Context
from sendguard.parse.headers import decode_header_bytes, header_text
from sendguard.parse.limits import ParseLimits

_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))', re.I)
_DELIMITER = re.compile(rb"^--([^\r\n]{1,200}?)(--)?[ \t]*\r?$", re.M)
_RFC822 = re.compile(rb"^content-type:[ \t]*(?:\r?\n[ \t]+)?message/rfc822", re.I | re.M)
_BASE64_OK = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_BAD_QP = re.compile(rb"=(?![0-9A-Fa-f]{2}|\r?\n|$)")
_PREFILTER_MAX = 1 << 20
_WS_BYTES = b" \t\n\r\x0b\x0c"
"""What ``\\s`` matches in a bytes pattern."""
# The stdlib parser is known good well below this nesting; deeper input is refused unparsed.
PARSER_SAFE_DEPTH = 200


def precheck(data: bytes, limits: ParseLimits, *, start_depth: int = 0) -> Problem | None:
    """Nesting and part count measured on the raw bytes; a Problem when over the limits."""
    # The scans below are case-insensitive regexes over the whole message, which find no
    # literal prefix to jump to: plain mail (most mail) skips them on a cheap substring test.
    # (Only below a size: the lowered copy would cost a big message's size again.)
    lowered = data.lower() if len(data) <= _PREFILTER_MAX else None
    may_split = lowered is None or b"boundary" in lowered
    boundaries = {a or b for a, b in _BOUNDARY.findall(data)} if may_split else ()
    stack: list[bytes] = []
    deepest, parts = start_depth, 0
    for match in _DELIMITER.finditer(data) if boundaries else ():
        name = match.group(1)
        if name not in boundaries:
            continue
        if name in stack:
            del stack[stack.index(name) + 1 :]
            if match.group(2):
                stack.pop()
                continue
        elif match.group(2):
            continue
        else:
            stack.append(name)
        parts += 1
        deepest = max(deepest, start_depth + len(stack))
    if deepest > limits.max_mime_depth:
        return Problem(
            "limit", "mime-depth", "message", f"depth {deepest} > {limits.max_mime_depth}"
        )
    may_forward = lowered is None or b"message/rfc822" in lowered
    forwarded = len(_RFC822.findall(data)) if may_forward else 0
    if deepest + forwarded > PARSER_SAFE_DEPTH:
        return Problem("limit", "mime-depth", "message", f"nesting > {PARSER_SAFE_DEPTH}")
    if parts > limits.max_parts:
        return Problem("limit", "mime-parts", "message", f"parts {parts} > {limits.max_parts}")
    return None


def parse_bytes(data: bytes, chunk: int = 1 << 16) -> Message:
    """The stdlib parse (compat32: raw headers, no header objects); only after `precheck`.

    What `BytesParser.parsebytes` does, fed in pieces: it decodes the whole message to one
    str and reads it through a `StringIO`, whose buffer holds 4 bytes per character — a
    34 MB message peaked at 264 MB, against 93 MB here (ASCII with surrogateescape decodes
    byte by byte, so any cut is safe; the feed parser takes text cut anywhere)."""
    parser = FeedParser(policy=compat32)
    for start in range(0, len(data), chunk):
        parser.feed(data[start : start + chunk].decode("ascii", "surrogateescape"))
    return parser.close()


def _raw(value: str) -> bytes:
    return value.encode("ascii", "surrogateescape")


def payload_bytes(part: Message, where: str) -> tuple[bytes, Problem | None]:
    """Decode the transfer encoding ourselves, so broken base64/QP is reported, not hidden."""
    raw = compat.raw_payload(part)  # not `get_payload()`: it re-decodes 8-bit bodies (lossy)
    cte = str(part.get("content-transfer-encoding", "")).strip().lower()
    if cte == "base64":
        cleaned = raw.translate(None, _WS_BYTES)  # C-level delete, no regex
        problem = None
        if not _BASE64_OK.fullmatch(cleaned) or len(cleaned.rstrip(b"=")) % 4 == 1:
            problem = Problem("malformed", "bad-base64", where, "invalid base64 body")
            cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", cleaned)
            cleaned = cleaned[: len(cleaned) - len(cleaned) % 4]
        try:
            return binascii.a2b_base64(cleaned + b"=" * (-len(cleaned) % 4)), problem
        except binascii.Error:
            return b"", Problem("malformed", "bad-base64", where, "undecodable base64 body")
    if cte == "quoted-printable":
        problem = None
        if _BAD_QP.search(raw):
            problem = Problem("malformed", "bad-quoted-printable", where, "invalid = escape")
        return binascii.a2b_qp(raw), problem
    return raw, None


def part_filename(part: Message) -> str:
    """Filename from Content-Disposition or Content-Type name: RFC 2231 and RFC 2047."""
    for param, header in (("filename", "content-disposition"), ("name", "content-type")):
        try:
            value = part.get_param(param, header=header)
        except (ValueError, IndexError, TypeError):
            continue
        if isinstance(value, tuple):
            charset, _lang, text = value
            raw = bytes(str(text), "raw-unicode-escape")
            value = decode_bytes(raw, str(charset or "utf-8"))
        if value:
            name = decode_rfc2047(str(value)).strip().strip('"')
            return name.replace("\\", "/").rsplit("/", 1)[-1] or name
    return ""


def _is_body(part: Message, ctype: str, filename: str) -> bool:
    disposition = str(part.get("content-disposition", "")).split(";")[0].strip().lower()
    return ctype in ("text/plain", "text/html") and not filename and disposition != "attachment"


_SUMMARY_FIELDS = ("from", "to", "cc", "date", "subject")


def summary(msg: Message) -> str:
    """The forwarded message's own headers as text, so its addresses can be inspected too."""
    lines = []
    for name, value in msg.items():
        if name.lower() in _SUMMARY_FIELDS:
            lines.append(f"{name}: {header_text(decode_header_bytes(_raw(str(value))))}")
    return "\n".join(lines)


def forwarded(msg: Message, blob: Blob, ctx: Context) -> None:
    """A message/rfc822 part: one Part for the message itself, then its own parts."""
    ctx.parts.append(
        Part(
            path=blob.path,
            declared_type=blob.declared_type,
            sniffed_type="message/rfc822",
            filename=blob.filename,
            size=len(blob.data),
            text=summary(msg),
            is_attachment=blob.is_attachment,
        )
    )
    walk_message(msg, (*blob.path, "forwarded message"), ctx, blob.mime_depth + 1)


def walk_message(msg: Message, path: tuple[str, ...], ctx: Context, depth: int) -> None:
    """Extract every leaf of *msg* in order, numbering bodies and attachments per message."""
    # Imported here: extract dispatches message/rfc822 blobs back into this module.
    from sendguard.parse.extract import extract

    stack: list[tuple[Message, int]] = [(msg, depth)]
    counts = {"body": 0, "attachment": 0}
    while stack:
        part, level = stack.pop()
        ctx.check_time()
        label = " › ".join(path) or "message"
        if level > ctx.limits.max_mime_depth:
            detail = f"depth {level} > {ctx.limits.max_mime_depth}"
            ctx.add("limit", "mime-depth", label, detail)
            continue
        ctype = part.get_content_type()
        payload = part.get_payload()
        if ctype != "message/rfc822" and isinstance(payload, list):
            stack.extend((c, level + 1) for c in reversed(payload) if isinstance(c, Message))
            continue
        filename = part_filename(part)
        kind = "body" if _is_body(part, ctype, filename) else "attachment"
        counts[kind] += 1
        name = kind if kind == "body" and counts[kind] == 1 else f"{kind} {counts[kind]}"
        leaf = Blob(b"", (*path, name), ctype, filename, kind == "attachment", 0, level)
        if ctype == "message/rfc822" and isinstance(payload, list) and payload:
            assert isinstance(payload[0], Message)  # compat32 parses message/rfc822 eagerly
            forwarded(payload[0], leaf, ctx)
            if stack and not path:
                ctx.maybe_stop()
            continue
        data, problem = payload_bytes(part, leaf.label)
        if problem is not None:
            ctx.problems.append(problem)
        charset = str(part.get_content_charset("") or "") if ctype.startswith("text/") else ""
        extract(Blob(data, leaf.path, ctype, filename, leaf.is_attachment, 0, level, charset), ctx)
        if stack and not path:
            ctx.maybe_stop()  # more leaves of the message to read: may the relay skip them?
