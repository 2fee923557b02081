"""The aiosmtpd handler: SMTP commands in, one `pipeline.handle` call per message out.

The handler is shared by every connection and holds no per-message state: per-connection
facts live on aiosmtpd's session (peer, EHLO name, the authenticated `Identity`), per-
transaction facts on its envelope. Every refusal is decided here before DATA (access, address
syntax, parameters, recipient count) so that only validated addr-specs ever reach the upstream
(aiosmtplib's own quoting trusts the lenient `email.utils.parseaddr`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import structlog
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope

from sendguard import replies
from sendguard.deliver import Upstream
from sendguard.intake.access import in_networks, is_trusted, peer_address
from sendguard.intake.auth import Authenticator, Identity
from sendguard.intake.budget import DEFAULT_BUDGET, ByteBudget
from sendguard.intake.data import MAX_LINE, has_long_line
from sendguard.intake.forward import (
    XCLIENT_ATTRIBUTES,
    XFORWARD_ATTRIBUTES,
    Command,
    ForwardError,
    parse,
    postfix_login,
)
from sendguard.intake.guard import GuardBusy, LoginGuard
from sendguard.intake.server import RelayEnvelope, RelaySMTP
from sendguard.intake.spool import SpooledMessage
from sendguard.model import Envelope, IPNetwork, Reply
from sendguard.parse.addresses import envelope_address, is_routing_address
from sendguard.parse.lines import has_bare_line_ending, normalise_line_endings
from sendguard.pipeline import ClientSide
from sendguard.policy.people import People, build_people

log = structlog.get_logger(__name__)

# A CR not followed by LF, or an LF not preceded by CR: the SMTP-smuggling ingredients.
_MAX_LINE = MAX_LINE
"""RFC 5322 §2.1.1. The DATA reader refuses lines over 999 octets on the wire as they arrive
(a 998-octet line may carry a stuffing dot); the exact check is on the unstuffed message."""
_MAIL_PARAMS = ("BODY=7BIT", "BODY=8BITMIME", "SMTPUTF8")


class Handles(Protocol):
    """The pipeline as the handler sees it."""

    async def handle(
        self,
        envelope: Envelope,
        data: bytes,
        *,
        upstream: Upstream | None,
        client: ClientSide | None = None,
        spooled: Path | None = None,
    ) -> Reply:
        """Inspect, decide, act; the reply goes to the client."""
        ...


@dataclass(frozen=True, slots=True)
class IntakeOptions:
    """What the handler needs from the settings."""

    trusted_networks: tuple[IPNetwork, ...]
    max_recipients: int
    max_message_size: int
    line_policy: Literal["reject", "normalise"] = "reject"
    advertise_8bitmime: bool = True
    advertise_smtputf8: bool = True
    routing_addresses: Literal["reject", "external"] = "reject"


class RelayHandler:
    """aiosmtpd hooks for a relay that inspects before it forwards."""

    def __init__(
        self,
        pipeline: Handles,
        options: IntakeOptions,
        authenticator: Authenticator | None = None,
        capabilities: Any = None,
        people: Callable[[], People] | None = None,
        guard: LoginGuard | None = None,
        budget: ByteBudget | None = None,
    ) -> None:
        self.pipeline = pipeline
        # Bytes of spooled (big) mail inspected and delivered at once by this process.
        self.budget = budget or ByteBudget(DEFAULT_BUDGET)
        self.options = options
        self.authenticator = authenticator
        # Read at every MAIL and DATA: the policy (and so [people]) reloads at run time.
        # Without one, no login may send as anything (fail closed).
        self.people = people or _nobody
        # Failed-login limits and the bounded queue of password checks (one per process).
        self.guard = guard or LoginGuard()
        # An object with supports_8bitmime / supports_smtputf8 (the upstream), read at each
        # EHLO so the relay never advertises what the upstream cannot carry.
        self.capabilities = capabilities

    # ------------------------------------------------------------------ greeting

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: SmtpEnvelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        drop = {"250-AUTH "}
        if not self._supports("supports_8bitmime", self.options.advertise_8bitmime):
            drop.add("250-8BITMIME")
        if not self._supports("supports_smtputf8", self.options.advertise_smtputf8):
            drop.add("250-SMTPUTF8")
        if self.authenticator is None:
            drop.update(r for r in responses if r.startswith("250-AUTH"))
        kept = [r for r in responses if r not in drop]
        if isinstance(server, RelaySMTP) and server.may_forward():
            # Only to the configured forwarders: to anyone else they do not exist.
            kept[-1:-1] = [
                f"250-XFORWARD {' '.join(XFORWARD_ATTRIBUTES)}",
                f"250-XCLIENT {' '.join(XCLIENT_ATTRIBUTES)}",
            ]
        return kept

    # ------------------------------------------------------------------ forwarded client

    async def handle_XFORWARD(
        self, server: SMTP, session: Session, envelope: SmtpEnvelope, arg: str
    ) -> str | object:
        refusal = self._forward_refusal(server, "XFORWARD")
        if refusal is not None:
            return refusal
        assert isinstance(envelope, RelayEnvelope)  # a forwarder's connection is a RelaySMTP
        try:
            envelope.xforward = parse("XFORWARD", arg, envelope.xforward)
        except ForwardError as exc:
            return str(exc)
        return MISSING  # 250

    async def handle_XCLIENT(
        self, server: SMTP, session: Session, envelope: SmtpEnvelope, arg: str
    ) -> str | object:
        refusal = self._forward_refusal(server, "XCLIENT")
        if refusal is not None:
            return refusal
        assert isinstance(server, RelaySMTP)
        if session.authenticated:
            # The AUTH identity (and a passthrough session) belongs to the forwarder itself.
            return str(replies.XCLIENT_AFTER_AUTH)
        try:
            server.xclient = parse("XCLIENT", arg, server.xclient)
        except ForwardError as exc:
            return str(exc)
        log.info("xclient", **_forwarded_fields(server, server.session))
        return MISSING  # 220, the session starts again

    def _forward_refusal(self, server: SMTP, command: Command) -> str | None:
        """550 5.7.0 and an event for anyone not configured as a forwarder."""
        if isinstance(server, RelaySMTP) and server.may_forward():
            return None
        log.warning("forward_refused", command=command, client=_client(server))
        return str(replies.FORWARD_UNAUTHORISED)

    def _supports(self, name: str, default: bool) -> bool:
        return default and bool(getattr(self.capabilities, name, True))

    # ------------------------------------------------------------------ auth

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        if await self._turned_away(server):
            return AuthResult(success=False, handled=True)
        blob = await _initial_or_challenge(server, args, "")
        if blob is None:
            return AuthResult(success=False, handled=True)
        fields = blob.split(b"\0")
        if len(fields) != 3:
            return _refused("501 5.5.2 Malformed PLAIN credentials")
        return await self._check(server, fields[1], fields[2])

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        if await self._turned_away(server):
            return AuthResult(success=False, handled=True)
        user = await _initial_or_challenge(server, args, "Username:")
        if user is None:
            return AuthResult(success=False, handled=True)
        password = await server.challenge_auth("Password:")
        if password is MISSING:
            return AuthResult(success=False, handled=True)
        return await self._check(server, user, password)

    async def _turned_away(self, server: SMTP) -> bool:
        """An address that has used up its failures gets 421 before it can type anything."""
        client = _client(server)
        if self.authenticator is None or not self.guard.address_blocked(client):
            return False
        log.warning("auth_blocked", client=client, reason="address")
        await _hang_up(server, replies.AUTH_ADDRESS_BLOCKED)
        return True

    async def _check(self, server: SMTP, user: bytes, password: bytes) -> AuthResult:
        if self.authenticator is None:
            return _refused()
        client = _client(server)
        try:
            name, secret = user.decode("utf-8"), password.decode("utf-8")
        except UnicodeDecodeError:
            who = {"user_hash": self.guard.fingerprint(repr(user))}
            return await self._failed(
                server, client, None, who, "501 5.5.2 Credentials are not UTF-8"
            )
        who = self._who(name)
        if self.guard.login_blocked(name, client):
            log.warning("auth_blocked", client=client, reason="login", **who)
            return await self._failed(server, client, None, who, str(replies.AUTH_LOGIN_BLOCKED))
        try:
            async with self.guard.slot(client, name):
                if self.guard.address_blocked(client):  # used up while this one waited
                    log.warning("auth_blocked", client=client, reason="address", **who)
                    await _hang_up(server, replies.AUTH_ADDRESS_BLOCKED)
                    return AuthResult(success=False, handled=True)
                identity = await self.authenticator.check(name, secret)
        except GuardBusy:
            log.warning("auth_busy", client=client, **who)
            if self.guard.refused(server):
                await _hang_up(server, replies.AUTH_TOO_MANY)
                return AuthResult(success=False, handled=True)
            return _refused(str(replies.AUTH_TEMPFAIL))
        except (OSError, TimeoutError) as exc:
            log.warning("auth_unavailable", client=client, error=type(exc).__name__, **who)
            return _refused(str(replies.AUTH_TEMPFAIL))
        if identity is None:
            return await self._failed(server, client, name, who)
        self.guard.succeeded(client, name)
        log.info("auth_succeeded", user=name, client=client)
        return AuthResult(success=True, auth_data=identity)

    async def _failed(
        self,
        server: SMTP,
        client: str,
        login: str | None,
        who: dict[str, str],
        message: str | None = None,
    ) -> AuthResult:
        """Count a failure, wait (longer each time), then 535 — or 421 and hang up."""
        failures, delay = self.guard.failed(server, client, login)
        log.warning("auth_failed", client=client, failures=failures, **who)
        await asyncio.sleep(delay)
        if self.guard.connection_spent(server) or self.guard.address_blocked(client):
            await _hang_up(server, replies.AUTH_TOO_MANY)
            return AuthResult(success=False, handled=True)
        return _refused(message)

    def _who(self, name: str) -> dict[str, str]:
        """How logs name a login: itself when known, else a keyed hash (it may be a password)."""
        known = self.guard.known(name)
        if not known and self.authenticator is not None:
            with contextlib.suppress(Exception):  # a broken users file is reported by check()
                known = self.authenticator.knows(name)
        return {"user": name} if known else {"user_hash": self.guard.fingerprint(name)}

    # ------------------------------------------------------------------ envelope

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: SmtpEnvelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        for option in mail_options:
            upper = option.upper()
            if upper.startswith("SIZE="):
                size = upper[5:]
                if not size.isdigit():
                    return str(replies.UNSUPPORTED_PARAMETER)
                if int(size) > self.options.max_message_size:
                    return str(replies.MESSAGE_TOO_BIG)
            elif upper not in _MAIL_PARAMS:
                return str(replies.UNSUPPORTED_PARAMETER)
        if not address.isascii():
            # Refused here, like a non-ASCII RCPT: never a 553 (or worse) only after DATA.
            if "SMTPUTF8" not in (o.upper() for o in mail_options):
                return str(replies.NON_ASCII_ADDRESS)
            if not self._supports("supports_smtputf8", self.options.advertise_smtputf8):
                return str(replies.NON_ASCII_UPSTREAM)
        sender = ""
        if address:
            try:
                sender = envelope_address(address).addr_spec
            except ValueError as exc:
                return str(replies.bad_address(str(exc)))
        login = _login(server, session)
        if login is not None and not self._may_send_as(server, session, login, sender):
            return str(replies.SENDER_NOT_OWNED)
        envelope.mail_from = address
        envelope.mail_options.extend(o for o in mail_options if not o.upper().startswith("SIZE="))
        return str(replies.SENDER_OK)

    def _may_send_as(self, server: SMTP, session: Session, login: str, sender: str) -> bool:
        """Postfix's ``reject_sender_login_mismatch``: an authenticated login may use only the
        MAIL FROM addresses ``[people]`` gives it (never the null sender; see docs/policy.md).
        The login is the client's own AUTH, or the one its forwarder vouches for."""
        if self.people().may_send_as(login, sender):
            return True
        # The attempted address is an envelope fact, logged as `transaction` logs mail_from.
        log.warning(
            "sender_login_mismatch",
            user=login,
            mail_from=sender,
            **_forwarded_fields(server, session),
        )
        return False

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: SmtpEnvelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self._relay(server, session) == "no":
            log.warning("relay_denied", **_forwarded_fields(server, session))
            return str(replies.RELAY_DENIED)
        if rcpt_options:
            return str(replies.UNSUPPORTED_PARAMETER)
        if len(envelope.rcpt_tos) >= self.options.max_recipients:
            return str(replies.TOO_MANY_RECIPIENTS)
        refusal = self._recipient_refusal(session, envelope, address)
        if refusal is not None:
            return str(refusal)
        envelope.rcpt_tos.append(address)
        return str(replies.RECIPIENT_OK)

    def _relay(self, server: SMTP, session: Session) -> Literal["yes", "no", "at-data"]:
        """Whether this client may relay: AUTH, a login its forwarder vouches for, or a
        trusted address. Behind a forwarder only the forwarded ADDR counts, never the
        forwarder's own (no open relay behind Postfix); a forwarder that says nothing about
        its client is an unknown client. ``at-data``: XFORWARD without a trusted ADDR, where
        Postfix's own ``Received:`` header may still show its SASL login (`postfix_login`).
        """
        if _login(server, session) is not None:
            return "yes"
        trusted = self.options.trusted_networks
        if not isinstance(server, RelaySMTP):
            return "yes" if is_trusted(session.peer, trusted) else "no"
        forwarded = server.forwarded()
        if forwarded is None:
            if server.from_forwarder():
                return "no"
            return "yes" if is_trusted(session.peer, trusted) else "no"
        if in_networks(forwarded.addr, trusted):
            return "yes"
        envelope = server.envelope
        if isinstance(envelope, RelayEnvelope) and envelope.xforward is not None:
            return "at-data"
        return "no"

    def _recipient_refusal(
        self, session: Session, envelope: SmtpEnvelope, address: str
    ) -> Reply | None:
        """Why this RCPT address must not reach the upstream, or None to accept it.

        Everything the upstream could fail on or route elsewhere is refused here, at RCPT,
        so it is never a 451 after DATA: a non-ASCII address without SMTPUTF8 (on both
        sides), bad syntax, and routing addresses unless `routing_addresses` is "external".
        """
        if not address.isascii():
            if not envelope.smtp_utf8:
                return replies.NON_ASCII_ADDRESS
            if not self._supports("supports_smtputf8", self.options.advertise_smtputf8):
                return replies.NON_ASCII_UPSTREAM
        try:
            parsed = envelope_address(address)
        except ValueError as exc:
            return replies.bad_address(str(exc))
        if is_routing_address(parsed.local_part):
            client = str(peer_address(session.peer))
            if self.options.routing_addresses == "reject":
                log.warning("routing_address_refused", client=client)
                return replies.ROUTING_ADDRESS
            log.info("routing_address_external", client=client)
        return None

    # ------------------------------------------------------------------ message

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:
        spooled = envelope.spooled if isinstance(envelope, RelayEnvelope) else None
        if spooled is None:
            return await self._message(server, session, envelope, envelope.original_content or b"")
        try:
            # Big mail waits on disk for its turn, before the pipeline (and its scan budget)
            # starts; the bytes are in memory only while they are inspected and delivered.
            async with self.budget.hold(spooled.size):
                data = await asyncio.to_thread(spooled.read)
                return await self._message(server, session, envelope, data, spooled)
        finally:
            spooled.remove()

    async def _message(
        self,
        server: SMTP,
        session: Session,
        envelope: SmtpEnvelope,
        data: bytes,
        spooled: SpooledMessage | None = None,
    ) -> str:
        # A spooled message's line facts were gathered piece by piece as it arrived: three
        # counts over 34 MB would hold the event loop (and every other client) ~150 ms.
        lines = spooled.lines if spooled is not None else None
        # The file the extraction process may read instead of being sent `data`.
        spool = spooled.path if spooled is not None else None
        if lines.bare if lines is not None else has_bare_line_ending(data):
            if self.options.line_policy == "reject":
                log.warning("bare_line_ending_rejected", client=str(peer_address(session.peer)))
                return str(replies.BARE_LINE_ENDING)
            data = normalise_line_endings(data)
            lines = None  # new line breaks: measure the lines again
            spool = None  # and the file no longer holds what is inspected and delivered
        if lines.long if lines is not None else has_long_line(data, _MAX_LINE + 2):
            return str(replies.LINE_TOO_LONG)
        identity = session.auth_data if isinstance(session.auth_data, Identity) else None
        login = _login(server, session)
        if login is None and isinstance(envelope, RelayEnvelope) and envelope.xforward:
            refusal, login = self._postfix_client(server, session, envelope, data)
            if refusal is not None:
                return str(refusal)
        forwarded = server.forwarded() if isinstance(server, RelaySMTP) else None
        via = server.via() if isinstance(server, RelaySMTP) else None
        message = Envelope(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            mail_options=tuple(envelope.mail_options),
            transaction_id=uuid.uuid4().hex[:16],
            client_address=_client_address(server, session),
            client_helo=_client_helo(server, session),
            auth_user=login,
            received_at=datetime.now(UTC),
            sender_identity=self.people().identity(login) if login is not None else None,
            client_via=str(via) if via is not None else "",
            client_ident=(forwarded.ident or "") if forwarded is not None else "",
        )
        upstream = identity.upstream if identity else None
        # Whether the client still waits (the reply deadline, a hang-up): the intake's.
        client = envelope.client_side if isinstance(envelope, RelayEnvelope) else None
        reply = await self.pipeline.handle(
            message, data, upstream=upstream, client=client, spooled=spool
        )
        return str(reply)

    def _postfix_client(
        self, server: SMTP, session: Session, envelope: RelayEnvelope, data: bytes
    ) -> tuple[Reply | None, str | None]:
        """Mail Postfix forwarded (XFORWARD): the SASL login Postfix names in its own
        ``Received:`` header is the client's login, bound to its addresses like AUTH's.
        Without one, a client whose forwarded address is not trusted is refused here."""
        assert envelope.xforward is not None
        login = postfix_login(data, envelope.xforward)
        if login is None:
            if self._relay(server, session) == "yes":
                return None, None  # a trusted address without a login
            log.warning("relay_denied", **_forwarded_fields(server, session))
            return replies.RELAY_DENIED, None
        sender = envelope.mail_from or ""
        with contextlib.suppress(ValueError):
            sender = envelope_address(sender).addr_spec if sender else ""
        if not self._may_send_as(server, session, login, sender):
            return replies.SENDER_NOT_OWNED, None
        return None, login

    async def handle_exception(self, error: Exception) -> str:
        """aiosmtpd's default answers 500 with the exception text; ours tempfails and logs."""
        reference = uuid.uuid4().hex[:12]
        log.error(
            "internal_error",
            reference=reference,
            error=type(error).__name__,
            detail=str(error)[:200],
        )
        return str(replies.with_reference(replies.reply_for(error), reference))


