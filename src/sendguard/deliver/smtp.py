"""The real upstream: aiosmtplib sessions to the organisation's outgoing server.

Before-queue proxy semantics (Postfix SMTPD_PROXY_README): the relay answers its client
with the upstream's own reply, so a 250 means the upstream took the message. Every failure
becomes a `Reply` to mirror, never an exception: a refusal is mirrored as is, a connection
problem or timeout becomes 451, so the client keeps the message and retries.

Recipients are all-or-nothing: if the upstream refuses any recipient the transaction is
reset and the refusal mirrored, so no recipient gets a copy the client believes failed.
Sessions are reused; a session is returned to the pool only after a clean transaction, so
a cancelled or failed exchange can never leave a half-written DATA on a pooled connection.

At most `SmtpOptions.max_connections` transactions run at once per process (live mail,
released mail and notices alike), so a burst of big messages cannot open unbounded sessions
(and buffers) to the upstream. Waiters get a session in arrival order; one that waits longer
than `SmtpOptions.timeout` gets 451 4.4.5 and the client retries later.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import aiosmtplib
import structlog
from aiosmtplib.email import quote_address
from pydantic import SecretStr

from sendguard import compat, replies
from sendguard.deliver.target import UpstreamTarget
from sendguard.errors import (
    StaleSession,
    UpstreamCertificate,
    UpstreamError,
    UpstreamLogin,
    UpstreamTimeout,
)
from sendguard.model import Envelope, Reply
from sendguard.parse.lines import has_bare_line_ending

if TYPE_CHECKING:
    from aiosmtplib.protocol import SMTPProtocol

log = structlog.get_logger(__name__)

_CARRIED_OPTIONS = ("BODY=", "SMTPUTF8")


@dataclass(frozen=True, slots=True)
class SmtpOptions:
    """Connection settings shared by every session to one upstream."""

    local_hostname: str
    timeout: float = 60.0
    data_timeout: float = 600.0
    pool_size: int = 4
    ca_file: Path | None = None
    max_connections: int = 10
    """Upstream transactions (so sessions) at once; waiters beyond it queue, first come first
    served, for at most `timeout` seconds."""


@dataclass(slots=True)
class _Capabilities:
    known: bool = False
    eightbit: bool = True
    smtputf8: bool = False
    extra: set[str] = field(default_factory=set)


class Busy(Exception):
    """No upstream connection came free within the wait deadline."""


class Slots:
    """A FIFO counting limit: `hold()` waits its turn (strictly in arrival order, no barging)
    for at most `wait` seconds, then raises `Busy`."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @contextlib.asynccontextmanager
    async def hold(self, wait: float) -> AsyncIterator[None]:
        """One slot for the duration of the block."""
        await self._acquire(wait)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, wait: float) -> None:
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        try:
            await asyncio.wait_for(asyncio.shield(turn), timeout=wait)
        except BaseException as exc:
            if turn.done() and not turn.cancelled():
                self._release()  # handed over just as we gave up: pass it on
            else:
                turn.cancel()
                self._waiters.remove(turn)
            if isinstance(exc, TimeoutError):
                raise Busy from exc
            raise

    def _release(self) -> None:
        # The slot goes straight to the longest waiter, so a newcomer cannot overtake it.
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.in_use -= 1


def _busy_reply(wait: float) -> Reply:
    return Reply(451, f"4.4.5 upstream busy: no connection free within {wait:g}s, try later")


