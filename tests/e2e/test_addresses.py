"""Addresses that could leave by a side door, tried as a hostile user through a real relay.

Each test drives a real client (smtplib) against a running relay with the shipped policy
(DNS detector pointed at a closed port) and a recording upstream: routing addresses
(percent hack, quoted ``@``, bang path), a domain written with ideographic full stops,
Resent-To, a Bcc field left in the message, and malformed To/Cc entries.
"""

from __future__ import annotations

import asyncio
import re
import smtplib
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from sendguard.cli.main import main as cli
from sendguard.deliver.smtp import SmtpOptions, SmtpUpstream
from sendguard.deliver.target import parse_target
from sendguard.model import Envelope
from tests.support.relay import running_relay
from tests.support.upstream import RecordingUpstream

REPO = Path(__file__).resolve().parents[2]
SENDER = "tanaka@example.co.jp"
NO_DNS = """
[detectors.unresolvable-domain]
nameservers = ["127.0.0.1"]
port = 9
query_timeout = 0.2
budget = 0.5
"""
ROUTING = [
    "user%b.example@example.co.jp",
    '"user@b.example"@example.co.jp',
    "b.example!user@example.co.jp",
]
SECRET = (
    "From: =?utf-8?b?55Sw5Lit?= <tanaka@example.co.jp>\r\n"
    "To: =?utf-8?b?5ouF5b2T?= <user@example.co.jp>\r\n"
    "Subject: =?utf-8?b?5pu46aGe?=\r\n"
    "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
    "MIME-Version: 1.0\r\n\r\n"
    "従業員のマイナンバー: 1234 5678 9018\r\n"
    "カード番号 4111 1111 1111 1111 有効期限 12/28\r\n"
).encode()


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    """The shipped policy (organisation example.co.jp) without real DNS."""
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "default.toml").write_bytes((REPO / "policies" / "default.toml").read_bytes())
    (directory / "dns.toml").write_text(NO_DNS, encoding="utf-8")
    return directory


def _transaction(
    port: int, rcpts: list[str], data: bytes, *, utf8: bool = False
) -> tuple[list[tuple[int, str]], tuple[int, str] | None]:
    """MAIL, each RCPT sent raw (no client-side quoting), DATA if any was accepted.

    Returns every RCPT reply and the reply to the final dot (None when no RCPT was taken).
    """
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.ehlo()
        if utf8:
            client.command_encoding = "utf-8"
        code, text = client.docmd(f"MAIL FROM:<{SENDER}>" + (" SMTPUTF8" if utf8 else ""))
        assert code == 250, text
        replies = []
        for rcpt in rcpts:
            code, text = client.docmd(f"RCPT TO:<{rcpt}>")
            replies.append((code, text.decode("utf-8", "replace")))
        if not any(code == 250 for code, _ in replies):
            return replies, None
        code, text = client.data(data)
        return replies, (code, text.decode())


async def _run(relay: Any, rcpts: list[str], data: bytes, **kw: bool) -> Any:
    return await asyncio.to_thread(_transaction, relay.bound[0][1], rcpts, data, **kw)


# --------------------------------------------------------------------------- routing addresses


@pytest.mark.parametrize("rcpt", ROUTING)
async def test_routing_address_is_refused_at_rcpt(
    rcpt: str, upstream: RecordingUpstream, shipped: Path
) -> None:
    """On main these were internal and relayed with a My Number; now 553 5.1.3 at RCPT."""
    with capture_logs() as logs:
        async with running_relay(upstream=upstream.url, policy_dir=shipped) as relay:
            replies, final = await _run(relay, [rcpt], SECRET)
    [(code, text)] = replies
    assert code == 553 and text.startswith("5.1.3") and "routing" in text, text
    assert final is None
    assert upstream.messages == []
    assert [e["event"] for e in logs].count("routing_address_refused") == 1


@pytest.mark.parametrize("rcpt", ROUTING)
async def test_routing_address_as_external_is_held_like_outside_mail(
    rcpt: str, upstream: RecordingUpstream, shipped: Path
) -> None:
    """``routing_addresses=external``: accepted, but it is outside mail for every rule, so the
    My Number and the card are held, not relayed to what would reach b.example."""
    async with running_relay(
        upstream=upstream.url, policy_dir=shipped, routing_addresses="external"
    ) as relay:
        replies, final = await _run(relay, [rcpt, "suzuki@example.co.jp"], SECRET)
    assert [code for code, _ in replies] == [250, 250]
    assert final is not None
    code, text = final
    assert code == 250 and "held by rule hold-my-number-card-external" in text, text
    assert upstream.messages == []


async def test_source_route_is_stripped_as_before(
    upstream: RecordingUpstream, shipped: Path
) -> None:
    """``<@relay.example:user@example.co.jp>``: the route is dropped (RFC 5321 §4.1.1.3)."""
    data = b"From: tanaka@example.co.jp\r\nTo: user@example.co.jp\r\nSubject: hi\r\n\r\nhi\r\n"
    async with running_relay(upstream=upstream.url, policy_dir=shipped) as relay:
        replies, final = await _run(relay, ["@relay.example:user@example.co.jp"], data)
    assert [code for code, _ in replies] == [250]
    assert final is not None and final[0] == 250
    [got] = upstream.messages
    assert got.rcpt_tos == ("user@example.co.jp",)


