"""Contract with aiosmtpd's internals (`sendguard.compat`): fails when an aiosmtpd release
changes a private member the intake relies on, before the relay misbehaves."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope

from sendguard import compat


class _Handler:
    async def handle_DATA(self, server: SMTP, session: Any, envelope: Envelope) -> str:
        return "250 OK"


class _WithCommand(SMTP):  # type: ignore[misc]  # aiosmtpd ships no types
    """A protocol with one command of its own, registered the way aiosmtpd registers all."""

    async def smtp_XPING(self, arg: str) -> None:
        await self.push(f"250 pong {arg}")


async def test_every_private_member_the_intake_uses_exists_with_its_signature() -> None:
    protocol = SMTP(_Handler())
    for name in compat.AIOSMTPD_SUBCLASS_INTERNALS:
        if name in ("_reader", "_writer"):
            continue  # set once connected: checked below
        assert hasattr(protocol, name), name
    assert list(inspect.signature(protocol._getaddr).parameters) == ["arg"]
    assert list(inspect.signature(protocol._reset_timeout).parameters) == ["duration"]
    assert not inspect.signature(protocol._timeout_cb).parameters
    assert isinstance(protocol._create_envelope(), Envelope)
    assert protocol._decode_data is False
    assert set(protocol._handle_hooks) == {"DATA"}
    assert isinstance(protocol._timeout_duration, float | int)
    assert SMTP(_Handler(), ident="relay 1").__ident__ == "relay 1"


async def test_the_command_table_holds_every_smtp_method_bound_to_the_protocol() -> None:
    protocol = _WithCommand(_Handler())
    assert {"EHLO", "MAIL", "RCPT", "DATA", "XPING"} <= compat.smtp_commands(protocol)
    assert all(m.__self__ is protocol for m in protocol._smtp_methods.values())
    assert all(
        hasattr(a, "method") and hasattr(a, "is_builtin") for a in protocol._auth_methods.values()
    )
    assert any(a.is_builtin for a in protocol._auth_methods.values())  # LOGIN, PLAIN


async def test_the_post_data_reset_gives_a_fresh_envelope() -> None:
    protocol = SMTP(_Handler())
    protocol.envelope = Envelope()
    protocol.envelope.rcpt_tos.append("a@example.jp")
    compat.end_transaction(protocol)
    assert isinstance(protocol.envelope, Envelope) and protocol.envelope.rcpt_tos == []


async def test_a_rebound_clone_answers_its_own_commands_on_a_real_connection() -> None:
    """A copy made without `__init__` (as intake makes one per connection) answers a command
    added as a method, over TCP, with its own reader and writer."""
    prototype = _WithCommand(_Handler(), hostname="relay.test")
    clones: list[Any] = []

    def factory() -> Any:
        new = object.__new__(_WithCommand)
        new.__dict__.update(prototype.__dict__)
        compat.rebind_commands(new, prototype)
        clones.append(new)
        return new

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await reader.readline()).startswith(b"220 relay.test")
        writer.write(b"XPING hello\r\n")
        assert await reader.readline() == b"250 pong hello\r\n"
        writer.write(b"QUIT\r\n")
        assert (await reader.readline()).startswith(b"221")
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
    (clone,) = clones
    assert clone._smtp_methods["XPING"].__self__ is clone
    assert clone._reader is not prototype.__dict__.get("_reader")
    assert isinstance(clone._reader, asyncio.StreamReader)
    assert isinstance(clone._writer, asyncio.StreamWriter)
