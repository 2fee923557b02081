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
from collections.abc import Iterable, Iterator
from email.feedparser import FeedParser
from email.message import Message
from email.policy import compat32

import pybase64
import structlog

from sendguard import compat
from sendguard.model import Part, Problem
from sendguard.parse.charsets import decode_bytes, decode_rfc2047
from sendguard.parse.context import Blob, Context
from sendguard.parse.headers import decode_header_bytes, header_text
from sendguard.parse.limits import ParseLimits
from sendguard.parse.skeleton import collapse, restore

_log = structlog.get_logger(__name__)

_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))', re.I)
_DELIMITER = re.compile(rb"^--([^\r\n]{1,200}?)(--)?[ \t]*\r?$", re.M)
_RFC822 = re.compile(rb"^content-type:[ \t]*(?:\r?\n[ \t]+)?message/rfc822", re.I | re.M)
_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_CI_CHUNK = 1 << 20
_BAD_QP = re.compile(rb"=(?![0-9A-Fa-f]{2}|\r?\n|$)")
_WS_BYTES = b" \t\n\r\x0b\x0c"
"""What ``\\s`` matches in a bytes pattern."""
# The stdlib parser is known good well below this nesting; deeper input is refused unparsed.
PARSER_SAFE_DEPTH = 200


def _ci_starts(data: bytes, *needles: bytes) -> list[list[int]]:
    """For each needle (lower case), the offsets where it occurs in `data` in any ASCII case.

    What a case-insensitive regex search does, but ``re`` finds no literal prefix to jump to
    under IGNORECASE and tries every offset (~4 ns a byte: 55 ms on a 1.7 MB message): here
    the data is lowered a chunk at a time (bounded memory, once for all needles) and
    searched with `bytes.find`.
    """
    step, overlap = _CI_CHUNK, max(map(len, needles)) - 1
    found: list[list[int]] = [[] for _ in needles]
    for base in range(0, len(data), step):
        chunk = data[base : base + step + overlap].lower()
        for needle, offsets in zip(needles, found, strict=True):
            at = chunk.find(needle)
            while 0 <= at < step:
                offsets.append(base + at)
                at = chunk.find(needle, at + 1)
    return found


def _line_starts(data: bytes, offsets: list[int]) -> list[int]:
    """The offsets that begin a line (``^`` under MULTILINE: the start, or after a LF)."""
    return [at for at in offsets if at == 0 or data[at - 1] == 0x0A]


def _matches(
    pattern: re.Pattern[bytes], data: bytes, starts: Iterable[int]
) -> Iterator[re.Match[bytes]]:
    """`pattern.finditer(data)` for a pattern that can only match at one of `starts`."""
    end = 0
    for start in starts:
        if start >= end and (match := pattern.match(data, start)) is not None:
            end = match.end() if match.end() > start else start + 1
            yield match


def _delimiter_starts(data: bytes) -> Iterator[int]:
    """Offsets of the lines that begin with ``--`` (a multiline ``^--``, by `bytes.find`)."""
    if data.startswith(b"--"):
        yield 0
    at = data.find(b"\n--")
    while at >= 0:
        yield at + 1
        at = data.find(b"\n--", at + 1)


def precheck(data: bytes, limits: ParseLimits, *, start_depth: int = 0) -> Problem | None:
    """Nesting and part count measured on the raw bytes; a Problem when over the limits."""
    # The scans are regexes over the whole message tried only where their literal start is
    # (`_ci_starts`, `_delimiter_starts`): the same matches as `finditer`, property-tested.
    named, heads = _ci_starts(data, b"boundary", b"content-type:")
    found = _matches(_BOUNDARY, data, named)
    boundaries = {m.group(1) or m.group(2) for m in found}
    stack: list[bytes] = []
    deepest, parts = start_depth, 0
    delimiters = _matches(_DELIMITER, data, _delimiter_starts(data)) if boundaries else ()
    for match in delimiters:
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
    forwarded = sum(1 for _ in _matches(_RFC822, data, _line_starts(data, heads)))
    if deepest + forwarded > PARSER_SAFE_DEPTH:
        return Problem("limit", "mime-depth", "message", f"nesting > {PARSER_SAFE_DEPTH}")
    if parts > limits.max_parts:
        return Problem("limit", "mime-parts", "message", f"parts {parts} > {limits.max_parts}")
    return None


def parse_bytes(data: bytes, chunk: int = 1 << 16) -> Message:
    """The stdlib parse (compat32: raw headers, no header objects); only after `precheck`.

    Long base64 bodies are not fed line by line: the parser reads the message's skeleton
    and the bodies are put back after (`sendguard.parse.skeleton`: 1.7 MB attachment
    ~55 -> ~3 ms); when that cannot be done exactly, the message itself is parsed."""
    skeleton = collapse(data)
    if skeleton is not None:
        message = _feed(skeleton.text, chunk)
        if restore(message, skeleton, data):
            return message
        _log.warning("skeleton_refused", runs=len(skeleton.runs))
    return _feed(data, chunk)


def _feed(data: bytes, chunk: int) -> Message:
    """What `BytesParser.parsebytes` does, fed in pieces: it decodes the whole message to one
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
        if not _is_base64(cleaned) or len(cleaned.rstrip(b"=")) % 4 == 1:
            problem = Problem("malformed", "bad-base64", where, "invalid base64 body")
            cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", cleaned)
            cleaned = cleaned[: len(cleaned) - len(cleaned) % 4]
        padded = cleaned + b"=" * (-len(cleaned) % 4)
        try:
            # pybase64 refuses what is not canonical (e.g. excess padding) where binascii
            # tolerates it: binascii then decides, as before (property-tested equal).
            return pybase64.b64decode(padded, validate=True), problem
        except binascii.Error:
            pass
        try:
            return binascii.a2b_base64(padded), problem
        except binascii.Error:
            return b"", Problem("malformed", "bad-base64", where, "undecodable base64 body")
    if cte == "quoted-printable":
        problem = None
        if _BAD_QP.search(raw):
            problem = Problem("malformed", "bad-quoted-printable", where, "invalid = escape")
        return binascii.a2b_qp(raw), problem
    return raw, None


def _is_base64(cleaned: bytes) -> bool:
    """``[A-Za-z0-9+/]*={0,2}`` in full, by two C-level passes instead of a regex (10 ms on a
    1.3 MB body)."""
    bare = cleaned.rstrip(b"=")
    return len(cleaned) - len(bare) <= 2 and not bare.translate(None, _BASE64_ALPHABET)


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