# --------------------------------------------------------------------------- non-ASCII domains

FULL_STOPS = "user@example\u3002co\u3002jp"


async def test_ideographic_full_stops_without_smtputf8_refused_at_rcpt(
    upstream: RecordingUpstream, shipped: Path
) -> None:
    """On main: 250 at RCPT, then 451 4.4.1 forever. Now 553 5.6.7 at RCPT."""

    def raw_rcpt(port: int) -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
            client.ehlo()
            client.mail(SENDER)
            # smtplib would refuse to encode it: the bytes go out as a careless client sends them
            client.send(f"RCPT TO:<{FULL_STOPS}>\r\n".encode())
            return client.getreply()

    async with running_relay(upstream=upstream.url, policy_dir=shipped) as relay:
        code, text = await asyncio.to_thread(raw_rcpt, relay.bound[0][1])
    assert code == 553 and text.startswith(b"5.6.7"), text
    assert upstream.messages == []


async def test_ideographic_full_stops_with_smtputf8_refused_at_rcpt(
    upstream: RecordingUpstream, shipped: Path
) -> None:
    """With SMTPUTF8 the domain is still not written as sent: 553 5.1.3 at RCPT."""
    async with running_relay(upstream=upstream.url, policy_dir=shipped) as relay:
        replies, final = await _run(relay, [FULL_STOPS], SECRET, utf8=True)
    [(code, text)] = replies
    assert code == 553 and text.startswith("5.1.3") and "canonical" in text, text
    assert final is None and upstream.messages == []


async def test_utf8_address_with_smtputf8_is_carried(
    upstream: RecordingUpstream, shipped: Path
) -> None:
    """The control: a canonical UTF-8 address with SMTPUTF8 is accepted and delivered."""
    data = "From: tanaka@example.co.jp\r\nTo: すずき@example.co.jp\r\n\r\nhi\r\n".encode()
    async with running_relay(upstream=upstream.url, policy_dir=shipped) as relay:
        replies, final = await _run(relay, ["すずき@example.co.jp"], data, utf8=True)
    assert [code for code, _ in replies] == [250]
    assert final is not None and final[0] == 250, final
    [got] = upstream.messages
    assert got.rcpt_tos == ("すずき@example.co.jp",) and "SMTPUTF8" in got.mail_options


async def test_utf8_address_refused_at_rcpt_when_the_upstream_lacks_smtputf8(
    shipped: Path,
) -> None:
    """A client that says SMTPUTF8 anyway (not advertised): refused at RCPT, not after DATA."""
    async with (
        RecordingUpstream(smtputf8=False) as plain,
        running_relay(upstream=plain.url, policy_dir=shipped) as relay,
    ):
        replies, final = await _run(relay, ["すずき@example.co.jp"], SECRET, utf8=True)
    [(code, text)] = replies
    assert code == 553 and text.startswith("5.6.7") and "upstream" in text, text
    assert final is None and plain.messages == []


async def test_upstream_refuses_unsendable_address_permanently(
    upstream: RecordingUpstream,
) -> None:
    """The last line: a non-ASCII address that reaches delivery without SMTPUTF8 (a message
    accepted before the RCPT check, released from the queue) is a 553, never a 451 to retry;
    nothing is sent and the session stays usable."""
    smtp = SmtpUpstream(parse_target(upstream.url), SmtpOptions(local_hostname="relay.test"))
    try:
        envelope = Envelope(mail_from=SENDER, rcpt_tos=("suzuki@example\u3002co\u3002jp",))
        reply = await smtp.send(envelope, b"Subject: x\r\n\r\nx\r\n")
        assert reply.code == 553 and reply.text.startswith("5.6.7"), reply
        assert upstream.commands == []
        ok = await smtp.send(
            Envelope(SENDER, ("suzuki@example.co.jp",)), b"Subject: y\r\n\r\ny\r\n"
        )
        assert ok.code == 250
    finally:
        await smtp.close()


async def test_utf8_sender_without_smtputf8_is_refused_at_mail(
    upstream: RecordingUpstream, shipped: Path
) -> None:
    """A non-ASCII MAIL FROM without SMTPUTF8 gets a clear 553 5.6.7 at MAIL, never a 451
    after DATA (the delivery side refuses it too, for mail that was queued before)."""

    def send(port: int) -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
            client.ehlo()
            client.send("MAIL FROM:<すずき@example.co.jp>\r\n".encode())
            return client.getreply()

    async with running_relay(upstream=upstream.url, policy_dir=shipped) as relay:
        code, text = await asyncio.to_thread(send, relay.bound[0][1])
    assert code == 553 and text.startswith(b"5.6.7"), text
    assert upstream.messages == []


