"""aiosmtpd behaves as documented: long lines get 550 5.6.0 from the first line over 998
octets, and the limits of one connection never leak into the next."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from sendguard.intake.server import RelaySMTP
from tests.e2e.wire import HEADERS, Wire
from tests.support.relay import running_relay
from tests.support.upstream import RecordingUpstream


async def test_long_lines_get_550_5_6_0(upstream: RecordingUpstream) -> None:
    """A line of 999 octets or more (without its CRLF) is refused with 550 5.6.0 after the
    final dot, nothing goes upstream, and the same connection then sends a message that
    passes."""
    async with running_relay(upstream=upstream.url) as app:
        wire = await Wire.open(app.bound[0][1])
        with capture_logs() as logs:
            for length in (999, 1000, 5000, 1_000_000):
                reply = await wire.message(HEADERS + b"x" * length + b"\r\nmore\r\n")
                assert reply.startswith("550 5.6.0"), (length, reply)
                assert (await wire.command("RSET")).startswith("250")
            after = await wire.message(HEADERS + b"fine\r\n")
        wire.close()
    assert after.startswith("250"), after
    assert [m.data for m in upstream.messages] == [HEADERS + b"fine\r\n"]
    # Refused by the intake or passed by the pipeline, each has its one transaction event.
    events = [e for e in logs if e["event"] == "transaction"]
    assert [(e["reply_code"], e["rule"]) for e in events] == [(550, "intake")] * 4 + [(250, None)]


async def test_longest_lines_that_pass(upstream: RecordingUpstream) -> None:
    """998 octets pass, also when the line starts with a dot (999 octets on the wire)."""
    body = HEADERS + b"y" * 998 + b"\r\n" + b"." + b"z" * 997 + b"\r\n"
    stuffed = HEADERS + b"y" * 998 + b"\r\n" + b".." + b"z" * 997 + b"\r\n"
    async with running_relay(upstream=upstream.url) as app:
        wire = await Wire.open(app.bound[0][1])
        reply = await wire.message(stuffed)
        wire.close()
    assert reply.startswith("250"), reply
    assert [m.data for m in upstream.messages] == [body]


async def test_over_long_command_line(upstream: RecordingUpstream) -> None:
    """A command line longer than the stream limit is read to its end and answered 500; the
    session goes on."""
    async with running_relay(upstream=upstream.url) as app:
        wire = await Wire.open(app.bound[0][1])
        assert (await wire.command("EHLO client.test")).startswith("250")
        assert (await wire.command(b"NOOP " + b"n" * 100_000)).startswith("500")
        assert (await wire.command("NOOP")).startswith("250")
        wire.close()


def _mail(length: int) -> bytes:
    """A valid MAIL command of exactly `length` octets (without CRLF), padded in SIZE=."""
    head = b"MAIL FROM:<a@example.jp> SIZE="
    return head + b"1".rjust(length - len(head), b"0")


async def test_limits_do_not_grow_over_connections(upstream: RecordingUpstream) -> None:
    """aiosmtpd adds 36 octets to MAIL's limit at every EHLO, process-wide. Over ten
    connections with two EHLOs each, MAIL's limit stays 512 + 26 (SIZE) + 10 (SMTPUTF8)."""
    async with running_relay(upstream=upstream.url) as app:
        for _ in range(10):
            wire = await Wire.open(app.bound[0][1])
            for _ in range(2):
                assert (await wire.command("EHLO client.test")).startswith("250")
            [conn] = app.intake.connections
            assert isinstance(conn, RelaySMTP)
            assert conn.max_command_size_limit == 548
            assert (await wire.command(_mail(549))).startswith("500"), "over the limit"
            assert (await wire.command(_mail(548))).startswith("250"), "at the limit"
            assert (await wire.command("QUIT")).startswith("221")
            wire.close()
            await asyncio.sleep(0.01)
