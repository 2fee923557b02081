"""Listening sockets in our own event loop (not aiosmtpd's threaded Controller).

Each listener is ``loop.create_server`` with an aiosmtpd `SMTP` protocol per connection.
`Intake` tracks live connections so a SIGTERM can stop accepting, let transactions in
flight finish within a bound, then close what is left with 421.

Two costs of aiosmtpd are avoided on the hot path (profiled in docs/benchmarks.md), with
the same replies and the same bytes: each connection's protocol is a copy of one prototype
instead of a fresh `SMTP.__init__` (which introspects the handler with `inspect.getmembers`,
~1.5 ms per connection), and DATA is read in one C-level search for CRLF.CRLF instead of
one coroutine step per line (`sendguard.intake.data`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable
from email._header_value_parser import get_addr_spec, get_angle_addr
from email.errors import HeaderParseError
from typing import Any

import structlog
from aiosmtpd.smtp import MISSING, SMTP, syntax

from sendguard.intake import replies
from sendguard.intake.auth import Identity
from sendguard.intake.data import read_data
from sendguard.settings import Listener

log = structlog.get_logger(__name__)


class RelaySMTP(SMTP):
    """aiosmtpd's protocol that registers with `Intake` and closes a pass-through session."""

    def __init__(self, intake: Intake, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._intake = intake

    def clone(self) -> RelaySMTP:
        """A new, unconnected protocol in the state this (never connected) one was built in.

        What `SMTP.__init__` derives from the handler is the same for every connection; only
        the stream reader and the methods bound to the instance are made afresh.
        """
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        asyncio.StreamReaderProtocol.__init__(
            new,
            asyncio.StreamReader(loop=self.loop, limit=self.line_length_limit),
            client_connected_cb=new._cb_client_connected,
            loop=self.loop,
        )
        new._smtp_methods = {
            name: getattr(new, method.__name__) for name, method in self._smtp_methods.items()
        }
        new._auth_methods = {
            name: type(attr)(getattr(new, attr.method.__name__), True) if attr.is_builtin else attr
            for name, attr in self._auth_methods.items()
        }
        return new

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's own address parsing, without the `typing.Protocol` class it defines on
        every call (~50 µs per MAIL and per RCPT: 5 ms for a 100-recipient message)."""
        if not arg:
            return "", ""
        address: Any  # email's token types (AngleAddr or AddrSpec) both carry .addr_spec
        try:
            if arg.lstrip().startswith("<"):
                address, rest = get_angle_addr(arg)
            else:
                address, rest = get_addr_spec(arg)
        except HeaderParseError:
            return None, None
        addr: str = address.addr_spec
        localpart = addr.rpartition("@")[0]
        if self.local_part_limit and len(localpart) > self.local_part_limit:
            return None, None
        return addr, rest

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA, with the message read by `read_data` (same replies, same bytes)."""
        if self._decode_data or "DATA" not in self._handle_hooks:
            await super().smtp_DATA(arg)  # not how sendguard runs; kept correct anyway
            return
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            content, refusal = await read_data(
                self._reader, self.data_size_limit, self.line_length_limit
            )
        except asyncio.CancelledError:
            self._writer.close()  # the connection was reset during DATA
            raise
        if refusal is not None:
            await self.push(refusal)
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is MISSING else status)

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

    in_data = False
    """Set by the handler while a message is between the end of DATA and its reply."""

    @property
    def busy(self) -> bool:
        """True while a message is being inspected and delivered (SIGTERM waits for it)."""
        return self.in_data


class Intake:
    """All listeners of one relay process."""

    def __init__(self, factory: Callable[[Intake], RelaySMTP], *, reuse_port: bool = False) -> None:
        self._factory = factory
        self._prototype: RelaySMTP | None = None
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
                self._protocol,
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

    def _protocol(self) -> RelaySMTP:
        """A protocol for a new connection: a copy of the prototype built once per loop."""
        if self._prototype is None:
            self._prototype = self._factory(self)
        return self._prototype.clone()

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
