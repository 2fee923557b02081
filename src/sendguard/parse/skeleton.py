"""Long base64 bodies stand in for themselves while the stdlib parser reads the structure.

The stdlib feed parser (`sendguard.parse.mime.parse_bytes`) handles a message line by line in
Python: a 1.7 MB base64 attachment is 23,000 lines and ~50 ms, a 34 MB one a second, for
text it only copies into the part's payload. `collapse` finds runs of base64 body lines and
replaces each run with one placeholder line; the parser reads this *skeleton*; `restore` puts
the original lines back into the payloads.

Why the parse is the same: the parser gives a line a meaning only when it is a boundary
delimiter (it starts with ``--``), a header or a header continuation (it has a ``:``, starts
with blank space or with ``From ``), or an empty line (end of a header block; in
``message/delivery-status`` also the end of a block). A run line here is exactly `width`
characters of the base64 alphabet (no ``-``, ``:``, blank or ``=``) followed by CRLF; the
placeholder line is too (hex digits and letters). Such lines are plain text wherever they
stand: they end a header block the same way (the first non-header line), and a run of them,
or its placeholder, lands in the payload of the part it is in. The parser keeps a leaf's
payload as the exact concatenation of its lines, so putting the run back in place of its
placeholder is the payload a parse of the original bytes gives. The run's last line is left
out (the parser strips the line break before a boundary from the payload's end, so a
placeholder there would lose its own), and `restore` accepts only when every placeholder is
found, once, whole, in a leaf's payload (not a preamble, epilogue or header); anything else
and the caller parses the original bytes (`tests/unit/parse/test_skeleton.py` compares both
parses on every corpus message and on generated ones).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from email.message import Message

from sendguard import compat

# Letters and digits and + and /: not ``=`` (a run never holds the final padded line anyway,
# and ``boundary=`` must stay out of a run: precheck reads the original bytes regardless).
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_MIN_WIDTH = 40
_MAX_WIDTH = 998  # RFC 5322's line limit; longer lines are left to the parser
MIN_RUN_LINES = 64
"""Below this (~5 KB) the parser's own cost is small: not worth a placeholder."""
_PROOF_PIECE = 1 << 20
_MARK = re.compile(r"SG([0-9a-f]{32})([0-9]{8})Z\r\n")


@dataclass(frozen=True, slots=True)
class Skeleton:
    """The message with each run replaced by one line; `runs` are their (start, end) offsets."""

    text: bytes
    token: str
    runs: tuple[tuple[int, int], ...]


def _aligned(data: bytes, start: int, width: int, limit: int) -> int:
    """How many of the (up to `limit`) lines from `start` have their CRLF at offset `width`:
    the leading CRs and LFs of two strided slices (C-level)."""
    stride = width + 2
    stop = start + limit * stride
    crs = data[start + width : stop : stride]
    lfs = data[start + width + 1 : stop : stride]
    return min(len(crs) - len(crs.lstrip(b"\r")), len(lfs) - len(lfs.lstrip(b"\n")))


def _run_lines(data: bytes, start: int) -> tuple[int, int]:
    """(width, lines) of the run of equal-width base64 lines at `start`; (0, 0) if none."""
    eol = data.find(b"\r\n", start, start + _MAX_WIDTH + 1)
    width = eol - start
    if width < _MIN_WIDTH:
        return 0, 0
    stride = width + 2
    # The window doubles while every line in it is aligned: a blank line that starts no run
    # costs ~MIN_RUN_LINES lines, not the rest of the message (a message of such blank lines
    # would otherwise be quadratic), and a run costs twice its length at most.
    lines, window = 0, MIN_RUN_LINES + 1
    while True:
        found = _aligned(data, start + lines * stride, width, window)
        lines += found
        if found < window:
            break
        window *= 2
    lines -= 1  # the run's last line stays out (see the module's docstring)
    if lines < MIN_RUN_LINES:
        return 0, 0
    # Every line aligned; now every other character in the alphabet, a piece at a time (no
    # copy of the whole run).
    per = max(1, _PROOF_PIECE // stride)
    for first in range(0, lines, per):
        count = min(per, lines - first)
        piece = data[start + first * stride : start + (first + count) * stride]
        if piece.translate(None, _ALPHABET) != b"\r\n" * count:
            return 0, 0
    return width, lines


def collapse(data: bytes) -> Skeleton | None:
    """The skeleton of `data`, or None when it has no run worth collapsing."""
    runs: list[tuple[int, int]] = []
    pos = data.find(b"\r\n\r\n")
    while pos >= 0:
        start = pos + 4  # a run starts a body: right after the blank line of a header block
        width, lines = _run_lines(data, start)
        if lines:
            end = start + lines * (width + 2)
            runs.append((start, end))
            pos = data.find(b"\r\n\r\n", end - 2)
        else:
            pos = data.find(b"\r\n\r\n", pos + 2)
    if not runs:
        return None
    token = secrets.token_hex(16)
    while token.encode() in data:  # 2^-128 per try: the placeholders must be unique
        token = secrets.token_hex(16)
    pieces, last = [], 0
    for n, (start, end) in enumerate(runs):
        pieces += [data[last:start], f"SG{token}{n:08d}Z\r\n".encode()]
        last = end
    pieces.append(data[last:])
    return Skeleton(b"".join(pieces), token, tuple(runs))


def restore(message: Message, skeleton: Skeleton, data: bytes) -> bool:
    """Put every run back into the payload it landed in; False when one is not found whole."""
    seen: set[int] = set()
    stack = [message]

    def back(match: re.Match[str]) -> str:
        n = int(match.group(2))
        if match.group(1) != skeleton.token or n >= len(skeleton.runs) or n in seen:
            raise _Misplaced
        seen.add(n)
        start, end = skeleton.runs[n]
        return str(memoryview(data)[start:end], "ascii")  # no slice copy of the run first

    try:
        while stack:
            part = stack.pop()
            payload = compat.parsed_payload(part)
            if isinstance(payload, list):
                stack.extend(payload)
            elif payload is not None and skeleton.token in payload:
                compat.replace_parsed_text(part, _MARK.sub(back, payload))
    except _Misplaced:
        return False
    return len(seen) == len(skeleton.runs)


class _Misplaced(Exception):
    """A placeholder was found twice, or one this skeleton never made."""