class SmtpUpstream:
    """A pool of sessions to one SMTP upstream, authenticated with the relay's own account."""

    def __init__(self, target: UpstreamTarget, options: SmtpOptions) -> None:
        self.target = target
        self.options = options
        self._idle: list[aiosmtplib.SMTP] = []
        self._caps = _Capabilities()
        self.slots = Slots(options.max_connections)
        """Every session this process opens to the upstream holds one of these while in use."""

    @property
    def supports_8bitmime(self) -> bool:
        """Whether the upstream advertised 8BITMIME (assumed until the first session says)."""
        return self._caps.eightbit

    @property
    def supports_smtputf8(self) -> bool:
        """Whether the upstream advertised SMTPUTF8 (not assumed before a session has said)."""
        return self._caps.smtputf8

    async def probe(self) -> Reply:
        """Open one session to learn the upstream's extensions; keeps it for reuse."""
        try:
            async with self.slots.hold(self.options.timeout):
                smtp = await self._open(self.target.username, self.target.password)
                self._release(smtp)
        except Busy:
            return _busy_reply(self.options.timeout)
        except Exception as exc:  # noqa: BLE001  # any failure is reported, the relay still starts
            return _reply_for_exception(exc)
        return Reply(250, "2.0.0 upstream reachable")

    async def send(self, envelope: Envelope, data: bytes, /) -> Reply:
        """Relay one message; the reply is the upstream's, or a 4xx we made for a failure."""
        try:
            async with self.slots.hold(self.options.timeout):
                return await self._send(envelope, data)
        except Busy:
            log.warning("upstream_busy", limit=self.slots.limit, wait=self.options.timeout)
            return _busy_reply(self.options.timeout)

    async def _send(self, envelope: Envelope, data: bytes) -> Reply:
        for attempt in (1, 2):
            reused = bool(self._idle)
            try:
                smtp = (
                    self._idle.pop()
                    if reused
                    else await self._open(self.target.username, self.target.password)
                )
            except Exception as exc:  # noqa: BLE001  # mapped to a tempfail, never a 250
                return _reply_for_exception(exc)
            try:
                reply, clean = await _transaction(smtp, envelope, data, self.options)
            except StaleSession as exc:
                _discard(smtp)
                # A pooled session the upstream had already dropped fails before MAIL is
                # accepted; nothing was sent, so one retry on a fresh session is safe.
                if reused and attempt == 1:
                    continue
                return replies.reply_for(exc)
            if clean:
                self._release(smtp)
            else:
                _discard(smtp)
            return reply
        raise AssertionError("unreachable: the second attempt always returns")

    async def authenticate(self, username: str, password: str) -> PinnedUpstream | None:
        """Pass-through AUTH: log in to the upstream as the client; None if it refused."""
        secret = SecretStr(password)
        try:
            smtp = await self._open(username, secret)
        except aiosmtplib.SMTPAuthenticationError as exc:
            if exc.code < 500:
                raise  # a temporary refusal (454) says nothing about the password
            return None
        return PinnedUpstream(self, smtp, username, secret)

    async def _open(self, username: str | None, password: SecretStr | None) -> aiosmtplib.SMTP:
        smtp = aiosmtplib.SMTP(
            hostname=self.target.host,
            port=self.target.port,
            local_hostname=self.options.local_hostname,
            timeout=self.options.timeout,
            use_tls=self.target.scheme == "smtps",
            start_tls=self.target.scheme == "smtp+starttls",
            validate_certs=True,
            cert_bundle=str(self.options.ca_file) if self.options.ca_file else None,
        )
        await smtp.connect()
        try:
            if not smtp.esmtp_extensions:
                await smtp.ehlo()
            if username is not None and password is not None:
                await smtp.login(username, password.get_secret_value())
        except BaseException:
            _discard(smtp)
            raise
        self._learn(smtp)
        return smtp

    def _learn(self, smtp: aiosmtplib.SMTP) -> None:
        self._caps.known = True
        self._caps.eightbit = smtp.supports_extension("8bitmime")
        self._caps.smtputf8 = smtp.supports_extension("smtputf8")

    def _release(self, smtp: aiosmtplib.SMTP) -> None:
        if len(self._idle) < self.options.pool_size and smtp.is_connected:
            self._idle.append(smtp)
        else:
            _discard(smtp)

    async def close(self) -> None:
        """Say QUIT on every idle session."""
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_quit(s) for s in idle), return_exceptions=True)


