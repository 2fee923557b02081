"""A lean asyncio SMTP load generator: one connection per message, like an office client.

A raw client (no aiosmtplib) so that the generator's own CPU cost stays small next to the
relays it measures on the same cores. Every message carries ``X-Bench-Id`` as its first
header so its arrival at the sink can be matched; the client records when it started
(connect) and when the final-dot reply came. Every loop is bounded by a count and a deadline.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

from workloads import Template


@dataclass(frozen=True, slots=True)
class Sent:
    """One message as the client saw it."""

    bench_id: str
    kind: str
    started: float
    acked: float
    code: int


class SmtpError(Exception):
    """The server answered something other than what the transaction needs."""


async def _reply(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            raise SmtpError("connection closed")
        lines.append(line)
        if line[3:4] != b"-":
            return int(line[:3]), b"".join(lines)


async def _command(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: bytes, want: int
) -> int:
    writer.write(line)
    code, text = await _reply(reader)
    if code // 100 != want // 100:
        raise SmtpError(f"{line[:20]!r} -> {text[:120]!r}")
    return code


async def send_one(port: int, template: Template, bench_id: str, limit: float) -> Sent:
    """Connect, EHLO, MAIL, RCPT…, DATA, QUIT; one message, bounded by `timeout`."""
    started = time.time()
    code = 0
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(limit):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
            if (await _reply(reader))[0] != 220:
                raise SmtpError("no greeting")
            await _command(reader, writer, b"EHLO bench.example\r\n", 250)
            await _command(reader, writer, f"MAIL FROM:<{template.mail_from}>\r\n".encode(), 250)
            for rcpt in template.rcpts:
                await _command(reader, writer, f"RCPT TO:<{rcpt}>\r\n".encode(), 250)
            await _command(reader, writer, b"DATA\r\n", 354)
            writer.write(b"X-Bench-Id: " + bench_id.encode() + b"\r\n")
            writer.write(template.wire)
            writer.write(b".\r\n")
            await writer.drain()
            code, _ = await _reply(reader)
            acked = time.time()
            writer.write(b"QUIT\r\n")
            await writer.drain()
    except (SmtpError, OSError, TimeoutError, ValueError) as exc:
        acked = time.time()
        code = code or (599 if isinstance(exc, TimeoutError) else 598)
    finally:
        if writer is not None:
            writer.close()
    return Sent(bench_id, template.kind, started, acked, code)


async def run_load(
    port: int,
    templates: Sequence[Template],
    *,
    count: int,
    concurrency: int,
    time_limit: float,
    prefix: str,
    per_message_timeout: float = 120.0,
) -> list[Sent]:
    """Send `count` messages (cycling through `templates`) over `concurrency` connections,
    stopping early at `time_limit` seconds."""
    ids = itertools.count()
    deadline = time.monotonic() + time_limit
    results: list[Sent] = []

    async def client() -> None:
        while time.monotonic() < deadline:
            n = next(ids)
            if n >= count:
                return
            template = templates[n % len(templates)]
            results.append(await send_one(port, template, f"{prefix}-{n}", per_message_timeout))

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return results


async def run_while(
    port: int,
    background: Template,
    foreground: Sequence[Template],
    *,
    background_count: int,
    concurrency: int,
    time_limit: float,
    prefix: str,
) -> tuple[list[Sent], list[Sent]]:
    """`background_count` big messages at once; small mail flows over `concurrency` connections
    until they are all answered (or `time_limit`). Returns (big, small)."""
    done = asyncio.Event()
    deadline = time.monotonic() + time_limit

    async def big() -> list[Sent]:
        sends = (
            send_one(port, background, f"{prefix}-big-{n}", time_limit)
            for n in range(background_count)
        )
        try:
            return list(await asyncio.gather(*sends))
        finally:
            done.set()

    small: list[Sent] = []
    ids = itertools.count()

    async def client() -> None:
        while not done.is_set() and time.monotonic() < deadline:
            n = next(ids)
            template = foreground[n % len(foreground)]
            small.append(await send_one(port, template, f"{prefix}-small-{n}", 60))

    big_task = asyncio.create_task(big())
    await asyncio.sleep(0.05)  # the big transfer is under way before small mail starts
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return await big_task, small
