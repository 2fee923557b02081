"""XFORWARD and XCLIENT on the wire: who may send them, what they change and for how long.

A real relay on loopback; the test client plays the Postfix host (127.0.0.1), so every
dialogue is exact. tests/e2e/test_postfix_front.py does the same through a real Postfix.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from sendguard.intake.auth import UsersFile
from tests.support.relay import running_relay, write_policy
from tests.support.tls import CertPair
from tests.support.upstream import RecordingUpstream

POLICY = """\
allow_empty = true  # no rule: the relay decision is what these tests look at

[organisation]
internal_domains = ["example.co.jp"]

[people.tanaka]
addresses = ["tanaka@example.co.jp"]

[detectors.unresolvable-domain]
enabled = false
"""
MESSAGE = b"From: <tanaka@example.co.jp>\r\nSubject: hi\r\n\r\nhello\r\n."
POSTFIX_HEADER = (
    b"Received: from pc9 (pc9.example [203.0.113.9])\r\n"
    b"\t(Authenticated sender: tanaka)\r\n"
    b"\tby mx.example.co.jp (Postfix) with ESMTPSA id 4XkQ2\r\n"
    b"\tfor <yamada@partner.test>; Sun, 29 Nov 2026 13:01:32 +0000 (UTC)\r\n"
)


class Wire:
    """One SMTP connection: `cmd` sends a line and returns the whole reply."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def reply(self) -> str:
        lines = []
        while True:
            line = (await asyncio.wait_for(self.reader.readline(), 10)).decode()
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return "".join(lines)

    async def cmd(self, line: bytes) -> str:
        self.writer.write(line + b"\r\n")
        return await self.reply()

    async def mail(self, sender: str, data: bytes = MESSAGE) -> list[str]:
        """MAIL, RCPT, DATA and the message: the four replies (DATA's stop at a refusal)."""
        got = [await self.cmd(f"MAIL FROM:<{sender}>".encode())]
        got.append(await self.cmd(b"RCPT TO:<yamada@partner.test>"))
        got.append(await self.cmd(b"DATA"))
        if got[-1].startswith("354"):
            got.append(await self.cmd(data))
        return got


@asynccontextmanager
async def relay(tmp_path: Path, forwarders: str) -> AsyncIterator[tuple[int, RecordingUpstream]]:
    """A relay that trusts loopback (the default) and 192.0.2.0/24, with these forwarders."""
    async with (
        RecordingUpstream() as upstream,
        running_relay(
            upstream=upstream.url,
            policy_dir=write_policy(tmp_path / "policies", POLICY),
            trusted_networks="127.0.0.0/8,192.0.2.0/24",
            xforward_hosts=forwarders,
        ) as app,
    ):
        yield app.bound[0][1], upstream


@asynccontextmanager
async def wire(port: int) -> AsyncIterator[Wire]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = Wire(reader, writer)
    assert (await conn.reply()).startswith("220")
    try:
        yield conn
    finally:
        writer.close()


def _events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e.get("event") == name]


async def test_only_configured_hosts_may_forward(tmp_path: Path) -> None:
    """Anyone else sees neither extension in EHLO and gets 550 5.7.0 and an event; mail from
    that host is still judged by its own address."""
    async with relay(tmp_path, "10.9.9.9/32") as (port, upstream), wire(port) as c:
        ehlo = await c.cmd(b"EHLO pc.test")
        with capture_logs() as logs:
            xforward = await c.cmd(b"XFORWARD ADDR=192.0.2.7 NAME=pc7.example")
            xclient = await c.cmd(b"XCLIENT LOGIN=tanaka")
        replies = await c.mail("someone@example.co.jp")
    assert "XFORWARD" not in ehlo and "XCLIENT" not in ehlo
    assert xforward.startswith("550 5.7.0") and xclient.startswith("550 5.7.0")
    refused = _events(logs, "forward_refused")
    assert [(e["command"], e["client"]) for e in refused] == [
        ("XFORWARD", "127.0.0.1"),
        ("XCLIENT", "127.0.0.1"),
    ]
    assert replies[-1].startswith("250")  # loopback is trusted and forwarded nothing
    assert len(upstream.messages) == 1


