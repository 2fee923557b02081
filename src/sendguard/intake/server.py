"""Listening sockets in our own event loop (not aiosmtpd's threaded Controller).

Each listener is ``loop.create_server`` with an aiosmtpd `SMTP` protocol per connection.
`Intake` tracks live connections and the messages in flight so a SIGTERM can stop
accepting, let transactions in flight finish within a bound, then close what is left
with 421.

Timeouts mean what they say:

- `timeout` (``SMTP_TIMEOUT``) is idle time: any data from the client resets it, so a slow
  upload is never cut while bytes keep arriving; it does not run while the client waits for
  us. A client silent for that long gets ``421 4.4.2`` and a `client_timeout` event.
- `reply_deadline` (``REPLY_DEADLINE``) bounds the time from the final dot to the reply,
  below the client's own 10 minutes (RFC 5321 §4.5.3.2.6). If inspection or the upstream is
  not done by then, the client gets ``451 4.4.2`` and the message goes on in the background:
  it is sent upstream only if it had already been committed (`sendguard.pipeline`), and its
  one `transaction` event says what the client got. A client that hangs up while its message
  is processed does not cancel it either (``client_gone`` in the event).

Two costs of aiosmtpd are avoided on the hot path (profiled in docs/benchmarks.md), with
the same replies and the same bytes: each connection's protocol is a copy of one prototype
instead of a fresh `SMTP.__init__` (which introspects the handler with `inspect.getmembers`,
~1.5 ms per connection; `RelaySMTP.clone` says what is made afresh), and DATA is read in
C-level searches instead of one coroutine step per line (`sendguard.intake.data`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import socket
import ssl
import uuid
from collections.abc import Callable, Iterator
from email.errors import HeaderParseError
from typing import Any, AnyStr

import structlog
from aiosmtpd.smtp import MISSING, SMTP, syntax
from aiosmtpd.smtp import Envelope as SmtpEnvelope

from sendguard import compat, replies
from sendguard.intake.access import in_networks, peer_address
from sendguard.intake.auth import Identity
from sendguard.intake.data import read_data
from sendguard.intake.forward import ClientAttributes, IPAddress
from sendguard.intake.spool import Spool, SpooledMessage
from sendguard.model import IPNetwork, Listener
from sendguard.pipeline import ClientSide

log = structlog.get_logger(__name__)
_transactions = structlog.get_logger("sendguard.transaction")

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"  # RFC 5322 §3.2.3
_SIMPLE_PATH = re.compile(rf"<({_ATEXT}(?:\.{_ATEXT})*@{_ATEXT}(?:\.{_ATEXT})*)>")
"""The common MAIL/RCPT path: an angle-bracketed dot-atom addr-spec, ASCII only."""
_CANCEL_BOUND = 5.0
"""Seconds a shutdown spends cancelling the messages still in flight after the grace."""


def _command_limits() -> collections.defaultdict[str, int]:
    """aiosmtpd's per-command line limits as a fresh connection starts them: 512 each."""
    return collections.defaultdict(lambda: SMTP.command_size_limit)


class RelayEnvelope(SmtpEnvelope):
    """aiosmtpd's per-transaction envelope, with the client's side of the transaction (read by
    the handler, which hands it to the pipeline)."""

    def __init__(self) -> None:
        super().__init__()
        self.client_side = ClientSide()
        self.spooled: SpooledMessage | None = None
        """The message, when it was big enough to be spooled (`content` is then empty)."""
        self.xforward: ClientAttributes | None = None
        """This transaction's XFORWARD attributes (reset with the envelope: RSET, DATA, EHLO)."""