def _nobody() -> People:
    """[people] with nobody listed and no internal domain: no login may send as anything."""
    return build_people({}, ())


def _client(server: SMTP) -> str:
    """The client's address as the login limits count it."""
    return str(peer_address(server.session.peer if server.session else None))


def _login(server: SMTP, session: Session) -> str | None:
    """The client's login: its own AUTH, else the one XCLIENT forwarded (its forwarder
    authenticated it). A login Postfix names in its header is read at DATA (`_relay`)."""
    if session.authenticated and isinstance(session.auth_data, Identity):
        return session.auth_data.login
    forwarded = server.forwarded() if isinstance(server, RelaySMTP) else None
    return forwarded.login if forwarded is not None else None


def _client_address(server: SMTP, session: Session) -> str:
    """The client's address as the policy and logs see it (the forwarded one, if any)."""
    if isinstance(server, RelaySMTP):
        return str(server.client_address() or "")
    return str(peer_address(session.peer) or "")


def _client_helo(server: SMTP, session: Session) -> str:
    """XFORWARD's HELO (never mixed with the session's), XCLIENT's, else the EHLO name."""
    if isinstance(server, RelaySMTP):
        envelope = server.envelope
        if isinstance(envelope, RelayEnvelope) and envelope.xforward is not None:
            return envelope.xforward.helo or ""
        if server.xclient is not None and server.xclient.helo:
            return server.xclient.helo
    return str(session.host_name or "")


