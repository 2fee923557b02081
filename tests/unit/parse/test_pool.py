"""ExtractionPool: work runs in killable worker processes, off the event loop."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from sendguard.errors import InspectionError, InspectionTimeout
from sendguard.parse import ExtractionPool, ParseLimits, parse_message
from tests.support import attachments as build


def hang(seconds: float) -> int:
    """Sleep in the worker (stands in for a decompressor stuck in C code)."""
    time.sleep(seconds)
    return os.getpid()


def pid() -> int:
    """The worker's process id."""
    return os.getpid()


def crash() -> None:
    """Kill the worker the way a segfault or a Rust abort would."""
    os.abort()


def fail() -> None:
    """Raise an ordinary exception in the worker."""
    raise ValueError("broken input")


@pytest.fixture
async def pool() -> ExtractionPool:
    """A one-worker pool with a 2 GiB address-space cap, closed after the test."""
    extraction = ExtractionPool(1, memory_limit_bytes=2 << 30)
    yield extraction  # type: ignore[misc]
    await extraction.close()


async def test_parse_message_runs_in_a_worker(pool: ExtractionPool) -> None:
    """parse_message, its arguments and the Mail it returns round-trip through a worker."""
    raw = build.build_message(
        attachments=[build.Attachment("a.csv", "氏名\n田中\n".encode("cp932"))]
    )
    mail = await pool.run(parse_message, raw, ParseLimits(), timeout=30)
    assert mail.parts[1].tables[0].rows == (("氏名",), ("田中",))
    assert await pool.run(pid, timeout=10) != os.getpid()


async def test_hanging_call_is_killed_and_the_pool_keeps_working(pool: ExtractionPool) -> None:
    """A call over its timeout raises InspectionTimeout, its worker dies, a new one serves."""
    first = await pool.run(pid, timeout=10)
    started = time.perf_counter()
    with pytest.raises(InspectionTimeout):
        await pool.run(hang, 30, timeout=0.5)
    assert time.perf_counter() - started < 10
    replacement = await pool.run(pid, timeout=10)
    assert replacement != first
    assert await pool.run(pid, timeout=10) == replacement


async def test_loop_stays_responsive_while_a_worker_is_busy(pool: ExtractionPool) -> None:
    """Other coroutines keep running while a worker is busy for a second."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    await pool.run(hang, 0.5, timeout=10)
    task.cancel()
    assert ticks > 20


async def test_crash_raises_inspection_error_and_is_replaced(pool: ExtractionPool) -> None:
    """A worker that aborts gives InspectionError; the pool then serves from a new worker."""
    with pytest.raises(InspectionError) as caught:
        await pool.run(crash, timeout=10)
    assert not isinstance(caught.value, InspectionTimeout)
    assert await pool.run(pid, timeout=10) > 0


async def test_exception_in_function_raises_inspection_error(pool: ExtractionPool) -> None:
    """An exception raised by the function becomes InspectionError naming its type."""
    with pytest.raises(InspectionError, match="ValueError"):
        await pool.run(fail, timeout=10)
    assert await pool.run(pid, timeout=10) > 0


async def test_closed_pool_refuses_work() -> None:
    """After close() a pool raises InspectionError instead of hanging."""
    pool = ExtractionPool(1)
    await pool.run(pid, timeout=10)
    await pool.close()
    with pytest.raises(InspectionError):
        await pool.run(pid, timeout=10)


async def test_worker_that_died_while_idle_is_replaced_before_use(pool: ExtractionPool) -> None:
    """A worker killed from outside between calls is replaced; the next call just works."""
    victim = await pool.run(pid, timeout=10)
    os.kill(victim, signal.SIGKILL)
    for _ in range(100):  # the fork server reaps it and reports the exit to the pool
        await asyncio.sleep(0.05)
        try:
            os.kill(victim, 0)
        except ProcessLookupError:
            break
    await asyncio.sleep(0.1)
    survivor = await pool.run(pid, timeout=10)
    assert survivor != victim


async def test_idle_worker_is_stopped_and_the_next_call_forks_a_new_one() -> None:
    """With an idle timeout, an unused worker is
    stopped after the timeout, and the next call is served by a new one."""
    pool = ExtractionPool(1, idle_timeout=0.3)
    try:
        first = await pool.run(pid, timeout=10)
        assert await pool.run(pid, timeout=10) == first  # reused while busy enough
        for _ in range(100):
            await asyncio.sleep(0.05)
            try:
                os.kill(first, 0)
            except ProcessLookupError:
                break
        else:
            pytest.fail("the idle worker was not stopped")
        second = await pool.run(pid, timeout=10)
        assert second != first
    finally:
        await pool.close()
