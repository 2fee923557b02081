"""Debian Postfix's test tools as real peers: `smtp-sink` (an upstream with fault injection)
and `smtp-source` (a load generator). Both are bounded and talk only to loopback."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def tool(name: str) -> str:
    """Absolute path of a Postfix tool (they live in /usr/sbin, often not on PATH)."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise FileNotFoundError(f"{name} not found: install Debian's postfix package")
    return found


def free_port() -> int:
    """A loopback port that was free a moment ago (smtp-sink cannot bind port 0 and report it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def smtp_sink(dump_dir: Path, *, extra: tuple[str, ...] = (), backlog: int = 256) -> Iterator[int]:
    """Run smtp-sink dumping every message as one file in `dump_dir`; yields its port."""
    dump_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    user = ("-u", "root") if os.geteuid() == 0 else ()
    proc = subprocess.Popen(  # noqa: S603  # a fixed Debian tool on loopback
        [
            tool("smtp-sink"),
            *user,
            "-d",
            f"{dump_dir}/%H%M%S.",
            *extra,
            f"127.0.0.1:{port}",
            str(backlog),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            break
        time.sleep(0.05)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def dumped(dump_dir: Path) -> list[Path]:
    """Messages smtp-sink has written so far."""
    return sorted(p for p in dump_dir.iterdir() if p.is_file())