class PinnedUpstream:
    """One client's own upstream session (pass-through AUTH): carries only that client's mail."""

    def __init__(
        self, parent: SmtpUpstream, smtp: aiosmtplib.SMTP, username: str, password: SecretStr
    ) -> None:
        self._parent = parent
        self._smtp: aiosmtplib.SMTP | None = smtp
        self.username = username
        self._password = password
        self._lock = asyncio.Lock()

    async def send(self, envelope: Envelope, data: bytes, /) -> Reply:
        """Relay through this client's session, reconnecting (and logging in again) if dropped.

        The transaction holds one of the parent's slots like any other; the logged-in session
        stays open between this client's messages (outside the cap) until it disconnects."""
        options = self._parent.options
        try:
            async with self._parent.slots.hold(options.timeout):
                return await self._send(envelope, data)
        except Busy:
            return _busy_reply(options.timeout)

    async def _send(self, envelope: Envelope, data: bytes) -> Reply:
        async with self._lock:
            try:
                if self._smtp is None or not self._smtp.is_connected:
                    self._smtp = await self._parent._open(self.username, self._password)
            except Exception as exc:  # noqa: BLE001  # mapped to a tempfail
                return _reply_for_exception(exc)
            try:
                reply, clean = await _transaction(self._smtp, envelope, data, self._parent.options)
            except StaleSession as exc:
                reply, clean = replies.reply_for(exc), False
            if not clean:
                _discard(self._smtp)
                self._smtp = None
            return reply

    async def close(self) -> None:
        """QUIT the client's session when the client disconnects."""
        if self._smtp is not None:
            await _quit(self._smtp)
            self._smtp = None


async def _transaction(
    smtp: aiosmtplib.SMTP, envelope: Envelope, data: bytes, options: SmtpOptions
) -> tuple[Reply, bool]:
    """MAIL, every RCPT, DATA. Returns the reply and whether the session is clean for reuse."""
    mail_options = [o for o in envelope.mail_options if o.upper().startswith(_CARRIED_OPTIONS)]
    utf8 = any(o.upper() == "SMTPUTF8" for o in mail_options)
    encoding = "utf-8" if utf8 else "ascii"
    refusal = _unsendable(envelope, utf8)
    if refusal is not None:
        return refusal, True  # nothing was sent: the session stays clean
    protocol = compat.data_protocol(smtp) if smtp.supports_extension("pipelining") else None
    pieces = await stuffed_pieces(data) if protocol is not None else None
    if protocol is not None and pieces is not None:
        return await _pipelined(smtp, protocol, envelope, pieces, mail_options, encoding, options)
    stage = "MAIL"
    try:
        async with _cleanup_on_cancel(smtp):
            await _forward_client(smtp, envelope)
            await smtp.mail(envelope.mail_from, options=mail_options, encoding=encoding)
            stage = "RCPT"
            for rcpt in envelope.rcpt_tos:
                await smtp.rcpt(rcpt, encoding=encoding)
            stage = "DATA"
            response = await send_data(smtp, data, options.data_timeout)
    except aiosmtplib.SMTPResponseException as exc:
        if stage == "MAIL" and exc.code == 421:
            raise StaleSession(f"upstream answered {exc.code} to MAIL") from exc
        # After a refused RCPT the transaction is reset (all-or-nothing); after a refused
        # DATA the upstream has closed the transaction itself.
        clean = await _reset(smtp) if stage != "DATA" else smtp.is_connected
        log.info("upstream_refused", stage=stage, code=exc.code)
        return Reply(exc.code, exc.message), clean
    except aiosmtplib.SMTPServerDisconnected as exc:
        if stage == "MAIL":
            raise StaleSession("upstream closed the session before MAIL") from exc
        log.warning("upstream_disconnected", stage=stage, error=str(exc))
        return Reply(451, f"4.4.2 upstream closed the connection during {stage}"), False
    except Exception as exc:  # noqa: BLE001  # anything else is a tempfail, never a 250
        log.warning("upstream_failed", stage=stage, error=type(exc).__name__)
        return _reply_for_exception(exc), False
    return Reply(response.code, response.message), True


Stage = Literal["MAIL", "RCPT", "DATA"]


