"""How many bytes of big mail one relay process handles at once (inside the intake).

A message that was spooled (`sendguard.intake.spool`) waits on disk for a share of the
process's byte budget before it is read back, inspected and delivered: the 21st 25 MB
message waits its turn instead of growing memory, and it waits *before* the pipeline starts,
so the wait never counts against the scan budget — the client's own SMTP timeout (and the
relay's `reply_deadline`) is the only clock for it. Small mail never spools and never waits
here: it is the separate lane that keeps flowing while big mail queues.

Turns are first come, first served; a message larger than the whole budget is let in alone
(when nothing else holds any), so no size below the message size limit can starve.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator

import structlog

log = structlog.get_logger(__name__)

DEFAULT_BUDGET = 64 * 1024 * 1024
"""What `sendguard.app.inflight_budget` gives with the default settings."""


class ByteBudget:
    """A first-come-first-served semaphore over bytes."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the byte budget must be at least 1 byte")
        self.limit = limit
        self.used = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def waiting(self) -> int:
        """Messages waiting for their turn."""
        return len(self._waiters)

    @contextlib.asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        """Wait until `size` bytes fit, hold them for the block, then give them back."""
        started = time.perf_counter()
        await self.acquire(size)
        waited = time.perf_counter() - started
        if waited > 0.001:
            log.info("byte_budget_waited", size=size, waited_ms=round(waited * 1000, 1))
        try:
            yield
        finally:
            self.release(size)

    async def acquire(self, size: int) -> None:
        """Take `size` bytes once they fit and everyone who came earlier has had theirs."""
        if not self._waiters and self._fits(size):
            self.used += size
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((size, turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release(size)  # granted in the same instant: give it straight back
            else:
                self._waiters.remove((size, turn))
                self._wake()  # a smaller message behind this one may fit now
            raise

    def release(self, size: int) -> None:
        """Give back `size` bytes and let the next messages in, in order."""
        self.used -= size
        self._wake()

    def _fits(self, size: int) -> bool:
        return self.used == 0 or self.used + size <= self.limit

    def _wake(self) -> None:
        while self._waiters and self._fits(self._waiters[0][0]):
            size, turn = self._waiters.popleft()
            if not turn.done():
                self.used += size
                turn.set_result(None)
