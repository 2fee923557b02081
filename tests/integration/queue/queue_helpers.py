"""Helpers for the queue integration tests: store URLs, numbered messages, a client, waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import aiosmtplib

from sendguard.queue.auditkey import AuditKey, key_path, load_or_create_key


@contextmanager
def postgres_or_sqlite(kind: str, tmp_path: Path) -> Iterator[str]:
    """A fresh store URL of the given kind."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'queue.db'}"
        return
    from tests.support.store import postgres_schema

    with postgres_schema() as url:
        yield url


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


def relay_key_file(url: str, cwd: Path) -> Path:
    """Where `sendguard serve` run in `cwd` keeps the audit key of the store at `url`."""
    path = key_path(url, None)
    return path if path.is_absolute() else cwd / path


def relay_audit_key(url: str, cwd: Path) -> AuditKey:
    """The relay's audit key (created now if the relay has not run yet): whatever writes to
    its keyed audit log besides the relay (a test's review decisions) needs it too."""
    key, _ = load_or_create_key(relay_key_file(url, cwd))
    return key
