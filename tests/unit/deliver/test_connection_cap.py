"""Issue 11: upstream sessions are capped per process; waiters are served in order and a
waiter past its deadline gets a clear 451. Against the real recording upstream."""

from __future__ import annotations

import asyncio
import time

import aiosmtplib

from sendguard.deliver import SmtpOptions, SmtpUpstream, parse_target
from sendguard.model import Envelope
from tests.support.relay import running_relay
from tests.support.upstream import RecordingUpstream

DATA = b"From: a@example.jp\r\nTo: b@partner.test\r\nSubject: t\r\n\r\nbody\r\n"


def _client(upstream: RecordingUpstream, cap: int, wait: float = 30.0) -> SmtpUpstream:
    options = SmtpOptions(
        local_hostname="relay.test", timeout=wait, pool_size=cap, max_connections=cap
    )
    return SmtpUpstream(parse_target(upstream.url), options)


def _envelope(n: int) -> Envelope:
    return Envelope(mail_from="a@example.jp", rcpt_tos=(f"r{n}@partner.test",))


async def test_six_concurrent_messages_use_at_most_the_capped_sessions(
    upstream: RecordingUpstream,
) -> None:
    """Six messages at once against a slow upstream with a cap of 2: all are delivered, and
    the upstream never sees more than 2 sessions (before issue 11 it saw 6)."""
    for _ in range(6):
        upstream.hang_next("DATA", 0.3)
    client = _client(upstream, cap=2)
    try:
        replies = await asyncio.gather(*(client.send(_envelope(n), DATA) for n in range(6)))
    finally:
        await client.close()
    assert [r.code for r in replies] == [250] * 6
    assert len(upstream.messages) == 6
    assert upstream.peak_sessions == 2
    assert upstream.connections == 2


async def test_waiters_get_a_session_in_arrival_order(upstream: RecordingUpstream) -> None:
    """With one session, messages handed over one after another reach the upstream in that
    order, each waiting for the one before (a newcomer never overtakes a waiter)."""
    for _ in range(5):
        upstream.hang_next("DATA", 0.1)
    client = _client(upstream, cap=1)
    try:
        sends = []
        for n in range(5):
            sends.append(asyncio.create_task(client.send(_envelope(n), DATA)))
            await asyncio.sleep(0.01)  # arrivals in a known order
        replies = await asyncio.gather(*sends)
    finally:
        await client.close()
    assert [r.code for r in replies] == [250] * 5
    assert [m.rcpt_tos for m in upstream.messages] == [(f"r{n}@partner.test",) for n in range(5)]
    assert upstream.peak_sessions == 1


async def test_a_waiter_past_its_deadline_gets_451_and_nothing_is_sent(
    upstream: RecordingUpstream,
) -> None:
    """The only session is busy for 2 s; a second message may wait 0.5 s: it gets 451 4.4.5
    (the client keeps it and retries) and the upstream never sees it. The first still goes."""
    upstream.hang_next("DATA", 2.0)
    client = _client(upstream, cap=1, wait=0.5)
    try:
        first = asyncio.create_task(client.send(_envelope(0), DATA))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        second = await client.send(_envelope(1), DATA)
        waited = time.monotonic() - started
        assert (second.code, second.text[:5]) == (451, "4.4.5")
        assert "busy" in second.text
        assert 0.4 < waited < 1.5
        assert (await first).code == 250
        # The slot given up by the late waiter is not lost: the next message goes.
        assert (await client.send(_envelope(2), DATA)).code == 250
    finally:
        await client.close()
    assert [m.rcpt_tos for m in upstream.messages] == [("r0@partner.test",), ("r2@partner.test",)]


async def _send(port: int, n: int) -> str:
    """One real SMTP client submitting message `n`; the relay's final reply."""
    errors, text = await aiosmtplib.send(
        DATA, sender="a@example.jp", recipients=[f"r{n}@partner.test"],
        hostname="127.0.0.1", port=port, timeout=60,
    )  # fmt: skip
    assert not errors
    return text


async def test_the_relay_caps_upstream_sessions_from_its_setting(
    upstream: RecordingUpstream,
) -> None:
    """`SENDGUARD_UPSTREAM_MAX_CONNECTIONS=2`, six clients at once through a running relay:
    every client gets 250, the upstream sees at most 2 sessions."""
    for _ in range(6):
        upstream.hang_next("DATA", 0.3)
    async with running_relay(
        upstream=upstream.url, upstream_max_connections=2, upstream_pool_size=2
    ) as app:
        port = app.bound[0][1]
        replies = await asyncio.gather(*(_send(port, n) for n in range(6)))
    assert all(r.startswith("2.0.0") for r in replies), replies
    assert len(upstream.messages) == 6
    assert upstream.peak_sessions <= 2