async def _pipelined(
    smtp: aiosmtplib.SMTP,
    protocol: SMTPProtocol,
    envelope: Envelope,
    pieces: list[bytes],
    mail_options: list[str],
    encoding: str,
    options: SmtpOptions,
) -> tuple[Reply, bool]:
    """`_transaction` for an upstream that offers PIPELINING (RFC 2920): XFORWARD, MAIL,
    every RCPT and DATA go out in one write, and the replies are read in order.

    Every reply is judged as the one-by-one exchange judges it, in the same order, so the
    client gets the same reply: the first refusal (MAIL, then the first RCPT, then DATA)
    is mirrored, a 421 to MAIL is a stale session. What differs is only what the upstream
    saw after a refusal: the rest of the batch, which a conforming server refuses in turn
    (RCPT without MAIL, DATA without a recipient: 503/554). Recipients stay all-or-nothing:
    if DATA was nevertheless accepted (354) after a refused command, the message is never
    sent — the session is dropped, and an SMTP server discards a transaction whose data
    did not end with the final dot (RFC 5321 §3.8). One round trip for the envelope instead
    of one per command: for a 100-recipient mass mail, 2 instead of 103.
    """
    commands: list[bytes] = []
    xforward = _xforward_command(smtp, envelope)
    if xforward is not None:
        commands.append(xforward)
    opts = b"".join(b" " + o.encode("ascii") for o in mail_options)
    commands.append(b"MAIL FROM:" + _quoted(envelope.mail_from).encode(encoding) + opts + b"\r\n")
    commands += [b"RCPT TO:" + _quoted(r).encode(encoding) + b"\r\n" for r in envelope.rcpt_tos]
    commands.append(b"DATA\r\n")
    received: list[aiosmtplib.SMTPResponse] = []
    first = 1 if xforward is not None else 0  # the index of MAIL's reply
    try:
        async with _cleanup_on_cancel(smtp):
            await compat.ehlo_or_helo_if_needed(smtp)  # as smtp.mail() does
            await compat.execute_pipelined(protocol, commands, options.timeout, received)
            refusal = _refusal(received, first)
            if refusal is None:
                response = await compat.execute_prepared_payload(
                    protocol, pieces, options.data_timeout
                )
    except aiosmtplib.SMTPDataError as exc:  # the final reply
        log.info("upstream_refused", stage="DATA", code=exc.code)
        return Reply(exc.code, exc.message), smtp.is_connected
    except aiosmtplib.SMTPServerDisconnected as exc:
        stage = _stage(len(received) - first, len(envelope.rcpt_tos))
        if stage == "MAIL":
            raise StaleSession("upstream closed the session before MAIL") from exc
        log.warning("upstream_disconnected", stage=stage, error=str(exc))
        _discard(smtp)
        return Reply(451, f"4.4.2 upstream closed the connection during {stage}"), False
    except Exception as exc:  # noqa: BLE001  # anything else is a tempfail, never a 250
        stage = _stage(len(received) - first, len(envelope.rcpt_tos))
        log.warning("upstream_failed", stage=stage, error=type(exc).__name__)
        _discard(smtp)
        return _reply_for_exception(exc), False
    if xforward is not None and received[0].code != 250:
        log.info("upstream_xforward_refused", code=received[0].code)
    if refusal is None:
        return Reply(response.code, response.message), True
    stage, reply = refusal
    if stage == "MAIL" and reply.code == 421:
        _discard(smtp)
        raise StaleSession(f"upstream answered {reply.code} to MAIL")
    log.info("upstream_refused", stage=stage, code=reply.code)
    if received[-1].code == 354:
        # DATA was taken although the envelope was refused: drop the line rather than let
        # the recipients the upstream accepted have the message.
        _discard(smtp)
        return reply, False
    if any(r.code == 421 for r in received):
        _discard(smtp)  # the upstream is closing (aiosmtplib closes on any 421)
        return reply, False
    # After a refused DATA the upstream has closed the transaction itself; otherwise reset.
    clean = await _reset(smtp) if stage != "DATA" else smtp.is_connected
    return reply, clean


_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"  # RFC 5322 §3.2.3
_DOT_ATOM_PATH = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@{_ATEXT}(?:\.{_ATEXT})*")


def _quoted(address: str) -> str:
    """aiosmtplib's `quote_address` (what `smtp.mail`/`smtp.rcpt` send): ``<address>``.
    A dot-atom addr-spec, which its `parseaddr` returns unchanged, is bracketed directly
    (~25 µs a recipient saved); anything else takes `quote_address` itself
    (tests/unit/deliver/test_pipelining.py compares the two)."""
    if _DOT_ATOM_PATH.fullmatch(address):
        return f"<{address}>"
    return quote_address(address)


def _refusal(received: list[aiosmtplib.SMTPResponse], first: int) -> tuple[Stage, Reply] | None:
    """The first reply of the pipelined envelope that the one-by-one exchange would have
    raised on (MAIL: not 250; RCPT: neither 250 nor 251; DATA: not 354), or None."""
    mail, *rcpts, data = received[first:]
    if mail.code != 250:
        return "MAIL", Reply(mail.code, mail.message)
    for rcpt in rcpts:
        if rcpt.code not in (250, 251):
            return "RCPT", Reply(rcpt.code, rcpt.message)
    if data.code != 354:
        return "DATA", Reply(data.code, data.message)
    return None


