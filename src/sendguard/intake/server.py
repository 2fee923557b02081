"""Listening sockets in our own event loop (not aiosmtpd's threaded Controller).

Each listener is ``loop.create_server`` with an aiosmtpd `SMTP` protocol per connection.
`Intake` tracks live connections so a SIGTERM can stop accepting, let transactions in
flight finish within a bound, then close what is left with 421.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP

from sendguard.intake import replies
from sendguard.intake.auth import Identity
from sendguard.settings import Listener

log = structlog.get_logger(__name__)


class RelaySMTP(SMTP):
    """aiosmtpd's protocol that registers with `Intake` and closes a pass-through session."""

    def __init__(self, intake: Intake, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._intake = intake

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._intake.connections.add(self)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._intake.connections.discard(self)
        identity = self.session.auth_data if self.session else None
        if isinstance(identity, Identity) and identity.upstream is not None:
            task = asyncio.get_running_loop().create_task(identity.upstream.close())
            self._intake.background.add(task)
            task.add_done_callback(self._intake.background.discard)
        super().connection_lost(exc)

    @property
    def busy(self) -> bool:
        """True while a DATA transaction is being handled (between DATA and the reply)."""
        return bool(self.envelope is not None and self.envelope.content is not None)


class Intake:
    """All listeners of one relay process."""

    def __init__(self, factory: Callable[[Intake], RelaySMTP], *, reuse_port: bool = False) -> None:
        self._factory = factory
        self._reuse_port = reuse_port
        self.servers: list[asyncio.Server] = []
        self.connections: set[RelaySMTP] = set()
        self.background: set[asyncio.Task[None]] = set()

    async def start(self, listeners: tuple[Listener, ...]) -> list[tuple[str, int]]:
        """Bind every listener; returns the bound (host, port) pairs (port 0 is resolved)."""
        loop = asyncio.get_running_loop()
        bound: list[tuple[str, int]] = []
        for listener in listeners:
            server = await loop.create_server(
                lambda: self._factory(self),
                listener.host,
                listener.port,
                reuse_port=self._reuse_port or None,
                family=socket.AF_INET6 if ":" in listener.host else socket.AF_INET,
            )
            self.servers.append(server)
            host, port = server.sockets[0].getsockname()[:2]
            bound.append((host, port))
            log.info("listening", address=f"{host}:{port}")
        return bound

    async def stop(self, grace: float) -> None:
        """Stop accepting; wait up to `grace` s for busy transactions; then close with 421."""
        for server in self.servers:
            server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        # Polling, not an Event: "busy" is aiosmtpd's state, which signals nothing.
        while any(c.busy for c in self.connections) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            with contextlib.suppress(Exception):
                transport = conn.transport
                if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
                    transport.write(f"{replies.SHUTTING_DOWN}\r\n".encode())
                    transport.close()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), timeout=1)
        if self.background:
            await asyncio.gather(*self.background, return_exceptions=True)


def tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """Server context for STARTTLS (TLS 1.2+), or None when no certificate is configured."""
    if not cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx
