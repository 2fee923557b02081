"""The DATA reader and the upstream DATA preparation agree with the reference algorithms."""

from __future__ import annotations

import asyncio
import random
import re

import pytest

from sendguard.deliver.smtp import dot_stuffed
from sendguard.intake.data import TOO_LONG, TOO_MUCH, has_long_line, read_data

ALPHABET = [b"a", b".", b"\r\n", b"\r", b"\n", b"x" * 40, b"..", b"\xe3\x81\x82"]


def _reference_read(stream: bytes) -> bytes:
    """RFC 5321 §4.5.2 by the book: lines up to a lone dot, leading dots removed."""
    out = []
    for line in re.split(rb"(?<=\r\n)", stream):
        if line == b".\r\n":
            break
        out.append(line[1:] if line.startswith(b".") else line)
    return b"".join(out)


async def _read(
    stream: bytes, *, size: int | None = None, line: int = 1001
) -> tuple[bytes, str | None]:
    reader = asyncio.StreamReader(limit=line)
    # Feed in small fragments, as a network would.
    for i in range(0, len(stream), 7):
        reader.feed_data(stream[i : i + 7])
    reader.feed_eof()
    return await read_data(reader, size, line)


def _message(rng: random.Random) -> bytes:
    body = b"".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 60)))
    return body if body.endswith(b"\r\n") else body + b"\r\n"


async def test_reader_matches_reference_on_random_messages() -> None:
    """2,000 random messages with dots, bare CR/LF and short lines read exactly as RFC 5321 says."""
    rng = random.Random(5321)
    for _ in range(2000):
        message = _message(rng)
        stuffed = dot_stuffed(message) if not re.search(rb"\r(?!\n)|(?<!\r)\n", message) else None
        if stuffed is None:
            continue
        stream = stuffed + b".\r\n" + b"QUIT\r\n"
        content, refusal = await _read(stream)
        assert refusal is None
        assert content == _reference_read(stream) == message


@pytest.mark.parametrize(
    "stream", [b".\r\n", b"\r\n.\r\n", b"x\r\n.\r\n", b"a.\r\nb.\r\n.\r\n", b"..\r\n.\r\n"]
)
async def test_reader_short_streams(stream: bytes) -> None:
    """The end of DATA is found wherever the lone dot is, including the first line."""
    content, refusal = await _read(stream)
    assert refusal is None and content == _reference_read(stream)


async def test_reader_refusals() -> None:
    """Over-long lines and oversized messages get aiosmtpd's replies, after reading to the end."""
    assert (await _read(b"x" * 2000 + b"\r\n.\r\n"))[1] == TOO_LONG
    assert (await _read(b"y\r\n" * 400 + b".\r\n", size=500))[1] == TOO_MUCH


@pytest.mark.parametrize(
    ("data", "limit", "long"),
    [
        (b"", 10, False),
        (b"12345678\r\n", 10, False),
        (b"123456789\r\n", 10, True),
        (b"ab\r\n" * 1000, 10, False),
        (b"ab\r\n" * 100 + b"x" * 9, 10, True),
    ],
)
def test_has_long_line(data: bytes, limit: int, long: bool) -> None:
    """A line longer than the limit (counting its CRLF) is found anywhere in the message."""
    assert has_long_line(data, limit) is long


def test_dot_stuffing_matches_aiosmtplib_rule() -> None:
    """Every line that starts with a dot gets one more, the first line included."""
    assert dot_stuffed(b".a\r\nb\r\n..c\r\n") == b"..a\r\nb\r\n...c\r\n"
    assert dot_stuffed(b"a.\r\n.\r\n") == b"a.\r\n..\r\n"
