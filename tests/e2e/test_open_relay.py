"""Never an open relay (RFC 5321 §7.9): untrusted clients must authenticate, and only after TLS."""

from __future__ import annotations

import asyncio
import base64

from tests.support.relay import running_relay
from tests.support.tls import CertPair
from tests.support.upstream import RecordingUpstream


async def _dialogue(port: int, lines: list[bytes]) -> list[str]:
    """Send each command and collect the complete reply to it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    replies = [(await reader.readline()).decode()]
    for line in lines:
        writer.write(line + b"\r\n")
        await writer.drain()
        reply = ""
        while True:
            got = (await reader.readline()).decode()
            reply += got
            if len(got) < 4 or got[3] != "-":
                break
        replies.append(reply)
    writer.close()
    return replies


async def test_untrusted_unauthenticated_client_refused_at_rcpt(
    upstream: RecordingUpstream,
) -> None:
    """With no trusted network, RCPT without AUTH gets 550 5.7.1; nothing reaches the upstream."""
    async with running_relay(upstream=upstream.url, trusted_networks="") as app:
        replies = await _dialogue(
            app.bound[0][1],
            [
                b"EHLO probe.test",
                b"MAIL FROM:<spammer@evil.test>",
                b"RCPT TO:<victim@example.com>",
                b"DATA",
            ],
        )
    assert replies[3].startswith("550 5.7.1")
    assert replies[4].startswith("503")
    assert upstream.messages == []


async def test_trusted_network_excludes_other_addresses(upstream: RecordingUpstream) -> None:
    """A trusted network that does not contain the client does not let it relay."""
    async with running_relay(upstream=upstream.url, trusted_networks="10.0.0.0/8,::1/128") as app:
        replies = await _dialogue(
            app.bound[0][1],
            [
                b"EHLO probe.test",
                b"MAIL FROM:<a@example.jp>",
                b"RCPT TO:<b@example.com>",
            ],
        )
    assert replies[3].startswith("550 5.7.1")


async def test_auth_before_starttls_refused(certs: CertPair, upstream: RecordingUpstream) -> None:
    """AUTH is not offered and is refused in clear text, even with valid-looking credentials."""
    blob = base64.b64encode(b"\0alice\0password123").decode()
    async with running_relay(
        upstream=upstream.url,
        trusted_networks="",
        auth_mode="local",
        tls_cert=certs.cert,
        tls_key=certs.key,
    ) as app:
        replies = await _dialogue(
            app.bound[0][1],
            [
                b"EHLO probe.test",
                f"AUTH PLAIN {blob}".encode(),
                b"MAIL FROM:<a@example.jp>",
                b"RCPT TO:<b@example.com>",
            ],
        )
    assert "AUTH" not in replies[1]
    assert "STARTTLS" in replies[1]
    assert replies[2].startswith("538")
    assert replies[4].startswith("550 5.7.1")


async def test_invalid_addresses_refused_before_upstream(upstream: RecordingUpstream) -> None:
    """Addresses our strict parser refuses never reach aiosmtplib's lenient quoting."""
    async with running_relay(upstream=upstream.url) as app:
        replies = await _dialogue(
            app.bound[0][1],
            [
                b"EHLO probe.test",
                b"MAIL FROM:<a@example.jp>",
                b"RCPT TO:<alice@example.org)<bob@example.org>",
                b"RCPT TO:<no-domain>",
                b"RCPT TO:<ok@example.com> NOTIFY=SUCCESS",
            ],
        )
    assert replies[3].startswith("553") or replies[3].startswith("501")
    assert replies[4].startswith("553")
    assert replies[5].startswith("555")


async def test_recipient_limit(upstream: RecordingUpstream) -> None:
    """More recipients than max_recipients get 452 4.5.3 (the client sends the rest later)."""
    async with running_relay(upstream=upstream.url, max_recipients=2) as app:
        replies = await _dialogue(
            app.bound[0][1],
            [
                b"EHLO probe.test",
                b"MAIL FROM:<a@example.jp>",
                b"RCPT TO:<b1@example.com>",
                b"RCPT TO:<b2@example.com>",
                b"RCPT TO:<b3@example.com>",
            ],
        )
    assert replies[4].startswith("250")
    assert replies[5].startswith("452 4.5.3")
