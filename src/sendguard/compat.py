"""Every use of another project's internals, in one place.

sendguard reaches past the public API of four projects where the public API costs too much
on the hot path (docs/benchmarks.md) or does not exist. Each use is a function here, so an
upgrade has one file to read; pyproject.toml bounds each dependency below its next major
version, and tests/unit/test_compat_<project>.py fails when an internal relied on here
changes (its presence, signature or behaviour), before the relay does.

- aiosmtpd 1.4: the command and AUTH tables a protocol builds in ``__init__`` (rebound by
  `rebind_commands` when intake clones a prototype), the stream callback, the post-DATA
  reset. `RelaySMTP` also overrides and reads the private members in
  `AIOSMTPD_SUBCLASS_INTERNALS` (the contract test checks each).
- asyncio: `StreamReader`'s line limit, which has no public setter (`reader_limit`).
- aiosmtplib 5: the protocol's command lock and "response pending" flag, to send a DATA
  payload prepared without aiosmtplib's regex passes (`execute_prepared_data`); its
  response buffer, parser and waiter, to pipeline commands (`execute_pipelined`).
- the stdlib email package: the RFC 5322 address tokenizer (`get_addr_spec`,
  `get_angle_addr`) and a parsed part's raw payload (`raw_payload`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from email import _header_value_parser as _email_parser
from email.message import Message
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: the parse workers import this module too
    import aiosmtplib
    from aiosmtplib.protocol import SMTPProtocol

# ---------------------------------------------------------------------------- aiosmtpd

AIOSMTPD_SUBCLASS_INTERNALS = (
    "_create_envelope",  # overridden: RelayEnvelope carries the client's side
    "_getaddr",  # overridden: the same parse without a class defined per call
    "_reset_timeout",  # overridden with `_timeout_cb`: an idle timer re-armed lazily
    "_timeout_cb",
    "_timeout_duration",  # read: the configured idle timeout
    "_timeout_handle",  # read and replaced by the lazy timer
    "_decode_data",  # read: sendguard runs with bytes (decode_data=False)
    "_handle_hooks",  # read: the handler's DATA hook, run as a task with a deadline
    "_reader",  # read: DATA is read from the stream directly (`sendguard.intake.data`)
    "_writer",
    "__ident__",  # read: XCLIENT is answered with a new 220 greeting (Postfix XCLIENT_README)
)
"""Private members of aiosmtpd's `SMTP` that `sendguard.intake.server.RelaySMTP` overrides or
reads (tests/unit/test_compat_aiosmtpd.py checks each against the installed aiosmtpd)."""


def rebind_commands(new: Any, prototype: Any) -> None:
    """Give `new` (a copy of `prototype`'s ``__dict__``) its own bound command and AUTH
    methods, and a fresh stream reader wired to its own connection callback.

    aiosmtpd registers every ``smtp_<VERB>`` method of the protocol class as a command, and
    every ``auth_<MECH>`` one as an AUTH mechanism, once in ``SMTP.__init__``: adding a
    command (XCLIENT, XFORWARD) is adding a method to the class, and a clone made without
    ``__init__`` gets it here, bound to itself rather than to the prototype.
    """
    asyncio.StreamReaderProtocol.__init__(
        new,
        asyncio.StreamReader(loop=prototype.loop, limit=prototype.line_length_limit),
        client_connected_cb=new._cb_client_connected,
        loop=prototype.loop,
    )
    new._smtp_methods = {
        name: getattr(new, method.__name__) for name, method in prototype._smtp_methods.items()
    }
    new._auth_methods = {
        name: type(attr)(getattr(new, attr.method.__name__), True) if attr.is_builtin else attr
        for name, attr in prototype._auth_methods.items()
    }


def smtp_commands(protocol: Any) -> frozenset[str]:
    """The SMTP verbs `protocol` answers (what aiosmtpd's command table holds)."""
    return frozenset(protocol._smtp_methods)


def end_transaction(protocol: Any) -> None:
    """aiosmtpd's reset after DATA: a fresh envelope (from `_create_envelope`)."""
    protocol._set_post_data_state()


# ---------------------------------------------------------------------------- asyncio


@contextlib.contextmanager
def reader_limit(reader: asyncio.StreamReader, limit: int) -> Iterator[None]:
    """`reader`'s buffer limit (`readuntil` gives up past it) set to `limit` inside the
    block and restored after; `StreamReader` takes it only in its constructor."""
    saved: int = reader._limit  # type: ignore[attr-defined]
    reader._limit = limit  # type: ignore[attr-defined]
    try:
        yield
    finally:
        reader._limit = saved  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- aiosmtplib


def data_protocol(smtp: aiosmtplib.SMTP) -> SMTPProtocol | None:
    """`smtp`'s connected protocol if it has the internals `execute_prepared_data` uses,
    else None (not connected, or an aiosmtplib that changed them: use `smtp.data`)."""
    protocol = smtp.protocol
    if protocol is None or getattr(protocol, "_command_lock", None) is None:
        return None
    return protocol if hasattr(protocol, "_response_pending") else None


async def ehlo_or_helo_if_needed(smtp: aiosmtplib.SMTP) -> None:
    """What `smtp.data()` does first: greet the server unless that was done already."""
    await smtp._ehlo_or_helo_if_needed()


async def execute_prepared_data(
    protocol: SMTPProtocol, payload: Sequence[bytes], reply_timeout: float | None
) -> aiosmtplib.SMTPResponse:
    """aiosmtplib 5.1's `SMTPProtocol.execute_data_command` for a `payload` that is already
    CRLF-only and dot-stuffed, in pieces, without its final dot (so a big message is not
    copied to join or end it). Raises `SMTPDataError` like the original."""
    from aiosmtplib import SMTPDataError

    lock = protocol._command_lock
    assert lock is not None  # `data_protocol` checked it
    async with lock:
        # Mark a reply as expected before each write, as aiosmtplib does: data arriving
        # without a pending command is dropped by its protocol.
        protocol._response_pending = True
        protocol.write(b"DATA\r\n")
        start = await protocol.read_response(timeout=reply_timeout)
        if start.code != 354:
            raise SMTPDataError(start.code, start.message)
        return await _send_payload(protocol, payload, reply_timeout)


async def execute_pipelined(
    protocol: SMTPProtocol,
    commands: Sequence[bytes],
    reply_timeout: float | None,
    received: list[aiosmtplib.SMTPResponse],
) -> None:
    """Write `commands` (each a whole line, CRLF included) in one write, as RFC 2920 allows
    when the server offers PIPELINING, and append their replies to `received` in order.

    aiosmtplib reads one reply per command written: its `data_received` drops bytes that
    arrive while a parsed reply waits for pickup, so replies to pipelined commands coming
    in separate segments would be lost. While the batch is out, the protocol's
    `data_received` is this one (every byte is kept and every complete reply parsed); its
    response waiter still wakes us, so a lost connection raises `SMTPServerDisconnected`
    and a silent server `SMTPReadTimeoutError` (each reply within `reply_timeout` of the one
    before), as `execute_command` does. On return or failure `received` holds the replies
    that did arrive, so the caller knows which command a failure interrupted."""
    from aiosmtplib import SMTPResponseException, SMTPServerDisconnected
    from aiosmtplib.protocol import COMMAND_INJECTION_REGEX, MAX_RESPONSE_LENGTH

    for command in commands:
        if not command.endswith(b"\r\n") or COMMAND_INJECTION_REGEX.search(command[:-2]):
            raise ValueError("Command arg contains a prohibited control character")
    lock = protocol._command_lock
    if lock is None:
        raise SMTPServerDisconnected("Server not connected")
    wanted = len(commands)

    def data_received(data: bytes) -> None:
        waiter = protocol._response_waiter
        if waiter is None:
            return
        buffer = protocol._buffer
        buffer.extend(data)
        try:
            if len(buffer) > MAX_RESPONSE_LENGTH * wanted:
                raise SMTPResponseException(500, "Response too long")
            while len(received) < wanted:
                response = protocol._read_response_from_buffer()
                if response is None:
                    break
                received.append(response)
        except Exception as exc:  # noqa: BLE001  # handed to the waiting task
            if not waiter.done():
                protocol._set_response_exception(waiter, exc)
            return
        if not waiter.done() and received:
            waiter.set_result(received[-1])

    async with lock:
        protocol.data_received = data_received  # type: ignore[method-assign]
        try:
            protocol._response_pending = True
            protocol.write(b"".join(commands))
            while len(received) < wanted:
                count = len(received)
                protocol._response_pending = True
                await protocol.read_response(timeout=reply_timeout)
                if len(received) == count:  # woken without a new reply: a protocol bug
                    raise SMTPResponseException(500, "No reply parsed")
        finally:
            del protocol.data_received  # the class's own again


async def _send_payload(
    protocol: SMTPProtocol, payload: Sequence[bytes], reply_timeout: float | None
) -> aiosmtplib.SMTPResponse:
    """After a 354, with the command lock held: the pieces, the final dot, the 250."""
    from aiosmtplib import SMTPDataError

    protocol._response_pending = True  # data arriving without it is dropped
    for piece in payload:
        protocol.write(piece)
    protocol.write(b".\r\n")
    response = await protocol.read_response(timeout=reply_timeout)
    if response.code != 250:
        raise SMTPDataError(response.code, response.message)
    return response


async def execute_prepared_payload(
    protocol: SMTPProtocol, payload: Sequence[bytes], reply_timeout: float | None
) -> aiosmtplib.SMTPResponse:
    """The message after a 354 that `execute_pipelined` got for DATA: `payload` as
    `execute_prepared_data` sends it, then the final dot; raises `SMTPDataError` unless 250."""
    lock = protocol._command_lock
    assert lock is not None
    async with lock:
        return await _send_payload(protocol, payload, reply_timeout)


# ---------------------------------------------------------------------------- email


def get_addr_spec(value: str) -> tuple[Any, str]:
    """email's RFC 5322 ``addr-spec`` tokenizer: (token with ``.addr_spec``, rest). Raises
    `email.errors.HeaderParseError` on a malformed address."""
    token, rest = _email_parser.get_addr_spec(value)
    return token, str(rest)


def get_angle_addr(value: str) -> tuple[Any, str]:
    """email's RFC 5322 ``angle-addr`` tokenizer (``<local@domain>``), like `get_addr_spec`."""
    token, rest = _email_parser.get_angle_addr(value)
    return token, str(rest)


def raw_payload(part: Message) -> bytes:
    """A parsed non-multipart part's body as the parser read it, before any decoding.

    `get_payload()` would re-decode 8-bit bodies with the declared charset (lossy); the
    parser keeps the original bytes surrogate-escaped in ``_payload``, which this undoes.
    A multipart part (its payload a list) gives b"".
    """
    payload = getattr(part, "_payload", "")
    return payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""


def parsed_payload(part: Message) -> str | list[Message] | None:
    """What the parser stored for `part`: its text (surrogate-escaped), its parts, or None."""
    payload = getattr(part, "_payload", None)
    if isinstance(payload, str):
        return payload
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    return None


def replace_parsed_text(part: Message, text: str) -> None:
    """Replace a leaf's parsed text as the parser would have stored it (no charset handling:
    `set_payload` would re-encode it)."""
    setattr(part, "_payload", text)  # noqa: B010 - email keeps it there; only compat touches it
