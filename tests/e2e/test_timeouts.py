"""Timeouts mean what they say, against a real relay and a real upstream (small timeouts).

- `SMTP_TIMEOUT` is idle time: a slow upload that keeps sending is never cut; a silent
  client gets 421 and a `client_timeout` event.
- After the final dot the client is answered within `REPLY_DEADLINE` (451 4.4.2 if the
  upstream or inspection is not done), and is never left without a reply.
- Every transaction ends in exactly one `transaction` event: a late upstream, a client that
  hangs up, a shutdown past its grace.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from structlog.testing import capture_logs

from sendguard.inspect import Inspection
from sendguard.model import Envelope
from sendguard.pipeline import Inspects
from tests.e2e.wire import HEADERS, Wire
from tests.support.relay import running_relay
from tests.support.upstream import RecordingUpstream


class _Slow:
    """The relay's own inspector, `delay` seconds late (a backed-up extraction pool)."""

    def __init__(self, inner: Inspects, delay: float) -> None:
        self.inner = inner
        self.delay = delay

    async def inspect(
        self, envelope: Envelope, data: bytes, *, spooled: object = None
    ) -> Inspection:
        await asyncio.sleep(self.delay)
        return await self.inner.inspect(envelope, data)


def _events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == name]


async def _settle(logs: list[dict[str, Any]], timeout: float = 10.0) -> dict[str, Any]:  # noqa: ASYNC109
    """The one `transaction` event, once it has been logged (the pipeline may finish late)."""
    async with asyncio.timeout(timeout):
        while not _events(logs, "transaction"):  # noqa: ASYNC110  # a log list signals nothing
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # a second one would show up here
    [event] = _events(logs, "transaction")
    return event


async def test_slow_upload_is_not_cut(upstream: RecordingUpstream) -> None:
    """With a 1 s idle timeout, a 4 s upload in pieces 0.3 s apart is received whole."""
    body = HEADERS + b"".join(b"line %03d of a slow upload\r\n" % i for i in range(300))
    async with running_relay(upstream=upstream.url, smtp_timeout=1.0) as app:
        wire = await Wire.open(app.bound[0][1])
        await wire.start_data()
        size = len(body) // 14 + 1
        pieces = [body[i : i + size] for i in range(0, len(body), size)]
        assert len(pieces) == 14
        for piece in pieces:
            await wire.send(piece)
            await asyncio.sleep(0.3)
        await wire.send(b".\r\n")
        assert (await wire.reply()).startswith("250")
        # Pauses between commands count too, but only while the client is the one to speak.
        await asyncio.sleep(0.6)
        assert (await wire.command("NOOP")).startswith("250")
        wire.close()
    [got] = upstream.messages
    assert got.data == body


@pytest.mark.parametrize("phase", ["command", "data"])
async def test_silent_client_gets_421_and_an_event(upstream: RecordingUpstream, phase: str) -> None:
    """A client silent for the idle timeout gets `421 4.4.2`, the connection is closed, and a
    `client_timeout` event says when; in DATA, nothing is delivered."""
    async with running_relay(upstream=upstream.url, smtp_timeout=1.0) as app:
        with capture_logs() as logs:
            wire = await Wire.open(app.bound[0][1])
            if phase == "data":
                await wire.start_data()
                await wire.send(HEADERS + b"half a message\r\n")
            else:
                assert (await wire.command("EHLO client.test")).startswith("250")
            started = asyncio.get_running_loop().time()
            reply = await wire.reply(timeout=5)
            waited = asyncio.get_running_loop().time() - started
            rest = await wire.rest(timeout=5)
            wire.close()
    assert reply.startswith("421 4.4.2"), reply
    assert rest == b""
    assert 0.8 < waited < 3
    [event] = _events(logs, "client_timeout")
    assert event["phase"] == phase and event["idle"] == 1.0
    assert upstream.messages == []


