"""SMTP smuggling (SEC Consult, 2023): a bare-CR/LF end-of-data look-alike never splits a message.

aiosmtpd ≥ 1.4.5 ends DATA only at CRLF.CRLF but keeps bare CR/LF in the content. Our policy
(`line_policy`, default ``reject``): a message with a bare CR or LF is refused with 550 (like
sendmail 8.18 and OpenSMTPD); ``normalise`` turns them into CRLF (like Postfix 3.9), and the
dot that follows is then dot-stuffed upstream, so it is content, never an end of data.
"""

from __future__ import annotations

import asyncio
import ssl

import pytest

from tests.support.relay import running_relay
from tests.support.tls import CertPair
from tests.support.upstream import RecordingUpstream

SEQUENCES = [b"\n.\r\n", b"\n.\n", b"\r.\r\n", b"\r\n.\r", b"\r.\n"]


async def _smuggle(port: int, sequence: bytes) -> list[str]:
    """One DATA whose body hides a second transaction behind `sequence`; returns every reply."""
    payload = (
        b"From: a@example.jp\r\nTo: b@partner.test\r\nSubject: smuggle\r\n\r\nfirst\r\n"
        + sequence
        + b"MAIL FROM:<admin@example.jp>\r\nRCPT TO:<victim@partner.test>\r\nDATA\r\n"
        b"Subject: smuggled\r\n\r\nsmuggled\r\n.\r\nQUIT\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"EHLO a.test\r\nMAIL FROM:<a@example.jp>\r\nRCPT TO:<b@partner.test>\r\nDATA\r\n")
    writer.write(payload)
    await writer.drain()
    out = (await asyncio.wait_for(reader.read(), 10)).decode()
    writer.close()
    return [line for line in out.splitlines() if line[:3].isdigit() and line[3:4] == " "]


@pytest.mark.parametrize("sequence", SEQUENCES, ids=[repr(s) for s in SEQUENCES])
async def test_reject_policy_refuses_and_smuggles_nothing(
    upstream: RecordingUpstream, sequence: bytes
) -> None:
    """Default policy: the message is refused (550) and the upstream receives nothing at all."""
    async with running_relay(upstream=upstream.url) as app:
        replies = await _smuggle(app.bound[0][1], sequence)
    assert any(r.startswith("550 5.6.0") for r in replies), replies
    assert upstream.messages == []
    assert not any("admin@example.jp" in c for c in upstream.commands)


@pytest.mark.parametrize("sequence", SEQUENCES, ids=[repr(s) for s in SEQUENCES])
async def test_normalise_policy_delivers_one_message(
    upstream: RecordingUpstream, sequence: bytes
) -> None:
    """Normalise policy: exactly one message upstream, the hidden commands are inside its body."""
    async with running_relay(upstream=upstream.url, line_policy="normalise") as app:
        await _smuggle(app.bound[0][1], sequence)
    [got] = upstream.messages
    assert got.mail_from == "a@example.jp" and got.rcpt_tos == ("b@partner.test",)
    assert b"MAIL FROM:<admin@example.jp>" in got.data
    assert sum(1 for c in upstream.commands if c.startswith("MAIL")) == 1
    assert b"\r\n" in got.data and b"\n" not in got.data.replace(b"\r\n", b"")


async def test_commands_pipelined_after_starttls_are_discarded(
    upstream: RecordingUpstream, certs: CertPair
) -> None:
    """Plain-text commands behind STARTTLS (CVE-2011-0411 style) are dropped, not run in TLS."""
    async with running_relay(upstream=upstream.url, tls_cert=certs.cert, tls_key=certs.key) as app:
        reader, writer = await asyncio.open_connection("127.0.0.1", app.bound[0][1])
        await reader.readline()
        writer.write(b"EHLO a.test\r\n")
        while (await reader.readline())[3:4] == b"-":
            pass
        writer.write(b"STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n")
        await writer.drain()
        assert (await reader.readline()).startswith(b"220")
        ctx = ssl.create_default_context(cafile=str(certs.cert))
        await writer.start_tls(ctx, server_hostname="localhost")
        writer.write(b"EHLO a.test\r\n")
        while (await reader.readline())[3:4] == b"-":
            pass
        writer.write(b"RCPT TO:<b@partner.test>\r\n")
        reply = await reader.readline()
        writer.close()
    # Had the injected MAIL survived the handshake, RCPT would be accepted.
    assert reply.startswith(b"503"), reply
