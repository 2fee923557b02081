"""How long preparing one big DATA payload holds the event loop.

``python tests/bench/bench_loop_block.py [ROUNDS]``.

The 34 MB message of workload (c) prepared for the upstream as before (the bare-line-ending
check and `dot_stuffed` over the whole message at once) and as now (`stuffed_pieces`, a
megabyte at a time with a turn of the event loop between pieces). A ticker task measures the
longest time it could not run: that is what every other connection of the relay process
waits while a big message is delivered.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))  # the shared test helpers in tests/support

from workloads import big_attachment  # noqa: E402

from sendguard.deliver.smtp import dot_stuffed, stuffed_pieces  # noqa: E402
from sendguard.parse.lines import has_bare_line_ending  # noqa: E402


async def _measure(prepare: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """(longest block of the loop, total) in milliseconds while `prepare` runs."""
    longest = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal longest
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0)
            now = time.perf_counter()
            longest, last = max(longest, now - last), now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started = time.perf_counter()
    await prepare()
    total = time.perf_counter() - started
    done.set()
    await task
    return longest * 1000, total * 1000


async def _main(rounds: int) -> None:
    data = big_attachment(ROOT / "var" / "bench" / "cache").data

    async def whole() -> object:
        return None if has_bare_line_ending(data) else dot_stuffed(data)

    async def pieces() -> object:
        return await stuffed_pieces(data)

    print(f"{len(data) / 1e6:.1f} MB message, {rounds} rounds each, alternating")
    for _ in range(rounds):
        for name, prepare in (("whole (before)", whole), ("pieces (after)", pieces)):
            block, total = await _measure(prepare)
            print(f"  {name:15} longest loop block {block:6.1f} ms   total {total:6.1f} ms")


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