def _stage(replies: int, recipients: int) -> Stage:
    """Which command a pipelined exchange was waiting for after `replies` replies from MAIL
    on (what the one-by-one exchange names in its reply)."""
    if replies <= 0:
        return "MAIL"
    return "RCPT" if replies <= recipients else "DATA"


def _xforward_command(smtp: aiosmtplib.SMTP, envelope: Envelope) -> bytes | None:
    """The XFORWARD line `_forward_client` sends, or None when it sends none."""
    offered = smtp.esmtp_extensions.get("xforward")
    if offered is None or not (envelope.client_address or envelope.client_helo):
        return None
    attributes = _xforward_attributes(offered, envelope)
    return b"XFORWARD " + " ".join(attributes).encode("ascii") + b"\r\n" if attributes else None


def _xforward_attributes(offered: str, envelope: Envelope) -> list[str]:
    names = set(offered.upper().split())
    values = {
        "ADDR": _xforward_addr(envelope.client_address),
        "HELO": envelope.client_helo,
        "IDENT": envelope.transaction_id,
        "SOURCE": "REMOTE",
    }
    return [
        f"{name}={_xtext(value) if value else '[UNAVAILABLE]'}"
        for name, value in values.items()
        if name in names
    ]


async def _forward_client(smtp: aiosmtplib.SMTP, envelope: Envelope) -> None:
    """Postfix's XFORWARD to an upstream that offers it (FILTER_README's re-injection
    listener): the upstream's log then names the client (``orig_client``) and sendguard's
    transaction id (``orig_queue_id``). Sent before each MAIL, as XFORWARD holds for one
    transaction; a refusal (the upstream does not authorise us) changes nothing else."""
    offered = smtp.esmtp_extensions.get("xforward")
    if offered is None or not (envelope.client_address or envelope.client_helo):
        return
    attributes = _xforward_attributes(offered, envelope)
    if not attributes:
        return
    response = await smtp.execute_command(b"XFORWARD", " ".join(attributes).encode("ascii"))
    if response.code != 250:
        log.info("upstream_xforward_refused", code=response.code)


def _xforward_addr(address: str) -> str:
    """XFORWARD's ADDR: IPv6 with its ``IPV6:`` prefix, never in brackets."""
    return f"IPV6:{address}" if ":" in address else address


def _xtext(value: str) -> str:
    """RFC 1891 xtext, within XFORWARD's 255 characters (else unavailable). A space, control
    or non-ASCII character becomes ``?`` first (XFORWARD_README note 1, as Postfix does); the
    decoder is `sendguard.intake.forward.xtext_decode`."""
    text = "".join(
        ("+2B" if c == "+" else "+3D" if c == "=" else c) if "!" <= c <= "~" else "?" for c in value
    )
    return text if len(text) <= 255 else "[UNAVAILABLE]"


def _unsendable(envelope: Envelope, utf8: bool) -> Reply | None:
    """A permanent refusal for an address that cannot go on the wire, before anything is sent.

    Intake refuses such addresses at RCPT; this is the last line, for mail accepted before
    that check or by another path (a held message released later). Without it aiosmtplib
    raises UnicodeEncodeError, which would be a 451 retried until the message expires.
    """
    for address in (envelope.mail_from, *envelope.rcpt_tos):
        if address.isascii():
            continue
        if not utf8:
            log.warning("upstream_address_not_ascii")
            return Reply(553, "5.6.7 Non-ASCII address needs SMTPUTF8 (RFC 6531)")
        try:
            address.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: bytes that were never UTF-8
            log.warning("upstream_address_not_utf8")
            return Reply(553, "5.6.7 Address is not valid UTF-8")
    return None