async def test_late_upstream_gets_451_in_time_and_the_late_250_is_logged(
    upstream: RecordingUpstream,
) -> None:
    """The upstream answers the dot after the reply deadline: the client gets 451 4.4.2 at the
    deadline (not EOF), the upstream's later 250 is recorded in the one `transaction` event,
    and `duplicate_likely` names the transaction the 451 referred to."""
    upstream.hang_next("DATA", 2.5)
    async with running_relay(upstream=upstream.url, reply_deadline=1.0) as app:
        with capture_logs() as logs:
            wire = await Wire.open(app.bound[0][1])
            await wire.start_data()
            started = asyncio.get_running_loop().time()
            await wire.send(HEADERS + b"body\r\n.\r\n")
            reply = await wire.reply(timeout=5)
            answered_after = asyncio.get_running_loop().time() - started
            # The connection stays usable while the first message is still with the upstream.
            assert (await wire.command("RSET")).startswith("250")
            transaction = await _settle(logs)
            wire.close()
    assert reply.startswith("451 4.4.2"), reply
    assert 0.9 < answered_after < 2
    assert len(upstream.messages) == 1
    assert transaction["reply_code"] == 250 and transaction["client_reply_code"] == 451
    assert transaction["client_gone"] is False
    [late] = _events(logs, "duplicate_likely")
    reference = re.search(r"ref (\w+)", reply)
    assert reference is not None and late["transaction_id"] == reference.group(1)
    assert len(_events(logs, "reply_deadline_exceeded")) == 1


async def test_slow_inspection_past_the_deadline_is_not_delivered(
    upstream: RecordingUpstream,
) -> None:
    """Inspection still running at the deadline: the client gets 451 and will resend, so the
    message is not committed afterwards (no duplicate); the event records both replies."""
    async with running_relay(upstream=upstream.url, reply_deadline=0.5) as app:
        app.pipeline.inspector = _Slow(app.inspector, 1.5)  # type: ignore[assignment]
        with capture_logs() as logs:
            wire = await Wire.open(app.bound[0][1])
            reply = await wire.message(HEADERS + b"body\r\n")
            transaction = await _settle(logs)
            wire.close()
    assert reply.startswith("451 4.4.2"), reply
    assert upstream.messages == []
    assert transaction["client_reply_code"] == 451 and transaction["reply_code"] == 451
    assert transaction["action"] == "pass"
    assert _events(logs, "duplicate_likely") == []


async def test_client_gone_during_inspection(upstream: RecordingUpstream) -> None:
    """The client hangs up while its message is inspected: one `transaction` event with
    client_gone, and nothing is sent upstream (the client never got a 250, it resends)."""
    async with running_relay(upstream=upstream.url) as app:
        app.pipeline.inspector = _Slow(app.inspector, 1.0)  # type: ignore[assignment]
        with capture_logs() as logs:
            wire = await Wire.open(app.bound[0][1])
            await wire.start_data()
            await wire.send(HEADERS + b"body\r\n.\r\n")
            await asyncio.sleep(0.3)
            wire.close()
            transaction = await _settle(logs)
    assert transaction["client_gone"] is True and transaction["client_reply_code"] is None
    assert transaction["reply_code"] == 451 and transaction["action"] == "pass"
    assert upstream.messages == []
    assert [e["phase"] for e in _events(logs, "client_gone")] == ["processing"]


async def test_client_gone_during_delivery(upstream: RecordingUpstream) -> None:
    """The client hangs up after the message went upstream: the delivery is not cut
    half-way, its outcome is logged once, and the likely duplicate is flagged."""
    upstream.hang_next("DATA", 1.0)
    async with running_relay(upstream=upstream.url) as app:
        with capture_logs() as logs:
            wire = await Wire.open(app.bound[0][1])
            await wire.start_data()
            await wire.send(HEADERS + b"body\r\n.\r\n")
            await asyncio.sleep(0.3)
            wire.close()
            transaction = await _settle(logs)
    assert len(upstream.messages) == 1
    assert transaction["client_gone"] is True and transaction["reply_code"] == 250
    assert len(_events(logs, "duplicate_likely")) == 1


async def test_shutdown_past_the_grace_still_logs_the_transaction(
    upstream: RecordingUpstream,
) -> None:
    """SIGTERM's grace runs out while a message is inspected: the client gets 421 and the
    message's `transaction` event is still written (interrupted), nothing goes upstream."""
    with capture_logs() as logs:
        async with running_relay(upstream=upstream.url, shutdown_grace=0.3) as app:
            app.pipeline.inspector = _Slow(app.inspector, 30)  # type: ignore[assignment]
            wire = await Wire.open(app.bound[0][1])
            await wire.start_data()
            await wire.send(HEADERS + b"body\r\n.\r\n")
            await asyncio.sleep(0.2)
            started = asyncio.get_running_loop().time()
        stopped_after = asyncio.get_running_loop().time() - started
        reply = await wire.reply()
        wire.close()
    assert reply.startswith("421"), reply
    assert stopped_after < 5
    [transaction] = _events(logs, "transaction")
    assert transaction["reply_code"] == 421 and transaction["client_reply_code"] == 421
    assert upstream.messages == []
