"""Before-queue semantics: the client's reply mirrors the upstream's; 250 only if it said 250."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator

import pytest

from tests.support.relay import running_relay
from tests.support.tls import CertPair
from tests.support.upstream import RecordingUpstream


@pytest.fixture(params=[False, True], ids=["one-by-one", "pipelined"])
async def upstream(request: pytest.FixtureRequest) -> AsyncIterator[RecordingUpstream]:
    """Every fault both ways: commands one at a time, and pipelined (RFC 2920)."""
    async with RecordingUpstream(pipelining=request.param) as up:
        yield up


DATA = b"From: a@example.jp\r\nTo: b@partner.test\r\nSubject: t\r\n\r\nbody\r\n"


def _send(port: int, rcpts: list[str] | None = None) -> tuple[int, str]:
    """Send one message; return the code and text of the reply that decided it."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        try:
            client.sendmail("a@example.jp", rcpts or ["b@partner.test"], DATA)
        except smtplib.SMTPResponseException as exc:
            return exc.smtp_code, exc.smtp_error.decode()
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            return code, text.decode()
    return 250, ""


@pytest.mark.parametrize(
    ("stage", "reply"),
    [
        ("MAIL", "451 4.3.2 Try later"),
        ("MAIL", "550 5.7.1 Sender not allowed"),
        ("RCPT", "452 4.2.2 Mailbox full"),
        ("RCPT", "550 5.1.1 No such user"),
        ("DATA", "451 4.3.0 Queue trouble"),
        ("DATA", "554 5.7.1 Spam detected"),
    ],
)
async def test_upstream_refusal_is_mirrored(
    upstream: RecordingUpstream, stage: str, reply: str
) -> None:
    """A 4xx or 5xx at MAIL, RCPT or DATA reaches the client with the same code and text."""
    upstream.fail_next(stage, reply)  # type: ignore[arg-type]
    async with running_relay(upstream=upstream.url) as app:
        code, text = await asyncio.to_thread(_send, app.bound[0][1])
    assert code == int(reply[:3])
    assert reply[4:] in text
    assert upstream.messages == []


async def test_one_refused_recipient_refuses_all(upstream: RecordingUpstream) -> None:
    """Recipients are all-or-nothing: one refusal and no recipient gets the message."""
    upstream.fail_next("RCPT", "550 5.1.1 No such user", rcpt="c@partner.test")
    async with running_relay(upstream=upstream.url) as app:
        code, _ = await asyncio.to_thread(
            _send, app.bound[0][1], ["b@partner.test", "c@partner.test", "d@partner.test"]
        )
        assert code == 550
        assert upstream.messages == []
        # The reset session is reused cleanly for the next message.
        assert (await asyncio.to_thread(_send, app.bound[0][1]))[0] == 250
    assert len(upstream.messages) == 1


async def test_disconnect_after_final_dot_is_tempfail(upstream: RecordingUpstream) -> None:
    """If the upstream drops the line before answering the dot, the client gets 451, never 250."""
    upstream.disconnect_after_data()
    async with running_relay(upstream=upstream.url) as app:
        code, text = await asyncio.to_thread(_send, app.bound[0][1])
        assert code == 451 and "4.4.2" in text
        assert (await asyncio.to_thread(_send, app.bound[0][1]))[0] == 250


async def test_hanging_upstream_times_out_with_451(upstream: RecordingUpstream) -> None:
    """An upstream that never answers DATA costs the client one timeout and a 451."""
    upstream.hang_next("DATA", 30)
    async with running_relay(upstream=upstream.url, upstream_data_timeout=1.0) as app:
        code, text = await asyncio.to_thread(_send, app.bound[0][1])
    assert code == 451 and "timed out" in text


async def test_unreachable_upstream_is_tempfail() -> None:
    """No upstream listening: 451 4.4.1, the client keeps the message."""
    async with RecordingUpstream() as up:
        url = up.url
    async with running_relay(upstream=url) as app:
        code, text = await asyncio.to_thread(_send, app.bound[0][1])
    assert code == 451 and "4.4.1" in text


async def test_unverifiable_upstream_certificate_is_refused(certs: CertPair) -> None:
    """A self-signed upstream certificate that is not in our CA file is never trusted."""
    async with RecordingUpstream(tls=certs) as up, running_relay(upstream=up.url) as app:
        code, text = await asyncio.to_thread(_send, app.bound[0][1])
        assert code == 451 and "certificate" in text
        assert up.messages == []


async def test_upstream_sessions_are_reused(upstream: RecordingUpstream) -> None:
    """Five messages in a row use one upstream session (one EHLO), not five."""
    async with running_relay(upstream=upstream.url) as app:
        for _ in range(5):
            assert (await asyncio.to_thread(_send, app.bound[0][1]))[0] == 250
    assert len(upstream.messages) == 5
    assert sum(1 for c in upstream.commands if c.startswith("MAIL")) == 5
    assert upstream.connections == 1
