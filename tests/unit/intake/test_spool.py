"""The spooling DATA reader gives the same bytes as the in-memory one, whatever the cuts;
the byte budget lets big mail in first come, first served, and never starves a big one."""

from __future__ import annotations

import asyncio
import random
import re
from pathlib import Path

import pytest

from sendguard.deliver.smtp import dot_stuffed
from sendguard.intake.budget import ByteBudget
from sendguard.intake.data import LineScan, has_bare_line_ending, has_long_line, read_data
from sendguard.intake.spool import Spool, SpooledMessage, Unstuffer

ALPHABET = [b"a", b".", b"\r\n", b"\r", b"x" * 40, b"..", b"\r\n.", b"\xe3\x81\x82"]


def _message(rng: random.Random) -> bytes:
    body = b"".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 80)))
    body = re.sub(rb"\r(?!\n)", b"", body)  # the reader is fed CRLF-only mail here
    return body if body.endswith(b"\r\n") else body + b"\r\n"


def test_unstuffer_equals_whole_message_replace_for_any_cuts() -> None:
    """Pieces cut at random places unstuff to exactly what the whole stream unstuffs to."""
    rng = random.Random(4552)
    for _ in range(3000):
        stuffed = dot_stuffed(_message(rng))
        whole = stuffed.replace(b"\r\n.", b"\r\n")
        whole = whole[1:] if whole.startswith(b".") else whole
        cuts = sorted(rng.sample(range(len(stuffed) + 1), min(len(stuffed) + 1, 4)))
        unstuff = Unstuffer()
        pieces = [stuffed[a:b] for a, b in zip([0, *cuts], [*cuts, len(stuffed)], strict=True)]
        got = b"".join(unstuff.feed(p) for p in pieces) + unstuff.finish()
        assert got == whole, (stuffed, pieces)


async def test_spooling_reader_matches_in_memory_reader(tmp_path: Path) -> None:
    """With a threshold of a few octets every message is spooled; the file holds exactly what
    the in-memory reader returns, and it is 0600."""
    spool = Spool(tmp_path, threshold=8).open()
    rng = random.Random(5321)
    for _ in range(300):
        stream = dot_stuffed(_message(rng)) + b".\r\nQUIT\r\n"
        results = []
        for with_spool in (None, spool):
            reader = asyncio.StreamReader(limit=1001)
            for i in range(0, len(stream), 5):
                reader.feed_data(stream[i : i + 5])
            reader.feed_eof()
            content, refusal = await read_data(reader, None, with_spool)
            assert refusal is None
            results.append(content)
        plain, spooled = results
        if isinstance(spooled, SpooledMessage):
            assert spooled.path.stat().st_mode & 0o777 == 0o600
            assert spooled.read() == plain and spooled.size == len(plain)
            spooled.remove()
        else:
            assert len(plain) <= 8 and spooled == plain
    assert _files(tmp_path) == []


def _files(directory: Path) -> list[Path]:
    return list(directory.iterdir())


def test_spooled_line_facts_equal_the_whole_message_checks(tmp_path: Path) -> None:
    """Bare CR/LF and over-long lines, gathered piece by piece while a message is spooled,
    say what `has_bare_line_ending` and `has_long_line` say of the whole message: random
    messages with bare CR/LF, lines around the 998-octet limit and no final CRLF, written in
    random pieces."""
    spool = Spool(tmp_path, threshold=1).open()
    rng = random.Random(998)
    pieces = [b"a", b"\r\n", b"\r", b"\n", b".", b"x" * 330, b"y" * 997, b"\r\n."]
    seen: set[tuple[bool, bool]] = set()
    for _ in range(1500):
        message = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 12)))
        stuffed = message.replace(b"\r\n.", b"\r\n..")
        stuffed = b"." + stuffed if stuffed.startswith(b".") else stuffed
        writer = spool.create(LineScan())
        cuts = sorted(rng.sample(range(len(stuffed) + 1), min(len(stuffed) + 1, 3)))
        for a, b in zip([0, *cuts], [*cuts, len(stuffed)], strict=True):
            writer.write(stuffed[a:b])
        spooled = writer.finish()
        assert spooled.read() == message
        expected = (has_bare_line_ending(message), has_long_line(message, 1000))
        assert (spooled.lines.bare, spooled.lines.long) == expected, message
        seen.add(expected)
        spooled.remove()
    assert len(seen) == 4  # every combination occurred


async def test_budget_is_first_come_first_served() -> None:
    """Two 60-byte holds on a 100-byte budget: the second waits for the first; a 10-byte one
    that comes later waits behind it (no overtaking), and a lone oversize one is let in."""
    budget = ByteBudget(100)
    order: list[str] = []
    release_first = asyncio.Event()

    async def take(name: str, size: int, until: asyncio.Event | None = None) -> None:
        async with budget.hold(size):
            order.append(name)
            if until is not None:
                await until.wait()

    first = asyncio.create_task(take("first", 60, release_first))
    await asyncio.sleep(0)
    second = asyncio.create_task(take("second", 60))
    third = asyncio.create_task(take("third", 10))
    await asyncio.sleep(0.05)
    assert order == ["first"] and budget.waiting == 2
    release_first.set()
    await asyncio.gather(first, second, third)
    assert order == ["first", "second", "third"] and budget.used == 0
    await asyncio.wait_for(take("huge", 500), 1)
    assert budget.used == 0


async def test_cancelled_waiter_gives_its_turn_away() -> None:
    """A waiter that gives up (its client left) does not block those behind it."""
    budget = ByteBudget(100)
    await budget.acquire(80)
    big = asyncio.create_task(budget.acquire(50))
    await asyncio.sleep(0)
    small = asyncio.create_task(budget.acquire(20))
    await asyncio.sleep(0)
    assert not small.done()
    big.cancel()
    with pytest.raises(asyncio.CancelledError):
        await big
    await asyncio.wait_for(small, 1)
    assert budget.used == 100 and budget.waiting == 0