# --------------------------------------------------------------------------- headers


async def test_resent_to_outside_addresses_are_visible_recipients(
    upstream: RecordingUpstream, shipped: Path
) -> None:
    """12 customers in Resent-To: on main not inspected; now the shipped rule moves them out
    of sight, while every envelope recipient still gets the message."""
    customers = [f"c{i}@client{i}.example" for i in range(12)]
    data = (
        "From: tanaka@example.co.jp\r\nTo: suzuki@example.co.jp\r\nSubject: fw\r\n"
        "Resent-From: tanaka@example.co.jp\r\n"
        f"Resent-To: {', '.join(customers)}\r\n\r\nhello\r\n"
    ).encode()
    async with running_relay(upstream=upstream.url, policy_dir=shipped) as relay:
        _, final = await _run(relay, customers, data)
    assert final is not None and final[0] == 250
    [got] = upstream.messages
    assert sorted(got.rcpt_tos) == sorted(customers)
    header = got.data.split(b"\r\n\r\n", 1)[0]
    assert b"X-Sendguard-Rewritten" in header and b"rule=bcc-many-external-visible" in header
    assert not any(c.encode() in header for c in customers)


BCC_MESSAGE = (
    b"From: tanaka@example.co.jp\r\nTo: partner@partner.example.jp\r\n"
    b"Bcc: boss@example.co.jp,\r\n\tshacho@example.co.jp\r\nSubject: quote\r\n"
    b"Message-ID: <bcc1@example.co.jp>\r\n\r\nHello\r\n"
)
WITHOUT_BCC = re.sub(rb"Bcc:[^\n]*\n\t[^\n]*\n", b"", BCC_MESSAGE)


async def test_bcc_header_is_removed_before_relaying(
    upstream: RecordingUpstream, shipped: Path
) -> None:
    """On main the Bcc field went upstream as is; now it is removed (logged), nothing else."""
    rcpts = ["partner@partner.example.jp", "boss@example.co.jp", "shacho@example.co.jp"]
    with capture_logs() as logs:
        async with running_relay(upstream=upstream.url, policy_dir=shipped) as relay:
            _, final = await _run(relay, rcpts, BCC_MESSAGE)
    assert final is not None and final[0] == 250
    [got] = upstream.messages
    assert got.data == WITHOUT_BCC != BCC_MESSAGE
    assert got.rcpt_tos == tuple(rcpts)
    assert [e.get("fields") for e in logs if e["event"] == "bcc_header_removed"] == [1]


async def test_bcc_header_kept_when_set_to_keep(upstream: RecordingUpstream, shipped: Path) -> None:
    """``bcc_header=keep``: the message arrives byte for byte, Bcc included."""
    async with running_relay(upstream=upstream.url, policy_dir=shipped, bcc_header="keep") as relay:
        _, final = await _run(relay, ["partner@partner.example.jp"], BCC_MESSAGE)
    assert final is not None and final[0] == 250
    assert upstream.messages[0].data == BCC_MESSAGE


async def test_held_message_loses_its_bcc_at_release(
    upstream: RecordingUpstream, shipped: Path, tmp_path: Path
) -> None:
    """The queue keeps the original (reviewers see what was written); the release, prepared by
    the same function as live mail, removes the Bcc field."""
    store = f"sqlite:///{tmp_path}/queue.db"
    data = BCC_MESSAGE.replace(b"partner@partner.example.jp", b"yamada@gmial.com")
    async with running_relay(upstream=upstream.url, policy_dir=shipped, store=store) as relay:
        _, final = await _run(relay, ["yamada@gmial.com"], data)
        assert final is not None
        code, text = final
        assert code == 250 and "held by rule hold-lookalike-domain" in text, text
        queue_id = re.findall(r" as (\S+):", text)[0]
        released = await asyncio.to_thread(
            cli, ["queue", "release", queue_id, "--store", store, "--actor", "boss"]
        )
        assert released == 0
        for _ in range(100):
            delivered = [m for m in upstream.messages if m.rcpt_tos == ("yamada@gmial.com",)]
            if delivered:
                break
            await asyncio.sleep(0.1)
    [got] = delivered
    assert got.data == WITHOUT_BCC.replace(b"partner@partner.example.jp", b"yamada@gmial.com")


async def test_malformed_to_going_outside_is_held_by_its_own_rule(
    upstream: RecordingUpstream, shipped: Path
) -> None:
    """On main a broken To was "attachment could not be inspected"; now it is
    visible-recipients/malformed, and the shipped policy holds it for outside mail."""
    data = (REPO / "policies" / "tests" / "malformed-recipients.eml").read_bytes()
    async with running_relay(upstream=upstream.url, policy_dir=shipped) as relay:
        _, final = await _run(relay, ["contact@agency.example"], data)
    assert final is not None
    code, text = final
    assert code == 250 and "held by rule hold-malformed-recipients-external" in text, text
    assert upstream.messages == [] or all(
        m.rcpt_tos != ("contact@agency.example",) for m in upstream.messages
    )
