"""`session_id` is bound for the whole SMTP session and for nothing else.

aiosmtpd runs each connection as a task of its own; the intake binds `session_id` in
structlog's contextvars where that task is created, so the session's events, its DATA
hook and the pipeline's `transaction` event all carry it, and the event loop's shared
context never keeps it for the next connection.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import aiosmtplib
import structlog
from structlog.testing import capture_logs

from tests.support.relay import running_relay

DATA = b"From: a@example.jp\r\nTo: b@partner.test\r\nSubject: hi\r\n\r\nhello\r\n"


async def test_every_event_of_a_session_carries_its_own_session_id(tmp_path: Path) -> None:
    """Two sessions, one delivered message (its event logged by the pipeline) and one the
    intake refuses itself (a line over 998 octets): every event of either names its session, the two
    differ, and an event logged afterwards outside any session carries none."""
    async with running_relay(upstream=f"maildir:{tmp_path / 'delivered'}") as app:
        port = app.bound[0][1]
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            for data in (DATA, DATA + b"x" * 1200 + b"\r\n"):
                async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as client:
                    await client.mail("a@example.jp")
                    await client.rcpt("b@partner.test")
                    with contextlib.suppress(aiosmtplib.SMTPDataError):
                        await client.data(data)
            structlog.get_logger("test").info("between_sessions")
    transactions = [e for e in logs if e["event"] == "transaction"]
    assert [e["reply_code"] for e in transactions] == [250, 550]
    assert len({e["session_id"] for e in transactions}) == 2
    of_a_message = [e for e in logs if "transaction_id" in e]
    assert of_a_message and all(e.get("session_id") for e in of_a_message)
    [after] = [e for e in logs if e["event"] == "between_sessions"]
    assert "session_id" not in after and "transaction_id" not in after
