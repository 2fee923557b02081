"""The DATA reader and the upstream DATA preparation agree with the reference algorithms;
refusals are decided at the first line over the limit, in bounded memory."""

from __future__ import annotations

import asyncio
import random
import re
import tracemalloc

import pytest

from sendguard.deliver.smtp import dot_stuffed
from sendguard.intake.data import TOO_LONG, TOO_MUCH, WINDOW, has_long_line, read_data

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
    stream: bytes, *, size: int | None = None, step: int = 7
) -> tuple[bytes, str | None]:
    reader = asyncio.StreamReader(limit=1001)
    # Feed in small fragments, as a network would.
    for i in range(0, len(stream), step):
        reader.feed_data(stream[i : i + step])
    reader.feed_eof()
    return await read_data(reader, size)


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
    """Over-long lines and oversized messages get 550 5.6.0 / 552 5.3.4, after the final dot."""
    assert TOO_LONG.startswith("550 5.6.0") and TOO_MUCH.startswith("552 5.3.4")
    assert (await _read(b"x" * 2000 + b"\r\n.\r\n"))[1] == TOO_LONG
    assert (await _read(b"y\r\n" * 400 + b".\r\n", size=500))[1] == TOO_MUCH


@pytest.mark.parametrize("length", [999, 1000, 5000, 1_000_000])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
async def test_long_line_refused_wherever_it_is(length: int, where: str) -> None:
    """A line over 999 octets on the wire is refused (998 + a possible stuffing dot); the
    stream is still read exactly to its end (the next command is left in the reader)."""
    line = b"z" * length + b"\r\n"
    short = b"ok line.\r\n" * 50
    body = {"first": line + short, "middle": short + line + short, "last": short + line}[where]
    reader = asyncio.StreamReader(limit=1001)
    reader.feed_data(body + b".\r\nQUIT\r\n")
    reader.feed_eof()
    content, refusal = await read_data(reader, None)
    assert (content, refusal) == ((b"", TOO_LONG) if length > 999 else (body, None))
    assert await reader.read() == b"QUIT\r\n"


@pytest.mark.parametrize(
    "line", [b"a" * 998, b"." + b"a" * 997, b".." + b"a" * 997, b"a" * 997 + b"\n" + b"b" * 998]
)
async def test_longest_allowed_lines_pass(line: bytes) -> None:
    """998 octets pass; so does a 998-octet line with its stuffing dot (999 on the wire), and
    a bare LF splits a line as `normalise` would (the handler decides on bare line endings)."""
    content, refusal = await _read(line + b"\r\n.\r\n", step=4096)
    assert refusal is None and content == _reference_read(line + b"\r\n.\r\n")


async def test_line_split_across_windows_is_measured_whole() -> None:
    """A line is measured across reads: 600 octets at the end of one window and 600 at the
    start of the next make one line of 1,200."""
    pad = b"p" * 80 + b"\r\n"
    head = pad * ((WINDOW - 600) // len(pad))
    stream = head + b"q" * 1200 + b"\r\n.\r\n"
    assert (await _read(stream, step=65536))[1] == TOO_LONG
    ok = head + b"q" * 900 + b"\r\n" + b"q" * 900 + b"\r\n.\r\n"
    assert (await _read(ok, step=65536))[1] is None


async def test_end_of_data_split_across_reads() -> None:
    """CRLF.CRLF is found wherever the reads cut it, also right after a full window."""
    body = (b"w" * 500 + b"\r\n") * (2 * WINDOW // 502)
    for step in (1, 2, 3, 4, 5, 65536):
        stream = body[-4000:] + b".\r\n" if step < 100 else body + b".\r\n"
        content, refusal = await _read(stream, step=step)
        assert refusal is None and content == _reference_read(stream)


async def test_ten_megabyte_line_is_read_in_bounded_memory() -> None:
    """A 10 MB line costs no more memory than a few windows: it is refused at once and the
    rest is discarded as it arrives (fed from a real socket, so the reader pauses it)."""
    done = asyncio.Event()
    result: list[tuple[bytes, str | None]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        result.append(await read_data(reader, 50 * 1024 * 1024))
        writer.close()
        done.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, limit=1001)
    port = server.sockets[0].getsockname()[1]
    tracemalloc.start()
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        piece = b"m" * 65536
        for _ in range(160):  # 10 MiB
            writer.write(piece)
            await writer.drain()
        writer.write(b"\r\n.\r\n")
        await writer.drain()
        await asyncio.wait_for(done.wait(), 30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        writer.close()
        server.close()
    assert result == [(b"", TOO_LONG)]
    assert peak < 8 * WINDOW, peak


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
