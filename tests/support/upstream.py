"""A real SMTP upstream for tests: aiosmtpd on 127.0.0.1 port 0, recording what it receives.

Faults are injected per test (`fail_next`, `hang_next`, `disconnect_after_data`), so every
path of the relay's before-queue semantics can be exercised against a real server, not a
mock. Optional STARTTLS and AUTH make it stand in for Microsoft 365 or Google Workspace.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any, Literal

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.tls import CertPair

Stage = Literal["MAIL", "RCPT", "DATA"]


@dataclass(frozen=True, slots=True)
class Received:
    """One message as the upstream got it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    mail_options: tuple[str, ...]
    auth_user: str | None


@dataclass(slots=True)
class _Fault:
    stage: Stage
    reply: str | None = None
    hang: float = 0.0
    rcpt: str | None = None


@dataclass
class _Handler:
    owner: RecordingUpstream
    faults: list[_Fault] = field(default_factory=list)

    def _fault(self, stage: Stage, rcpt: str | None = None) -> _Fault | None:
        for fault in self.faults:
            if fault.stage == stage and (fault.rcpt is None or fault.rcpt == rcpt):
                self.faults.remove(fault)
                return fault
        return None

    async def _apply(self, stage: Stage, rcpt: str | None = None) -> str | None:
        fault = self._fault(stage, rcpt)
        if fault is None:
            return None
        if fault.hang:
            await asyncio.sleep(fault.hang)
        return fault.reply

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if self.owner.pipelining:  # aiosmtpd reads commands in order: it can, it never says so
            responses[-1:-1] = ["250-PIPELINING"]
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.owner.commands.append(f"MAIL {address} {' '.join(options)}".strip())
        if (reply := await self._apply("MAIL")) is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.owner.commands.append(f"RCPT {address}")
        if (reply := await self._apply("RCPT", address)) is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        fault = self._fault("DATA")
        if fault is not None and fault.hang:
            await asyncio.sleep(fault.hang)
        if fault is not None and fault.reply == "disconnect":
            self._record(session, envelope)
            if server.transport is not None:
                server.transport.close()
            return "421 closing"
        if fault is not None and fault.reply is not None:
            return fault.reply
        self._record(session, envelope)
        return f"250 2.0.0 Ok: queued as R{len(self.owner.messages)}"

    def _record(self, session: Session, envelope: Envelope) -> None:
        data = envelope.original_content or b""
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        self.owner.messages.append(
            Received(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=data,
                mail_options=tuple(envelope.mail_options),
                auth_user=login,
            )
        )
        self.owner.arrived.set()


class RecordingUpstream:
    """Start with ``async with RecordingUpstream() as up:``; then ``up.url`` is its address."""

    def __init__(
        self,
        *,
        tls: CertPair | None = None,
        users: dict[str, str] | None = None,
        smtputf8: bool = True,
        pipelining: bool = False,
    ) -> None:
        self.pipelining = pipelining
        """Offer PIPELINING (RFC 2920) in the EHLO reply."""
        self.messages: list[Received] = []
        self.commands: list[str] = []
        self.connections = 0
        """Sessions opened to this upstream (to check that the relay reuses them)."""
        self.open_sessions = 0
        self.peak_sessions = 0
        """Most sessions open at the same time (to check the relay's connection cap)."""
        self.arrived = asyncio.Event()
        self.port = 0
        self._tls = tls
        self._users = users
        self._smtputf8 = smtputf8
        self._handler = _Handler(self)
        self._server: asyncio.base_events.Server | None = None
        self._protocols: list[SMTP] = []

    @property
    def url(self) -> str:
        """``smtp://`` or ``smtp+starttls://`` URL of this server (no credentials)."""
        scheme = "smtp+starttls" if self._tls else "smtp"
        return f"{scheme}://127.0.0.1:{self.port}"

    def fail_next(self, stage: Stage, reply: str, *, rcpt: str | None = None) -> None:
        """The next MAIL/RCPT/DATA (optionally only for `rcpt`) gets `reply` instead of 250."""
        self._handler.faults.append(_Fault(stage=stage, reply=reply, rcpt=rcpt))

    def hang_next(self, stage: Stage, seconds: float) -> None:
        """The next `stage` command waits `seconds` before answering (a slow or hung upstream)."""
        self._handler.faults.append(_Fault(stage=stage, hang=seconds))

    def disconnect_after_data(self) -> None:
        """The next message is received, then the connection drops before the reply to the dot."""
        self._handler.faults.append(_Fault(stage="DATA", reply="disconnect"))

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and self._users is not None
            and self._users.get(auth_data.login.decode()) == auth_data.password.decode()
        )
        # handled=False: aiosmtpd then answers 535 itself (its default stays silent).
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def _factory(self) -> SMTP:
        self.connections += 1
        protocol = SMTP(
            self._handler,
            hostname="upstream.test",
            decode_data=False,
            enable_SMTPUTF8=self._smtputf8,
            tls_context=self._tls.server_context() if self._tls else None,
            require_starttls=self._tls is not None,
            authenticator=self._authenticate if self._users is not None else None,
            auth_required=self._users is not None,
            auth_require_tls=self._tls is not None,
        )
        self._protocols.append(protocol)
        self.open_sessions += 1
        self.peak_sessions = max(self.peak_sessions, self.open_sessions)
        lost = protocol.connection_lost

        def connection_lost(exc: Exception | None) -> None:
            self.open_sessions -= 1
            lost(exc)

        protocol.connection_lost = connection_lost  # type: ignore[method-assign,assignment]
        return protocol

    async def __aenter__(self) -> RecordingUpstream:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._factory, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is None:
            return
        self._server.close()
        # Drop this server's sessions still open (a hanging fault, a client's pooled
        # session): on Python 3.11 wait_closed() waits for every connection to detach.
        for protocol in self._protocols:
            task = getattr(protocol, "_handler_coroutine", None)
            if task is not None:
                task.cancel()
            if isinstance(protocol.transport, asyncio.WriteTransport):
                protocol.transport.abort()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), timeout=5)

    async def wait_for(
        self,
        count: int,
        timeout: float = 10.0,  # noqa: ASYNC109  # a test helper's bound, not an API timeout
    ) -> list[Received]:
        """Wait until `count` messages have arrived."""
        async with asyncio.timeout(timeout):
            while len(self.messages) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.messages
