"""Process helpers for the queue integration tests: start, kill -9 and wait for relay nodes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import aiosmtplib

NODE = Path(__file__).with_name("node.py")


@contextmanager
def postgres_or_sqlite(kind: str, tmp_path: Path) -> Iterator[str]:
    """A fresh store URL of the given kind."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'queue.db'}"
        return
    from sendguard.queue.testing import postgres_schema

    with postgres_schema() as url:
        yield url


class Node:
    """One node subprocess; `port` is its SMTP port when it listens."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush, exactly like a crash."""
        if self.process.returncode is None:
            os.kill(self.process.pid, signal.SIGKILL)

    async def wait(self) -> None:
        """Reap the process."""
        await self.process.wait()


@asynccontextmanager
async def node(
    store: str, tmp_path: Path, *, node_id: str, upstream: str = "", listen: bool = True,
    lease: float = 900.0,
) -> AsyncIterator[Node]:  # fmt: skip
    """Start a node; it is killed (if still running) when the block ends."""
    port_file = tmp_path / f"{node_id}-{os.getpid()}-{id(store)}.port"
    port_file.unlink(missing_ok=True)
    args = [str(NODE), "--store", store, "--node-id", node_id, "--lease", str(lease)]
    if upstream:
        args += ["--upstream", upstream]
    if listen:
        args += ["--port-file", str(port_file)]
    proc = await asyncio.create_subprocess_exec(sys.executable, *args)
    started = Node(proc, 0)
    try:
        if listen:
            await until(lambda: port_file.exists() and port_file.read_text() != "", within=20)
            started.port = int(port_file.read_text())
        yield started
    finally:
        started.kill()
        await started.wait()


async def until(check: Callable[[], bool], *, within: float = 10.0) -> None:
    """Poll `check` every 20 ms until it is true; fail after `within` seconds."""
    async with asyncio.timeout(within):
        # The condition is another process's doing: polling is the only way to see it.
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


def message(n: int) -> bytes:
    """Message number `n`, identified by its Message-ID."""
    return (
        f"From: tanaka@corp.example\r\nTo: customer@client.example\r\n"
        f"Subject: order {n}\r\nMessage-ID: <msg-{n}@corp.example>\r\n\r\nbody {n}\r\n"
    ).encode()


async def submit(port: int, n: int) -> str | None:
    """Send message `n`; the 250 text, or None if the node did not say 250."""
    try:
        errors, text = await aiosmtplib.send(
            message(n),
            sender="tanaka@corp.example",
            recipients=["customer@client.example"],
            hostname="127.0.0.1",
            port=port,
            timeout=10,
        )
    except (aiosmtplib.SMTPException, OSError):
        return None
    return None if errors else text