async def test_forwarded_address_decides_and_is_reset_after_each_transaction(
    tmp_path: Path,
) -> None:
    """XFORWARD holds for one transaction (RSET and the final dot end it). The forwarder's
    own address, trusted as it is, never lets mail through: no open relay behind Postfix."""
    async with relay(tmp_path, "127.0.0.1/32") as (port, upstream), wire(port) as c:
        ehlo = await c.cmd(b"EHLO postfix.test")
        with capture_logs() as logs:
            assert (await c.cmd(b"XFORWARD NAME=pc7.example ADDR=192.0.2.7")).startswith("250")
            assert (await c.cmd(b"XFORWARD HELO=pc7 IDENT=4XkQ1 SOURCE=REMOTE")).startswith("250")
            trusted = await c.mail("tanaka@example.co.jp")
            unforwarded = await c.mail("tanaka@example.co.jp")  # reset after the dot
            await c.cmd(b"RSET")
            await c.cmd(b"XFORWARD ADDR=192.0.2.7")
            await c.cmd(b"RSET")
            after_rset = await c.mail("tanaka@example.co.jp")
    assert "250-XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE" in ehlo
    assert "250-XCLIENT NAME ADDR PORT PROTO HELO LOGIN" in ehlo
    assert trusted[-1].startswith("250")
    assert unforwarded[1].startswith("550 5.7.1") and after_rset[1].startswith("550 5.7.1")
    [transaction] = _events(logs, "transaction")
    assert (transaction["client"], transaction["via"], transaction["postfix_id"]) == (
        "192.0.2.7",
        "127.0.0.1",
        "4XkQ1",
    )
    assert [e["client"] for e in _events(logs, "relay_denied")] == ["127.0.0.1", "127.0.0.1"]
    assert len(upstream.messages) == 1


async def test_untrusted_forwarded_client_needs_the_login_postfix_names(tmp_path: Path) -> None:
    """An untrusted (or [UNAVAILABLE]) address relays only with the SASL login in Postfix's own
    Received: header, and only as a sender that login owns."""
    forward = b"XFORWARD NAME=pc9.example ADDR=203.0.113.9 HELO=pc9 IDENT=4XkQ2"
    async with relay(tmp_path, "127.0.0.1/32") as (port, upstream), wire(port) as c:
        await c.cmd(b"EHLO postfix.test")
        with capture_logs() as logs:
            await c.cmd(forward)
            anonymous = await c.mail("tanaka@example.co.jp")
            await c.cmd(b"XFORWARD ADDR=[UNAVAILABLE] SOURCE=LOCAL")
            unknown = await c.mail("tanaka@example.co.jp")
            await c.cmd(forward)
            forged = await c.mail("shacho@example.co.jp", POSTFIX_HEADER + MESSAGE)
            await c.cmd(forward)
            owned = await c.mail("tanaka@example.co.jp", POSTFIX_HEADER + MESSAGE)
    assert anonymous[1].startswith("250")  # decided at DATA, where Postfix's header is
    assert anonymous[-1].startswith("550 5.7.1") and unknown[-1].startswith("550 5.7.1")
    assert forged[-1].startswith("553 5.7.1")
    assert owned[-1].startswith("250")
    [mismatch] = _events(logs, "sender_login_mismatch")
    assert (mismatch["user"], mismatch["client"], mismatch["via"]) == (
        "tanaka",
        "203.0.113.9",
        "127.0.0.1",
    )
    # Every refusal at DATA has its transaction event too, with the client behind Postfix.
    transactions = _events(logs, "transaction")
    assert [(e["reply_code"], e["client"], e["via"]) for e in transactions] == [
        (550, "203.0.113.9", "127.0.0.1"),
        (550, "", "127.0.0.1"),  # [UNAVAILABLE]
        (553, "203.0.113.9", "127.0.0.1"),
        (250, "203.0.113.9", "127.0.0.1"),
    ]
    assert transactions[-1]["auth_user"] == "tanaka"
    assert len(upstream.messages) == 1


async def test_xforward_syntax_and_transaction_state(tmp_path: Path) -> None:
    """501 for what the README does not allow, 503 inside a transaction; neither changes the
    attributes already given."""
    async with relay(tmp_path, "127.0.0.1/32") as (port, _upstream), wire(port) as c:
        await c.cmd(b"EHLO postfix.test")
        assert (await c.cmd(b"XFORWARD ADDR=192.0.2.7")).startswith("250")
        bad = [
            await c.cmd(b"XFORWARD"),
            await c.cmd(b"XFORWARD LOGIN=tanaka"),
            await c.cmd(b"XFORWARD ADDR=2001:db8::1"),
            await c.cmd(b"XFORWARD ADDR=203.0.113.9 PORT=70000"),
        ]
        assert (await c.cmd(b"MAIL FROM:<tanaka@example.co.jp>")).startswith("250")
        mid = await c.cmd(b"XFORWARD ADDR=203.0.113.9")
        rcpt = await c.cmd(b"RCPT TO:<yamada@partner.test>")
    assert all(r.startswith("501 5.5.4") for r in bad), bad
    assert mid.startswith("503 5.5.1")
    assert rcpt.startswith("250")  # still 192.0.2.7: trusted


