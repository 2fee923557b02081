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

import structlog

from sendguard import compat, replies
from sendguard.intake.spool import Spool, SpooledMessage, SpoolWriter
from sendguard.parse.lines import has_bare_line_ending

log = structlog.get_logger(__name__)

TOO_LONG = str(replies.LINE_TOO_LONG)
TOO_MUCH = str(replies.MESSAGE_TOO_BIG)
SPOOL_FAILED = str(replies.SPOOL_FAILED)
MAX_LINE = 998
"""Octets of a line without its CRLF (RFC 5322 §2.1.1)."""
WINDOW = 1 << 20
"""Most bytes buffered without an end-of-data candidate (the reader pauses the socket at 2×)."""
_WIRE_LINE = MAX_LINE + 1  # a dot-stuffed 998-octet line is 999 octets on the wire
_END = b"\r\n.\r\n"


async def read_data(
    reader: asyncio.StreamReader, size_limit: int | None, spool: Spool | None = None
) -> tuple[bytes | SpooledMessage, str | None]:
    """The dot-unstuffed message and None, or b"" and the refusal to send after the dot.

    With a `spool`, a message that grows past its threshold is written to a spool file as it
    arrives and comes back as a `SpooledMessage` (memory stays bounded by `WINDOW`); the file
    is removed again if the message is refused or the client goes away.
    """
    limit = size_limit or sys.maxsize
    spill = spool.threshold if spool is not None else sys.maxsize
    chunks: list[bytes] = []
    writer: SpoolWriter | None = None
    total = 0
    run = 0  # octets since the last CR or LF: the line being read
    tail = b"\r\n"  # the last octets before `chunk` (the DATA line's CRLF at first)
    refusal: str | None = None
    try:
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
                    if refusal is None and (writer is not None or total > spill):
                        chunks.append(body)
                        writer, refusal = _spill(spool, writer, chunks)
                    elif refusal is None:
                        chunks.append(body)
                    if refusal is not None:
                        chunks.clear()  # from here on the message is only read to its end
                        if writer is not None:
                            writer.discard()
                            writer = None
                if end:
                    break
                tail = chunk[-4:] if len(chunk) >= 4 else (tail + chunk)[-4:]
    except BaseException:
        if writer is not None:
            writer.discard()  # the client went away (or the relay stops): nothing to keep
        raise
    if refusal is not None:
        return b"", refusal
    if writer is not None:
        try:
            return writer.finish(), None
        except BaseException:
            writer.discard()
            raise
    raw = b"".join(chunks)
    del chunks
    content = raw.replace(b"\r\n.", b"\r\n")
    return (content[1:] if content.startswith(b".") else content), None


def _spill(
    spool: Spool | None, writer: SpoolWriter | None, chunks: list[bytes]
) -> tuple[SpoolWriter | None, str | None]:
    """Move `chunks` to the spool file (created on first use); a disk that fails is a
    temporary refusal (451 after the dot), never a half-written message."""
    assert spool is not None  # only called once the message is past the spool threshold
    try:
        writer = writer or spool.create(LineScan())
        for piece in chunks:
            writer.write(piece)
    except OSError as exc:
        log.error("spool_write_failed", error=type(exc).__name__, detail=str(exc)[:200])
        if writer is not None:
            writer.discard()
        return None, SPOOL_FAILED
    finally:
        chunks.clear()
    return writer, None


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


class LineScan:
    """`has_bare_line_ending` and `has_long_line` of a message that arrives in pieces, none of
    which splits a CRLF (the spool writer's dot-unstuffed output): the same answers, paid
    a megabyte at a time while the message streams in."""

    def __init__(self, max_octets: int = MAX_LINE + 2) -> None:
        self.max_octets = max_octets
        self.bare = False
        self.long = False
        self._run = 0  # octets of the line not yet ended by a CRLF

    def feed(self, piece: bytes) -> None:
        """Take the next piece."""
        if not self.bare and has_bare_line_ending(piece):
            self.bare = True
        if self.long or not piece:
            return
        first = piece.find(b"\r\n")
        if first == -1:
            self._run += len(piece)
            return
        last = piece.rfind(b"\r\n")
        if self._run + first + 2 > self.max_octets or (
            last > first and has_long_line(piece[first + 2 : last + 2], self.max_octets)
        ):
            self.long = True
        self._run = len(piece) - (last + 2)

    def finish(self) -> None:
        """The message is complete: a last line without CRLF counts as if it had one."""
        if self._run and self._run + 2 > self.max_octets:
            self.long = True


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