class RelaySMTP(SMTP):
    """aiosmtpd's protocol that registers with `Intake`, keeps its timeouts meaningful and
    its limits its own, and closes a pass-through session."""

    def __init__(
        self,
        intake: Intake,
        *args: Any,
        reply_deadline: float = 540.0,
        spool: Spool | None = None,
        forwarders: tuple[IPNetwork, ...] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._intake = intake
        self.reply_deadline = reply_deadline
        self.spool = spool
        self.forwarders = forwarders
        """Hosts (Postfix) allowed to send XFORWARD and XCLIENT (``SENDGUARD_XFORWARD_HOSTS``)."""
        self._start_connection_state()

    def _start_connection_state(self) -> None:
        """The state of one connection that `SMTP.__init__` does not (re)create per instance.

        aiosmtpd keeps `command_size_limits` on the class: every EHLO of every connection adds
        36 bytes to MAIL's limit for the life of the process, and any `SMTP()` built
        elsewhere (a test upstream) resets it for all. Each connection has its own here.
        """
        self.command_size_limits = _command_limits()
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._phase = "command"
        self._last_data = 0.0
        self._idle_limit = float(self._timeout_duration)
        self._timed_out = False
        self._batch: list[bytes] | None = None
        self.xclient: ClientAttributes | None = None
        """This session's XCLIENT attributes (kept until the connection ends)."""
        self.session_id = ""
        """Set when the client connects; bound in structlog's contextvars for the session."""

    def clone(self) -> RelaySMTP:
        """A new, unconnected protocol in the state a fresh `RelaySMTP(...)` starts in.

        What `SMTP.__init__` derives from its arguments and the handler is the same for every
        connection and is shared read-only; the stream reader, the methods bound to the
        instance and every piece of per-connection state are made afresh
        (tests/unit/intake/test_server.py compares a clone with a freshly built protocol).
        """
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        compat.rebind_commands(new, self)
        new._start_connection_state()
        return new

    def _create_envelope(self) -> RelayEnvelope:
        return RelayEnvelope()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's own address parsing, without the `typing.Protocol` class it defines on
        every call (~50 µs per MAIL and per RCPT: 5 ms for a 100-recipient message)."""
        if not arg:
            return "", ""
        simple = _SIMPLE_PATH.match(arg)
        if simple is not None:
            # `<dot-atom@dot-atom>` and then nothing, or blanks and no comment: what the email
            # tokenizer returns for it (~60 µs a call, 6 ms for a mass mail's 100 RCPTs),
            # computed directly (tests/unit/intake/test_getaddr.py compares the two).
            addr, rest = simple.group(1), arg[simple.end() :]
            stripped = rest.lstrip(" \t")
            if (not rest or stripped != rest) and not stripped.startswith("("):
                localpart = addr.rpartition("@")[0]
                if self.local_part_limit and len(localpart) > self.local_part_limit:
                    return None, None
                return addr, stripped
        return self._tokenized(arg)

    def _tokenized(self, arg: str) -> tuple[str | None, str | None]:
        """`_getaddr` by the email package's RFC 5322 tokenizer, as aiosmtpd parses."""
        address: Any  # email's token types (AngleAddr or AddrSpec) both carry .addr_spec
        try:
            if arg.lstrip().startswith("<"):
                address, rest = compat.get_angle_addr(arg)
            else:
                address, rest = compat.get_addr_spec(arg)
        except HeaderParseError:
            return None, None
        addr: str = address.addr_spec
        localpart = addr.rpartition("@")[0]
        if self.local_part_limit and len(localpart) > self.local_part_limit:
            return None, None
        return addr, rest

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str) -> None:
        """aiosmtpd's EHLO, which adds the SIZE and SMTPUTF8 allowances (26 + 10 octets) to
        MAIL's limit each time: the limits start afresh first, so they never grow."""
        self.command_size_limits = _command_limits()
        # aiosmtpd writes (and drains) each of the ~8 lines on its own: one write instead.
        self._batch = []
        try:
            await super().smtp_EHLO(hostname)
        finally:
            lines, self._batch = self._batch, None
        if lines:
            self._writer.write(b"".join(lines))
            await self._writer.drain()

    async def push(self, status: AnyStr) -> None:
        """aiosmtpd's push, collected instead while an EHLO reply is being built."""
        if self._batch is None:
            await super().push(status)
            return
        encoding = "utf-8" if self.enable_SMTPUTF8 else "ascii"
        line = status.encode(encoding) if isinstance(status, str) else status
        self._batch.append(line + b"\r\n")

    # ------------------------------------------------------------------ XFORWARD, XCLIENT

    @syntax("XFORWARD attribute=value ...")
    async def smtp_XFORWARD(self, arg: str | None) -> None:
        """Postfix's XFORWARD (`sendguard.intake.forward`): the handler checks and parses, the
        attributes live on this transaction's envelope."""
        status = await self._forward_hook("XFORWARD", arg)
        if status is not None:
            await self.push("250 2.0.0 Ok" if status is MISSING else str(status))

    @syntax("XCLIENT attribute=value ...")
    async def smtp_XCLIENT(self, arg: str | None) -> None:
        """Postfix's XCLIENT: on success the session starts again at the greeting (a new
        EHLO is needed, any transaction is gone) with the attributes kept for the session."""
        status = await self._forward_hook("XCLIENT", arg)
        if status is None:
            return
        if status is not MISSING:
            await self.push(str(status))
            return
        assert self.session is not None
        compat.end_transaction(self)  # what RSET does: a fresh envelope
        self.session.host_name = None  # HELO/EHLO again
        self.session.extended_smtp = False
        self.command_size_limits = _command_limits()
        await self.push(f"220 {self.hostname} {self.__ident__}")

    async def _forward_hook(self, command: str, arg: str | None) -> object | None:
        """The handler's ``handle_<command>`` result (MISSING = success), or None once this
        has answered itself: 503 inside a transaction, 502 for a handler without the hook.
        Called directly (``event_handler`` is public), not through aiosmtpd's hook table."""
        if self.envelope is not None and self.envelope.mail_from is not None:
            await self.push("503 5.5.1 Error: MAIL transaction in progress")
            return None
        hook = getattr(self.event_handler, f"handle_{command}", None)
        if hook is None:
            await self.push(f"502 5.5.1 Error: {command} not implemented")
            return None
        status: object = await hook(self, self.session, self.envelope, arg or "")
        return status

    def forwarded(self) -> ClientAttributes | None:
        """Who the client is, as a forwarder said: this transaction's XFORWARD, else the
        session's XCLIENT, else None (the peer is the client)."""
        envelope = self.envelope
        xforward = envelope.xforward if isinstance(envelope, RelayEnvelope) else None
        return xforward or self.xclient

    def client_address(self) -> IPAddress | None:
        """The client's address for the policy and the logs: the forwarded ADDR when XFORWARD
        was given (never mixed with the session's), XCLIENT's ADDR, else the peer's."""
        envelope = self.envelope
        if isinstance(envelope, RelayEnvelope) and envelope.xforward is not None:
            return envelope.xforward.addr
        if self.xclient is not None and self.xclient.addr is not None:
            return self.xclient.addr
        return peer_address(self.session.peer if self.session else None)

    def via(self) -> IPAddress | None:
        """The forwarder the client's facts came through (logged beside them), or None."""
        if self.forwarded() is None:
            return None
        return peer_address(self.session.peer if self.session else None)

    def from_forwarder(self) -> bool:
        """The TCP peer is a configured forwarder (its own address never vouches for mail)."""
        peer = peer_address(self.session.peer if self.session else None)
        return in_networks(peer, self.forwarders)

    def may_forward(self) -> bool:
        """Whether XFORWARD/XCLIENT are allowed now: checked against the current client
        address, so after ``XCLIENT ADDR=`` only a forwarder address may go on (as Postfix)."""
        current = self.xclient.addr if self.xclient and self.xclient.addr else None
        if current is None:
            return self.from_forwarder()
        return in_networks(current, self.forwarders)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA, with the message read by `read_data` and the reply due within
        `reply_deadline` of the final dot."""
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
        self._phase = "data"
        try:
            content, refusal = await read_data(self._reader, self.data_size_limit, self.spool)
        except asyncio.CancelledError:
            if not self._timed_out:
                log.info("client_gone", client=self._client(), phase="data")
            self._writer.close()  # the connection was reset during DATA
            raise
        finally:
            self._phase = "command"
        if refusal is not None:
            _log_refused(self, refusal, size=None)
            compat.end_transaction(self)
            await self.push(refusal)
            return
        if isinstance(content, SpooledMessage):
            assert isinstance(self.envelope, RelayEnvelope)
            self.envelope.spooled = content  # the handler removes it when the transaction ends
            content = b""
        self.envelope.content = self.envelope.original_content = content
        status = await self._answer_in_time()
        await self.push(status)

    async def _answer_in_time(self) -> str:
        """Run the DATA hook as a task of its own and return its reply, or 451 at the
        deadline. Neither the deadline nor a client that hangs up cancels the task: its
        `ClientSide` tells the pipeline, which commits nothing for a client no longer waiting
        and logs the one `transaction` event."""
        envelope = self.envelope
        assert isinstance(envelope, RelayEnvelope)  # `_create_envelope` makes every one
        client = envelope.client_side
        task = self.loop.create_task(self._handle_hooks["DATA"](self, self.session, envelope))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        self._intake.track(task, client)
        self._timeout_handle.cancel()  # type: ignore[union-attr]  # the client waits for us
        try:
            await asyncio.wait({task}, timeout=self.reply_deadline)
        except asyncio.CancelledError:
            client.gone = True
            log.info(
                "client_gone",
                client=self._client(),
                phase="processing",
                transaction_id=client.transaction_id,
            )
            task.add_done_callback(_report_failure)
            raise
        ended = task.done() and not task.cancelled() and task.exception() is None
        if ended and not client.transaction_id and str(task.result())[:1] in ("4", "5"):
            # Refused by the handler before the pipeline (bare CR/LF, a long line): the
            # transaction still gets its event.
            content = envelope.original_content or b""
            size = envelope.spooled.size if envelope.spooled else len(content)
            _log_refused(self, str(task.result()), size=size)
        compat.end_transaction(self)
        self._reset_timeout()
        if task.done():
            status = task.result()
            return "250 OK" if status is MISSING else str(status)
        client.answered = (
            replies.with_reference(replies.REPLY_DEADLINE, client.transaction_id)
            if client.transaction_id
            else replies.REPLY_DEADLINE
        )
        log.warning(
            "reply_deadline_exceeded",
            client=self._client(),
            transaction_id=client.transaction_id,
            deadline=self.reply_deadline,
            committed=client.committed,
        )
        task.add_done_callback(_report_failure)
        return str(client.answered)

    # ------------------------------------------------------------------ idle timeout

    def data_received(self, data: bytes) -> None:
        """Every byte from the client counts as activity (the idle timer reads the time)."""
        self._last_data = self.loop.time()
        super().data_received(data)

    def _reset_timeout(self, duration: float | None = None) -> None:
        """aiosmtpd calls this on connect and after each command; the timer re-arms lazily."""
        self._idle_limit = duration or self._timeout_duration
        self._last_data = self.loop.time()
        due = self._last_data + self._idle_limit
        handle = self._timeout_handle
        if handle is None or handle.cancelled() or handle.when() > due:
            if handle is not None:
                handle.cancel()
            self._timeout_handle = self.loop.call_at(due, self._timeout_cb)

    def _timeout_cb(self) -> None:
        remaining = self._last_data + self._idle_limit - self.loop.time()
        if remaining > 0.001:
            self._timeout_handle = self.loop.call_later(remaining, self._timeout_cb)
            return
        transport = self.transport
        if not isinstance(transport, asyncio.WriteTransport) or transport.is_closing():
            return
        self._timed_out = True
        event = log.warning if self._phase == "data" else log.info
        event("client_timeout", client=self._client(), phase=self._phase, idle=self._idle_limit)
        transport.write(f"{replies.IDLE_TIMEOUT}\r\n".encode())
        transport.close()

    def _client(self) -> str:
        return str(self.client_address() or "")

    # ------------------------------------------------------------------ connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._intake.connections.add(self)
        self.session_id = uuid.uuid4().hex[:12]
        # aiosmtpd starts the session's task here, and a task copies the context it is
        # created in: every event of the session (its commands, the DATA hook and pipeline
        # tasks it starts, the idle timer it arms) carries `session_id`. This callback runs
        # in the event loop's context, shared by every connection, so it is reset at once.
        with _session_context(self.session_id):
            super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        with _session_context(self.session_id):
            self._lost(exc)

    def _lost(self, exc: Exception | None) -> None:
        self._intake.connections.discard(self)
        identity = self.session.auth_data if self.session else None
        if isinstance(identity, Identity) and identity.upstream is not None:
            # Closed once this connection's messages in flight are done with it.
            task = asyncio.get_running_loop().create_task(
                _close_after(set(self._in_flight), identity.upstream)
            )
            self._intake.background.add(task)
            task.add_done_callback(self._intake.background.discard)
        super().connection_lost(exc)

    @property
    def busy(self) -> bool:
        """True while a message of this connection is being inspected and delivered."""
        return bool(self._in_flight)


@contextlib.contextmanager
def _session_context(session_id: str) -> Iterator[None]:
    """`session_id` bound in structlog's contextvars inside the block, and only there."""
    tokens = structlog.contextvars.bind_contextvars(session_id=session_id)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def _log_refused(conn: RelaySMTP, reply: str, *, size: int | None) -> None:
    """The `transaction` event of a message the intake refused itself (the pipeline logs the
    others), with the same fields."""
    envelope, session = conn.envelope, conn.session
    identity = session.auth_data if session is not None else None
    code = int(reply[:3]) if reply[:3].isdigit() else None
    _transactions.info(
        "transaction",
        transaction_id=uuid.uuid4().hex[:16],
        client=conn._client(),
        via=str(conn.via()) if conn.via() is not None else None,
        auth_user=identity.login if isinstance(identity, Identity) else None,
        mail_from=envelope.mail_from if envelope is not None else None,
        rcpt_count=len(envelope.rcpt_tos) if envelope is not None else 0,
        size=size,
        action="reject",
        rule="intake",
        warned=[],
        findings=[],
        reply_code=code,
        reply=reply[4:124],
        client_reply_code=code,
        client_gone=False,
        duration_ms=None,
    )


