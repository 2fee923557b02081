"""Pipelining to an upstream that offers it (RFC 2920), against a scripted server that reads
the whole envelope before it answers anything: the one-by-one client would wait for MAIL's
reply forever there. The replies come back in separate, delayed segments, so every reply
must be read as its own (aiosmtplib alone drops bytes arriving while a reply is unread)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiosmtplib.email import quote_address
from hypothesis import given, settings
from hypothesis import strategies as st

from sendguard.deliver.smtp import SmtpOptions, SmtpUpstream, _quoted
from sendguard.deliver.target import parse_target
from sendguard.model import Envelope

PIECES = ["a", "Z", "0", "-", "_", "+", "'", "`", "{", "~", "!", ".", "..", "@", "<", ">",
          " ", "(c)", '"', '"q r"', "[1.2.3.4]", ":", ",", ";", "\\", "é", "日本", "\x7f",
          "\r\n"]  # fmt: skip
"""Characters that matter to address quoting."""
Answer = Callable[[bytes], bytes]
"""The reply line for one command line."""


def _ok(line: bytes) -> bytes:
    if line.startswith(b"DATA"):
        return b"354 go ahead\r\n"
    return b"250 2.0.0 ok\r\n"


@dataclass
class Scripted:
    """What the server saw: one entry per envelope batch, and the messages it accepted."""

    answer: Answer = _ok
    batches: list[list[bytes]] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    aborted: int = 0
    """Connections closed in the middle of DATA (nothing delivered)."""


async def _serve(state: Scripted, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    w.write(b"220 scripted\r\n")
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            if line.startswith((b"EHLO", b"RSET", b"QUIT", b"NOOP")):
                if line.startswith(b"EHLO"):
                    w.write(b"250-scripted\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
                else:
                    w.write(b"250 2.0.0 ok\r\n" if not line.startswith(b"QUIT") else b"221 bye\r\n")
                await w.drain()
                continue
            batch = [line]
            while not line.startswith(b"DATA"):  # the whole envelope before any reply
                line = await reader.readline()
                if not line:
                    return
                batch.append(line)
            state.batches.append(batch)
            replies = [state.answer(command) for command in batch]
            for reply in replies:  # each in a segment of its own, a moment apart
                w.write(reply)
                await w.drain()
                await asyncio.sleep(0.01)
            if not replies[-1].startswith(b"354"):
                continue
            try:
                message = await reader.readuntil(b"\r\n.\r\n")
            except asyncio.IncompleteReadError:
                state.aborted += 1
                return
            state.messages.append(message)
            w.write(b"250 2.0.0 queued\r\n")
            await w.drain()
    finally:
        w.close()


@asynccontextmanager
async def scripted(state: Scripted) -> AsyncIterator[SmtpUpstream]:
    server = await asyncio.start_server(lambda r, w: _serve(state, r, w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = SmtpUpstream(
        parse_target(f"smtp://127.0.0.1:{port}"),
        SmtpOptions(local_hostname="relay.test", timeout=5, data_timeout=5),
    )
    try:
        yield client
    finally:
        await client.close()
        server.close()


ENVELOPE = Envelope(
    mail_from="a@example.jp", rcpt_tos=tuple(f"r{i}@partner.test" for i in range(100))
)
DATA = b"Subject: t\r\n\r\n.dot\r\nbody\r\n"


async def test_the_envelope_goes_in_one_batch_and_the_bytes_arrive_stuffed() -> None:
    state = Scripted()
    async with scripted(state) as client:
        reply = await client.send(ENVELOPE, DATA)
        assert reply.code == 250
        assert (await client.send(ENVELOPE, DATA)).code == 250  # the session was reused
    assert len(state.batches) == 2
    assert state.batches[0][0] == b"MAIL FROM:<a@example.jp>\r\n"
    assert state.batches[0][1:-1] == [
        f"RCPT TO:<r{i}@partner.test>\r\n".encode() for i in range(100)
    ]
    assert state.messages == [b"Subject: t\r\n\r\n..dot\r\nbody\r\n.\r\n"] * 2


async def test_a_refused_recipient_is_mirrored_and_nobody_gets_the_message() -> None:
    """DATA was taken (354) for the recipients that were accepted: the message must still
    not go, so the line is dropped before the final dot."""

    def answer(line: bytes) -> bytes:
        if line == b"RCPT TO:<r7@partner.test>\r\n":
            return b"550 5.1.1 no such user\r\n"
        if line == b"RCPT TO:<r9@partner.test>\r\n":
            return b"452 4.2.2 full\r\n"
        return _ok(line)

    state = Scripted(answer=answer)
    async with scripted(state) as client:
        reply = await client.send(ENVELOPE, DATA)
        assert (reply.code, reply.text) == (550, "5.1.1 no such user")  # the first refusal
        for _ in range(50):
            if state.aborted:
                break
            await asyncio.sleep(0.02)
    assert state.messages == []
    assert state.aborted == 1


async def test_a_refused_sender_is_mirrored_and_the_session_reset() -> None:
    def answer(line: bytes) -> bytes:
        if line.startswith(b"MAIL"):
            return b"553 5.7.1 not yours\r\n"
        if line.startswith(b"RCPT"):
            return b"503 5.5.1 need MAIL\r\n"
        if line.startswith(b"DATA"):
            return b"503 5.5.1 need RCPT\r\n"
        return _ok(line)

    state = Scripted(answer=answer)
    async with scripted(state) as client:
        reply = await client.send(ENVELOPE, DATA)
        assert (reply.code, reply.text) == (553, "5.7.1 not yours")
        state.answer = _ok
        assert (await client.send(ENVELOPE, DATA)).code == 250  # the reset session again
    assert len(state.messages) == 1


async def test_a_refused_data_is_mirrored() -> None:
    state = Scripted(
        answer=lambda line: b"554 5.7.1 no\r\n" if line.startswith(b"DATA") else _ok(line)
    )
    async with scripted(state) as client:
        reply = await client.send(ENVELOPE, DATA)
    assert (reply.code, reply.text) == (554, "5.7.1 no")
    assert state.messages == []


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=8).map("".join))
def test_addresses_are_quoted_as_aiosmtplib_quotes_them(address: str) -> None:
    try:
        expected: object = quote_address(address)
    except ValueError:
        expected = ValueError
    try:
        got: object = _quoted(address)
    except ValueError:
        got = ValueError
    assert got == expected
