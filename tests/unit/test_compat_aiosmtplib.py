"""Contract with aiosmtplib's internals (`sendguard.compat`): the protocol's command lock and
"response pending" flag, and the greeting `smtp.data()` performs first. Against a real
aiosmtpd server on loopback."""

from __future__ import annotations

import aiosmtplib
import pytest

from sendguard import compat
from tests.support.upstream import RecordingUpstream


async def test_an_unconnected_client_has_no_data_protocol() -> None:
    assert compat.data_protocol(aiosmtplib.SMTP(hostname="127.0.0.1", port=1)) is None


async def test_a_prepared_payload_arrives_as_smtp_data_would_send_it() -> None:
    """The bytes the upstream receives are those `smtp.data()` sends for the same message."""
    message = b"Subject: t\r\n\r\n.leading dot\r\nline\r\n"
    async with RecordingUpstream() as upstream:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=upstream.port, start_tls=False)
        await smtp.connect()
        try:
            await smtp.mail("a@example.jp")
            await smtp.rcpt("b@example.jp")
            protocol = compat.data_protocol(smtp)
            assert protocol is not None
            await compat.ehlo_or_helo_if_needed(smtp)  # already greeted: a no-op
            stuffed = message.replace(b"\r\n.", b"\r\n..")
            cut = stuffed.index(b"\r\n") + 2  # in two pieces, as `stuffed_pieces` gives it
            response = await compat.execute_prepared_data(
                protocol, [stuffed[:cut], stuffed[cut:]], 10
            )
            assert response.code == 250
            await smtp.mail("a@example.jp")
            await smtp.rcpt("b@example.jp")
            await smtp.data(message)  # the public path, for comparison
        finally:
            await smtp.quit()
        first, second = await upstream.wait_for(2)
    assert first.data == second.data == message


async def test_a_refused_data_raises_smtp_data_error() -> None:
    async with RecordingUpstream() as upstream:
        upstream.fail_next("DATA", "554 5.7.1 no thanks")
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=upstream.port, start_tls=False)
        await smtp.connect()
        try:
            await smtp.mail("a@example.jp")
            await smtp.rcpt("b@example.jp")
            protocol = compat.data_protocol(smtp)
            assert protocol is not None
            with pytest.raises(aiosmtplib.SMTPDataError) as refused:
                await compat.execute_prepared_data(protocol, [b"Subject: t\r\n\r\nx\r\n"], 10)
            assert refused.value.code == 554
        finally:
            await smtp.quit()


async def test_the_greeting_happens_before_data_when_none_was_sent() -> None:
    async with RecordingUpstream() as upstream:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=upstream.port, start_tls=False)
        await smtp.connect()
        try:
            assert smtp.is_ehlo_or_helo_needed  # connect() does not greet by itself
            await compat.ehlo_or_helo_if_needed(smtp)
            assert not smtp.is_ehlo_or_helo_needed
            assert smtp.last_ehlo_response is not None and smtp.last_ehlo_response.code == 250
        finally:
            await smtp.quit()


async def test_pipelined_commands_get_their_replies_in_order() -> None:
    """`execute_pipelined` (the protocol's buffer, parser and waiter, and `data_received`
    put back afterwards) and `execute_prepared_payload` against a real server."""
    message = b"Subject: t\r\n\r\nline\r\n"
    async with RecordingUpstream(pipelining=True) as upstream:
        upstream.fail_next("RCPT", "550 5.1.1 no", rcpt="c@example.jp")
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=upstream.port, start_tls=False)
        await smtp.connect()
        try:
            await compat.ehlo_or_helo_if_needed(smtp)
            protocol = compat.data_protocol(smtp)
            assert protocol is not None
            received: list[aiosmtplib.SMTPResponse] = []
            batch = [b"MAIL FROM:<a@example.jp>\r\n", b"RCPT TO:<b@example.jp>\r\n",
                     b"RCPT TO:<c@example.jp>\r\n", b"DATA\r\n"]  # fmt: skip
            await compat.execute_pipelined(protocol, batch, 10, received)
            assert [r.code for r in received] == [250, 250, 550, 354]
            assert "data_received" not in vars(protocol)  # the class's own again
            response = await compat.execute_prepared_payload(protocol, [message], 10)
            assert response.code == 250
            with pytest.raises(ValueError, match="prohibited"):
                await compat.execute_pipelined(protocol, [b"NOOP\x00\r\n"], 10, [])
            assert (await smtp.noop()).code == 250  # the session goes on as before
        finally:
            await smtp.quit()
        (got,) = await upstream.wait_for(1)
    assert got.rcpt_tos == ("b@example.jp",) and got.data == message
