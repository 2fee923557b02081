"""The embedded upstream: delivered mail lands as files in a maildir a newcomer can open.

Delivery follows the maildir protocol (write into ``tmp/``, fsync, rename into ``new/``), so
a file in ``new/`` is always complete and a crash never leaves half a message there; 250 is
only returned after the rename and the directory fsync.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

from sendguard.model import Envelope, Reply


class MaildirUpstream:
    """Writes each message to ``DIR/new/`` with ``Return-Path`` and ``X-Original-To`` on top."""

    supports_8bitmime = True
    supports_smtputf8 = True

    def __init__(self, root: Path) -> None:
        self.root = root
        self._counter = 0

    async def send(self, envelope: Envelope, data: bytes, /) -> Reply:
        """Deliver one message to every envelope recipient as one file."""
        self._counter += 1
        name = f"{time.time_ns()}.P{os.getpid()}Q{self._counter}.{socket.gethostname()}"
        try:
            await asyncio.to_thread(self._write, name, _trace_headers(envelope) + data)
        except OSError as exc:
            return Reply(451, f"4.3.0 maildir not writable: {exc.strerror or exc}")
        return Reply(250, f"2.0.0 Ok: delivered to maildir as {name}")

    def _write(self, name: str, data: bytes) -> None:
        for sub in ("tmp", "new", "cur"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        tmp = self.root / "tmp" / name
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, self.root / "new" / name)
        fd = os.open(self.root / "new", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    async def close(self) -> None:
        """Nothing to close: every delivery is a complete file."""


def _trace_headers(envelope: Envelope) -> bytes:
    """The envelope as a local delivery agent records it (the headers are not in the original)."""
    rcpts = ", ".join(envelope.rcpt_tos)
    return f"Return-Path: <{envelope.mail_from}>\r\nX-Original-To: {rcpts}\r\n".encode()
