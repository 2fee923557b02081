"""Reading the DATA payload of one transaction (stage 1 of the flow, inside the intake).

aiosmtpd 1.4.6 reads DATA one CRLF-terminated line per coroutine step, with a 1,001-byte
stream limit, so a 34 MB message takes ~450,000 steps and ~17,000 pause/resume cycles of
the socket. `read_data` reads it with C-level `readuntil(".\\r\\n")` searches instead: one
per line that happens to end with a dot, and one per `WINDOW` of data without such a line.

The end of DATA is a line that is exactly ".\\r\\n" (CRLF.CRLF in the stream, or a first
line "."); bare CR or LF never end it (SMTP smuggling).

Refusals are decided while the data streams in, at the first line that breaks a limit, and
from then on the rest of the message is read and discarded up to its end, so memory stays
bounded by `WINDOW` whatever the client sends; the reply goes out after the final dot:

- a line over 998 octets (RFC 5322 §2.1.1; a line is counted up to any CR or LF, so a
  message with bare line endings is measured as `line_policy=normalise` would see it) →
  ``550 5.6.0``. The stream check allows 999 octets on the wire, the dot-stuffing dot of a
  998-octet line; the handler checks the unstuffed message exactly.
- more than the size limit → ``552 5.3.4``.
"""

from __future__ import annotations

import asyncio
import sys

from sendguard import compat, replies

TOO_LONG = str(replies.LINE_TOO_LONG)
TOO_MUCH = str(replies.MESSAGE_TOO_BIG)
MAX_LINE = 998
"""Octets of a line without its CRLF (RFC 5322 §2.1.1)."""
WINDOW = 1 << 20
"""Most bytes buffered without an end-of-data candidate (the reader pauses the socket at 2×)."""
_WIRE_LINE = MAX_LINE + 1  # a dot-stuffed 998-octet line is 999 octets on the wire
_END = b"\r\n.\r\n"


async def read_data(
    reader: asyncio.StreamReader, size_limit: int | None
) -> tuple[bytes, str | None]:
    """The dot-unstuffed message and None, or b"" and the refusal to send after the dot."""
    limit = size_limit or sys.maxsize
    chunks: list[bytes] = []
    total = 0
    run = 0  # octets since the last CR or LF: the line being read
    tail = b"\r\n"  # the last octets before `chunk` (the DATA line's CRLF at first)
    refusal: str | None = None
    with compat.reader_limit(reader, WINDOW):
        while True:
            try:
                chunk = await reader.readuntil(b".\r\n")
            except asyncio.LimitOverrunError as exc:
                # No ".\r\n" within the window: take what was searched, keep the rest.
                chunk = await reader.read(exc.consumed)
                end = False
            else:
                end = (chunk if len(chunk) >= len(_END) else tail + chunk).endswith(_END)
            body = chunk[:-3] if end else chunk  # the last line keeps its CRLF, ".\r\n" goes
            if refusal is None:
                total += len(body)
                long_line, run = _long_line(body, run)
                refusal = TOO_MUCH if total > limit else TOO_LONG if long_line else None
                if refusal is None:
                    chunks.append(body)
                else:
                    chunks.clear()  # from here on the message is only read to its end
            if end:
                break
            tail = chunk[-4:] if len(chunk) >= 4 else (tail + chunk)[-4:]
    if refusal is not None:
        return b"", refusal
    raw = b"".join(chunks)
    del chunks
    content = raw.replace(b"\r\n.", b"\r\n")
    return (content[1:] if content.startswith(b".") else content), None


def _long_line(data: bytes, run: int) -> tuple[bool, int]:
    """Whether `data`, coming after `run` octets of an unfinished line, has a line over
    `_WIRE_LINE` octets (lines end at any CR or LF); and the octets of the line it leaves
    unfinished.

    Jumps from each line start to the last line break within the limit, so a 34 MB message
    takes ~35,000 C-level searches instead of a split into 450,000 line objects.
    """
    size = len(data)
    first = _first_break(data)
    if first == -1:
        return run + size > _WIRE_LINE, run + size
    if run + first > _WIRE_LINE:
        return True, 0
    start = first + 1
    while size - start > _WIRE_LINE:
        stop = start + _WIRE_LINE + 1
        last = max(data.rfind(b"\r", start, stop), data.rfind(b"\n", start, stop))
        if last == -1:
            return True, 0
        start = last + 1
    last = max(data.rfind(b"\r", start), data.rfind(b"\n", start))
    return False, size - (last + 1 if last != -1 else start)


def _first_break(data: bytes) -> int:
    cr, lf = data.find(b"\r"), data.find(b"\n")
    return lf if cr == -1 else cr if lf == -1 else min(cr, lf)


def has_long_line(data: bytes, max_octets: int) -> bool:
    """Whether a CRLF-delimited line is longer than `max_octets` counting its CRLF (a last
    line without CRLF is counted as if it had one).

    Jumps from each line start to the last CRLF within `max_octets`, so a 34 MB message
    takes ~35,000 C-level searches instead of a split into 450,000 line objects.
    """
    start, size = 0, len(data)
    while size - start > max_octets:
        end = data.rfind(b"\r\n", start, start + max_octets)
        if end == -1:
            return True
        start = end + 2
    if data.endswith(b"\r\n"):
        return False
    last = data.rfind(b"\r\n")
    return size - (last + 2 if last != -1 else 0) > max_octets - 2