async def send_data(
    smtp: aiosmtplib.SMTP, data: bytes, reply_timeout: float
) -> aiosmtplib.SMTPResponse:
    """`smtp.data()`, the same bytes on the wire, without aiosmtplib's two regex passes.

    aiosmtplib turns every lone CR/LF into CRLF and doubles leading dots with regexes: ~170 ms
    of blocked event loop for a 34 MB message. Intake has already made the message CRLF-only,
    so `stuffed_pieces` does the same with `bytes.replace`, a piece at a time. Anything else
    (a bare CR or LF, an aiosmtplib without the protocol internals mirrored here) takes
    `smtp.data()` itself.
    """
    protocol = compat.data_protocol(smtp)
    pieces = await stuffed_pieces(data) if protocol is not None else None
    if protocol is None or pieces is None:
        return await smtp.data(data, timeout=reply_timeout)
    await compat.ehlo_or_helo_if_needed(smtp)  # as smtp.data() does
    try:
        return await compat.execute_prepared_data(protocol, pieces, reply_timeout)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
        smtp.close()
        raise


PIECE = 1 << 20
"""Bytes checked and stuffed between two turns of the event loop. The whole of a 34 MB
message at once (the bare-line-ending counts ~65 ms, the stuffing ~30 ms) held every other
connection of the process for ~95 ms; a megabyte at a time holds it for ~3 ms."""


async def stuffed_pieces(data: bytes, piece: int = PIECE) -> list[bytes] | None:
    """`dot_stuffed(data)` cut into pieces at line ends, or None if `data` has a bare CR or
    LF (`has_bare_line_ending`), yielding to the event loop between pieces.

    Each piece but the last ends just after a CRLF, so no CRLF (nor a line's leading dot)
    straddles two pieces: checking and stuffing them one by one gives the same answer and
    the same bytes as the whole message at once."""
    if len(data) <= piece:
        return None if has_bare_line_ending(data) else [dot_stuffed(data)]
    pieces: list[bytes] = []
    start = 0
    while start < len(data):
        found = data.find(b"\r\n", start + piece - 1)
        end = len(data) if found < 0 else found + 2
        chunk = data[start:end]
        if has_bare_line_ending(chunk):
            return None
        pieces.append(dot_stuffed(chunk))
        start = end
        await asyncio.sleep(0)  # let the other connections of this process move
    return pieces


def dot_stuffed(data: bytes) -> bytes:
    """DATA payload of CRLF-only `data` before its final dot: ends in CRLF, and every line
    that starts with "." gets another (RFC 5321 §4.5.2). Unchanged data is not copied."""
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    stuffed = data.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed


@contextlib.asynccontextmanager
async def _cleanup_on_cancel(smtp: aiosmtplib.SMTP) -> AsyncIterator[None]:
    """A transaction cancelled mid-exchange leaves the session in an unknown state: drop it."""
    try:
        yield
    except asyncio.CancelledError:
        _discard(smtp)
        raise


async def _reset(smtp: aiosmtplib.SMTP) -> bool:
    try:
        await smtp.rset()
    except Exception:  # noqa: BLE001  # a session that cannot RSET is simply not reused
        return False
    return True


def _discard(smtp: aiosmtplib.SMTP) -> None:
    with contextlib.suppress(Exception):
        smtp.close()


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    try:
        await asyncio.wait_for(smtp.quit(), timeout=5)
    except Exception:  # noqa: BLE001  # closing anyway
        _discard(smtp)


def _reply_for_exception(exc: BaseException) -> Reply:
    """A failure to reach or talk to the upstream, as a temporary reply the client can act on:
    the upstream's own words when it answered, else our reply for the failure's class."""
    error = _upstream_error(exc)
    if error is None and isinstance(exc, aiosmtplib.SMTPResponseException):
        return Reply(exc.code if exc.code >= 400 else 451, exc.message)
    return replies.reply_for(error or UpstreamError(type(exc).__name__))


def _upstream_error(exc: BaseException) -> UpstreamError | None:
    """aiosmtplib's and ssl's exceptions as ours (None: an SMTP reply to mirror, or unknown)."""
    if isinstance(exc, UpstreamError):
        return exc
    if (
        isinstance(exc, ssl.SSLCertVerificationError)
        or isinstance(exc.__cause__, ssl.SSLCertVerificationError)
        # aiosmtplib wraps a failed handshake in SMTPConnectError with only the text left
        or "CERTIFICATE_VERIFY_FAILED" in str(exc)
    ):
        return UpstreamCertificate(type(exc).__name__)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return UpstreamLogin(f"upstream answered {exc.code} to AUTH")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return None
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(type(exc).__name__)
    return None