async def _close_after(tasks: set[asyncio.Task[Any]], upstream: Any) -> None:
    if tasks:
        await asyncio.wait(tasks)
    await upstream.close()


def _report_failure(task: asyncio.Task[Any]) -> None:
    """A DATA hook nobody awaits any more: its failure is logged, never lost."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("internal_error", error=type(error).__name__, detail=str(error)[:200])


class Intake:
    """All listeners of one relay process."""

    def __init__(self, factory: Callable[[Intake], RelaySMTP], *, reuse_port: bool = False) -> None:
        self._factory = factory
        self._prototype: RelaySMTP | None = None
        self._reuse_port = reuse_port
        self.servers: list[asyncio.Server] = []
        self.connections: set[RelaySMTP] = set()
        self.in_flight: dict[asyncio.Task[Any], ClientSide] = {}
        """Messages between their final dot and the end of their processing."""
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

    def track(self, task: asyncio.Task[Any], client: ClientSide) -> None:
        """A message in flight: SIGTERM waits for it (within the grace), then cancels it."""
        self.in_flight[task] = client
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.in_flight.pop(task, None)

    def _protocol(self) -> RelaySMTP:
        """A protocol for a new connection: a copy of the prototype built once per loop."""
        if self._prototype is None:
            self._prototype = self._factory(self)
        return self._prototype.clone()

    async def stop(self, grace: float) -> None:
        """Stop accepting; wait up to `grace` s for messages in flight; then close with 421.

        Messages still in flight after that see their client gone (nothing more is committed)
        and are cancelled; each still logs its `transaction` event.
        """
        for server in self.servers:
            server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.in_flight and (remaining := deadline - loop.time()) > 0:
            await asyncio.wait(set(self.in_flight), timeout=remaining)
        for client in self.in_flight.values():
            if client.waiting:
                client.answered = replies.SHUTTING_DOWN
        for conn in list(self.connections):
            with contextlib.suppress(Exception):
                transport = conn.transport
                if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
                    transport.write(f"{replies.SHUTTING_DOWN}\r\n".encode())
                    transport.close()
        # Repeated: on Python 3.11 a cancellation can be absorbed by a timeout expiring.
        until = loop.time() + _CANCEL_BOUND
        while self.in_flight and loop.time() < until:
            for task in list(self.in_flight):
                task.cancel()
            await asyncio.wait(set(self.in_flight), timeout=0.5)
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