async def test_xclient_starts_the_session_again_with_the_login_bound(tmp_path: Path) -> None:
    """XCLIENT answers with a new 220 greeting, wants EHLO again, keeps its attributes for
    the session; the forwarded LOGIN may send only as its own addresses. Once ADDR names a
    client that is not a forwarder, that client may not forward any more (as Postfix)."""
    async with relay(tmp_path, "127.0.0.1/32") as (port, upstream), wire(port) as c:
        await c.cmd(b"EHLO proxy.test")
        greeting = await c.cmd(b"XCLIENT LOGIN=tanaka HELO=pc9 ADDR=203.0.113.9")
        before_ehlo = await c.cmd(b"MAIL FROM:<tanaka@example.co.jp>")
        ehlo = await c.cmd(b"EHLO pc9")
        again = await c.cmd(b"XCLIENT LOGIN=shacho")
        with capture_logs() as logs:
            forged = await c.cmd(b"MAIL FROM:<shacho@example.co.jp>")
            first = await c.mail("tanaka@example.co.jp")
            second = await c.mail("tanaka@example.co.jp")  # XCLIENT holds for the session
    assert greeting.startswith("220 ")
    assert before_ehlo.startswith("503")
    assert "XCLIENT" not in ehlo and again.startswith("550 5.7.0")
    assert forged.startswith("553 5.7.1")
    assert first[-1].startswith("250") and second[-1].startswith("250")
    transactions = _events(logs, "transaction")
    assert [(e["auth_user"], e["client"], e["via"]) for e in transactions] == [
        ("tanaka", "203.0.113.9", "127.0.0.1")
    ] * 2
    assert len(upstream.messages) == 2


async def test_postfix_login_is_bound_even_from_a_trusted_address(tmp_path: Path) -> None:
    """A trusted address would relay without a login, but when Postfix names one, that login
    is the client's: the policy sees it and the sender binding applies."""
    header = POSTFIX_HEADER.replace(b"203.0.113.9", b"192.0.2.9")
    forward = b"XFORWARD NAME=pc9.example ADDR=192.0.2.9 HELO=pc9"
    async with relay(tmp_path, "127.0.0.1/32") as (port, upstream), wire(port) as c:
        await c.cmd(b"EHLO postfix.test")
        with capture_logs() as logs:
            await c.cmd(forward)
            forged = await c.mail("shacho@example.co.jp", header + MESSAGE)
            await c.cmd(forward)
            owned = await c.mail("tanaka@example.co.jp", header + MESSAGE)
            await c.cmd(forward)
            anonymous = await c.mail("scanner@example.co.jp")  # no header: trusted, no login
    assert forged[-1].startswith("553 5.7.1")
    assert owned[-1].startswith("250") and anonymous[-1].startswith("250")
    sent = [e for e in _events(logs, "transaction") if e["reply_code"] == 250]
    assert [(e["auth_user"], e["client"]) for e in sent] == [
        ("tanaka", "192.0.2.9"),
        (None, "192.0.2.9"),
    ]
    assert len(upstream.messages) == 2


async def test_xclient_is_refused_after_auth(tmp_path: Path, certs: CertPair) -> None:
    """An AUTH identity belongs to whoever logged in (here the forwarder itself): XCLIENT
    cannot swap it for another login afterwards (503), and the AUTH login still binds."""
    users = tmp_path / "users"
    UsersFile(users).add("tanaka", "correct horse battery")
    async with (
        RecordingUpstream() as upstream,
        running_relay(
            upstream=upstream.url,
            policy_dir=write_policy(tmp_path / "policies", POLICY),
            xforward_hosts="127.0.0.1/32",
            auth_mode="local",
            users_file=users,
            tls_cert=certs.cert,
            tls_key=certs.key,
        ) as app,
    ):

        def run() -> tuple[tuple[int, bytes], tuple[int, bytes]]:
            with smtplib.SMTP("127.0.0.1", app.bound[0][1], timeout=15) as client:
                client.ehlo()
                client.starttls(context=ssl.create_default_context(cafile=str(certs.cert)))
                client.login("tanaka", "correct horse battery")
                xclient = client.docmd("XCLIENT", "LOGIN=shacho")
                return xclient, client.mail("shacho@example.co.jp")

        xclient, mail = await asyncio.to_thread(run)
    assert xclient[0] == 503 and b"after AUTH" in xclient[1]
    assert mail[0] == 553