def _forwarded_fields(server: SMTP, session: Session | None) -> dict[str, str | None]:
    """Log fields naming the client, and the forwarder it came through when there is one."""
    client = _client_address(server, session) if session is not None else ""
    via = server.via() if isinstance(server, RelaySMTP) else None
    return {"client": client or None, "via": str(via) if via is not None else None}


async def _hang_up(server: SMTP, reply: Reply) -> None:
    """Answer `reply` (a 421) and close the connection."""
    with contextlib.suppress(ConnectionError):  # the client may have gone already
        await server.push(str(reply))
    if server.transport is not None:
        server.transport.close()


def _refused(message: str | None = None) -> AuthResult:
    """A failed AUTH that aiosmtpd must still answer (its default `handled=True` stays silent)."""
    return AuthResult(success=False, handled=False, message=message)


def longest_line(data: bytes) -> int:
    """Octets in the longest CRLF-delimited line."""
    if len(data) <= _MAX_LINE:
        return len(data)
    return max(map(len, data.split(b"\r\n")))


async def _initial_or_challenge(server: SMTP, args: list[str], prompt: str) -> bytes | None:
    """The SASL initial response from the AUTH line, or the answer to a 334 challenge."""
    if len(args) > 1:
        if args[1] == "=":
            return b""
        try:
            return base64.b64decode(args[1], validate=True)
        except binascii.Error:
            await server.push("501 5.5.2 Can't decode base64")
            return None
    answer = await server.challenge_auth(prompt)
    return None if answer is MISSING else bytes(answer)
