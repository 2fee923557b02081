"""Contract with asyncio's `StreamReader._limit` (`sendguard.compat.reader_limit`)."""

from __future__ import annotations

import asyncio

import pytest

from sendguard import compat


async def test_the_limit_bounds_readuntil_and_is_restored() -> None:
    reader = asyncio.StreamReader(limit=16)
    reader.feed_data(b"x" * 40 + b".\r\n" + b"y" * 40)
    with pytest.raises(asyncio.LimitOverrunError):
        await reader.readuntil(b".\r\n")  # 43 octets to the separator: over 16
    with compat.reader_limit(reader, 64):
        assert await reader.readuntil(b".\r\n") == b"x" * 40 + b".\r\n"
    reader.feed_data(b".\r\n")
    with pytest.raises(asyncio.LimitOverrunError) as overrun:
        await reader.readuntil(b".\r\n")  # 16 again
    assert overrun.value.consumed >= 16


async def test_the_limit_is_restored_when_the_block_fails() -> None:
    reader = asyncio.StreamReader(limit=16)
    with pytest.raises(RuntimeError), compat.reader_limit(reader, 1 << 20):
        raise RuntimeError("the client went away")
    reader.feed_data(b"z" * 40 + b"\n")
    with pytest.raises(asyncio.LimitOverrunError):
        await reader.readuntil(b"\n")
