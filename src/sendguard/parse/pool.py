"""Worker processes for extraction, so a hostile attachment never stalls the event loop.

The relay's pipeline calls ``await pool.run(parse_message, data, limits, timeout=…)``.
Each worker is a separate process (``forkserver`` context: the parent runs an asyncio loop
and threads, so plain ``fork`` is unsafe) joined to the parent by its own pipe. The blocking
send/receive runs on a small dedicated thread pool, never on the loop. A call that
outlives its timeout gets its worker killed (a C-level decompressor cannot be interrupted
any other way) and replaced; a worker that dies (segfault, Rust abort, memory cap) turns
into `InspectionError`. An optional address-space cap (RLIMIT_AS) per worker turns
decompression bombs into a clean failure instead of a host-wide out-of-memory. Workers
are forked on demand, and with an idle timeout a worker nobody used for that long is
stopped: a relay at rest keeps only its fork server, whose preloaded stack makes the next
worker ready in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import multiprocessing
import multiprocessing.connection
import resource
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar, cast

import structlog

from sendguard.errors import InspectionError, InspectionTimeout

T = TypeVar("T")
_log = structlog.get_logger(__name__)
_PRELOAD = ("sendguard.parse",)


def _worker_main(
    conn: multiprocessing.connection.Connection, memory_limit: int | None, preload: tuple[str, ...]
) -> None:
    """Worker loop: receive (fn, args), answer ("ok", result) or ("error", type, text)."""
    # What the fork server preloaded stays shared with it (and with the other workers): a
    # full collection would write to every inherited object's header and copy its page.
    gc.freeze()
    # Imported in the worker process only: the relay process configures its own logging.
    from sendguard.log import configure_child_logging

    configure_child_logging()  # a detector's log line is JSON on stderr here too
    if memory_limit:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    for name in preload:
        importlib.import_module(name)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        fn, args = job
        try:
            conn.send(("ok", fn(*args)))
        except MemoryError:
            conn.send(("error", "MemoryError", "worker ran out of memory"))
            return  # the heap may be fragmented or half-built: start afresh
        except Exception as exc:  # noqa: BLE001 - reported to the caller as InspectionError
            conn.send(("error", type(exc).__name__, str(exc)[:200]))


@dataclass(slots=True, eq=False)  # identity-hashed: workers live in a set
class _Worker:
    process: BaseProcess
    conn: multiprocessing.connection.Connection
    parked: float = 0.0
    """Loop time at which it last became idle."""

    def signal_kill(self) -> None:
        """SIGKILL now (non-blocking); the reaping happens in `reap`."""
        with contextlib.suppress(OSError, ValueError):
            self.process.kill()

    def reap(self, grace: float = 1.0) -> None:
        """Wait for the process to end (killing it after *grace*) and close the pipe."""
        self.process.join(grace)
        if self.process.is_alive():
            self.signal_kill()
            self.process.join(1.0)
        self.conn.close()


def _exchange(conn: multiprocessing.connection.Connection, job: object) -> Any:
    conn.send(job)
    return conn.recv()


class ExtractionPool:
    """A pool of *workers* processes running picklable top-level functions with a timeout."""

    def __init__(
        self,
        workers: int = 2,
        *,
        memory_limit_bytes: int | None = None,
        start_method: str = "forkserver",
        preload: tuple[str, ...] = _PRELOAD,
        idle_timeout: float = 0.0,
    ) -> None:
        """``idle_timeout`` > 0: a worker idle that long is stopped, and the next call
        forks a new one (from the warm fork server: milliseconds). Workers start on demand,
        up to *workers* at once."""
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self.idle_timeout = idle_timeout
        self._starting = 0
        self._retire_at: asyncio.TimerHandle | None = None
        self._memory_limit = memory_limit_bytes
        self._mp = multiprocessing.get_context(start_method)
        if start_method == "forkserver" and preload:
            # The fork server imports the extraction stack once; every worker forked from it
            # (and every replacement after a kill) then starts in milliseconds. This is
            # process-wide and only takes effect before the fork server first starts.
            self._mp.set_forkserver_preload(list(preload))
        self._preload = preload
        # One thread per worker for the blocking pipe exchange, plus spares for spawning.
        self._threads = ThreadPoolExecutor(workers + 2, thread_name_prefix="extraction-pool")
        self._idle: asyncio.Queue[_Worker] | None = None
        self._all: set[_Worker] = set()
        self._start_lock = asyncio.Lock()
        self._closed = False

    def _spawn(self) -> _Worker:
        parent, child = self._mp.Pipe()
        process = self._mp.Process(  # type: ignore[attr-defined]
            target=_worker_main,
            args=(child, self._memory_limit, self._preload),
            name="sendguard-extract",
            daemon=True,
        )
        process.start()
        child.close()
        worker = _Worker(process, parent)
        self._all.add(worker)
        return worker

    async def _ensure_started(self) -> asyncio.Queue[_Worker]:
        async with self._start_lock:
            if self._closed:
                raise InspectionError("extraction pool is closed")
            if self._idle is None:
                self._idle = asyncio.Queue()
            return self._idle

    async def _take(self, idle: asyncio.Queue[_Worker]) -> _Worker:
        """An idle worker, or a new one while fewer than `workers` exist, or the next to be
        given back."""
        if idle.empty() and len(self._all) + self._starting < self.workers:
            self._starting += 1
            try:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self._threads, self._spawn)
            finally:
                self._starting -= 1
        return await idle.get()

    def _park(self, worker: _Worker, idle: asyncio.Queue[_Worker]) -> None:
        """Give a worker back; with an idle timeout, see that it is stopped once unused."""
        loop = asyncio.get_running_loop()
        worker.parked = loop.time()
        idle.put_nowait(worker)
        if self.idle_timeout > 0 and self._retire_at is None:
            self._retire_at = loop.call_later(self.idle_timeout, self._retire, idle)

    def _retire(self, idle: asyncio.Queue[_Worker]) -> None:
        """Stop the workers idle for `idle_timeout` (they hold memory for nothing); the queue
        is drained and refilled without an await, so no caller can take one meanwhile."""
        self._retire_at = None
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        parked = [idle.get_nowait() for _ in range(idle.qsize())]
        keep = [w for w in parked if now - w.parked < self.idle_timeout]
        for worker in parked:
            if worker in keep:
                idle.put_nowait(worker)
                continue
            self._all.discard(worker)
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(None)  # it leaves its loop and exits
            loop.run_in_executor(self._threads, worker.reap, 1.0)
        if keep:
            due = min(w.parked for w in keep) + self.idle_timeout - now
            self._retire_at = loop.call_later(max(due, 0.01), self._retire, idle)

    async def _replace(self, worker: _Worker, idle: asyncio.Queue[_Worker]) -> None:
        """Kill a worker that timed out or died and put a new one in its place (a caller
        may be waiting for exactly this one)."""
        self._all.discard(worker)
        worker.signal_kill()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._threads, worker.reap, 0.0)
        if not self._closed:
            self._park(await loop.run_in_executor(self._threads, self._spawn), idle)

    # The contract names the per-call limit `timeout` (callers pass a budget per message).
    async def run(self, fn: Callable[..., T], /, *args: object, timeout: float) -> T:  # noqa: ASYNC109
        """Run ``fn(*args)`` in a worker; kill it after *timeout* seconds.

        Raises `InspectionTimeout` on timeout and `InspectionError` when the function
        raised or the worker died; the pool stays usable either way.
        """
        idle = await self._ensure_started()
        worker = await self._take(idle)
        while not worker.process.is_alive():  # died while idle (OOM killer, operator)
            await self._replace(worker, idle)
            worker = await self._take(idle)
        loop = asyncio.get_running_loop()
        exchange = loop.run_in_executor(self._threads, _exchange, worker.conn, (fn, args))
        try:
            reply = await asyncio.wait_for(exchange, timeout)
        except TimeoutError:
            _log.warning("extraction_timeout", function=fn.__name__, timeout=timeout)
            await asyncio.shield(self._replace(worker, idle))
            raise InspectionTimeout(f"{fn.__name__} exceeded {timeout} s") from None
        except (EOFError, OSError) as exc:
            _log.warning("extraction_worker_died", function=fn.__name__, error=type(exc).__name__)
            await asyncio.shield(self._replace(worker, idle))
            raise InspectionError(f"extraction worker died running {fn.__name__}") from None
        except asyncio.CancelledError:
            await asyncio.shield(self._replace(worker, idle))  # its answer would be stale
            raise
        return await self._settle(worker, idle, reply, fn.__name__)

    async def _settle(
        self, worker: _Worker, idle: asyncio.Queue[_Worker], reply: Any, name: str
    ) -> T:
        if reply[0] == "ok":
            self._park(worker, idle)
            return cast(T, reply[1])
        if worker.process.is_alive():
            self._park(worker, idle)
        else:
            await self._replace(worker, idle)
        raise InspectionError(f"{name} failed in worker: {reply[1]}: {reply[2]}")

    async def close(self) -> None:
        """Stop every worker (politely, then by force) and the helper threads."""
        self._closed = True
        if self._retire_at is not None:
            self._retire_at.cancel()
        loop = asyncio.get_running_loop()
        for worker in list(self._all):
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(None)
            await loop.run_in_executor(None, worker.reap, 1.0)
        self._all.clear()
        self._threads.shutdown(wait=False, cancel_futures=True)
