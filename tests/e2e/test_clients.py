"""Real SMTP clients (swaks, smtplib) → sendguard → a real upstream, in both auth modes."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from pathlib import Path

import structlog

from sendguard.intake.auth import UsersFile
from tests.conftest import need_tool
from tests.support.relay import run_tool, running_relay
from tests.support.tls import CertPair
from tests.support.upstream import RecordingUpstream

MESSAGE = (
    b"From: Alice <alice@example.jp>\r\nTo: Bob <bob@partner.test>\r\n"
    b"Subject: =?UTF-8?B?5pel5pys6Kqe?=\r\nMessage-ID: <m1@example.jp>\r\n\r\n"
    b"Hello\r\n.leading dot survives\r\n"
)


async def test_swaks_plain_from_trusted_network(upstream: RecordingUpstream) -> None:
    """A trusted client's mail reaches the upstream, and the client gets the upstream's 250."""
    async with running_relay(upstream=upstream.url) as app:
        code, out = await run_tool(
            need_tool("swaks"),
            "--server",
            f"127.0.0.1:{app.bound[0][1]}",
            "--from",
            "alice@example.jp",
            "--to",
            "bob@partner.test",
            "--h-Subject",
            "plain",
        )
    assert code == 0, out
    assert "250 2.0.0 Ok: queued as R1" in out
    [got] = upstream.messages
    assert got.mail_from == "alice@example.jp" and got.rcpt_tos == ("bob@partner.test",)


async def test_swaks_many_recipients_all_delivered(upstream: RecordingUpstream) -> None:
    """A 150-recipient message arrives once with every envelope recipient."""
    rcpts = [f"user{i}@customer{i % 7}.test" for i in range(150)]
    async with running_relay(upstream=upstream.url) as app:
        code, out = await run_tool(
            need_tool("swaks"),
            "--server",
            f"127.0.0.1:{app.bound[0][1]}",
            "--from",
            "alice@example.jp",
            "--to",
            ",".join(rcpts),
            "--header",
            "To: undisclosed-recipients:;",
        )
    assert code == 0, out
    [got] = upstream.messages
    assert list(got.rcpt_tos) == rcpts


async def test_swaks_8bit_body_carried_with_8bitmime(upstream: RecordingUpstream) -> None:
    """An 8-bit UTF-8 body with BODY=8BITMIME arrives byte-identical and keeps the parameter."""
    body = "件名なし\r\n本文は日本語です。\r\n".encode()
    data = (
        b"From: a@example.jp\r\nTo: b@partner.test\r\nSubject: 8bit\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body
    )

    def send(port: int) -> None:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail(
                "a@example.jp", ["b@partner.test"], data, mail_options=["BODY=8BITMIME"]
            )

    async with running_relay(upstream=upstream.url) as app:
        await asyncio.to_thread(send, app.bound[0][1])
    [got] = upstream.messages
    assert got.data == data
    assert "BODY=8BITMIME" in got.mail_options


async def test_smtplib_byte_identical(upstream: RecordingUpstream) -> None:
    """smtplib's message, including a dot-stuffed line, arrives upstream byte for byte."""

    def send(port: int) -> dict[str, tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", port) as client:
            return client.sendmail("alice@example.jp", ["bob@partner.test"], MESSAGE)

    async with running_relay(upstream=upstream.url) as app:
        refused = await asyncio.to_thread(send, app.bound[0][1])
    assert refused == {}
    assert upstream.messages[0].data == MESSAGE


async def _swaks_local_auth(
    upstream: RecordingUpstream, certs: CertPair, tmp_path: Path, mechanism: str, password: str
) -> tuple[int, str, list[dict[str, object]]]:
    """swaks → STARTTLS + AUTH as alice (users file) on a relay that trusts no network."""
    users = tmp_path / "users"
    UsersFile(users).add("alice", "correct horse battery")
    with structlog.testing.capture_logs() as logs:
        async with running_relay(
            upstream=upstream.url,
            trusted_networks="",
            auth_mode="local",
            users_file=users,
            tls_cert=certs.cert,
            tls_key=certs.key,
        ) as app:
            code, out = await run_tool(
                need_tool("swaks"), "--server", f"127.0.0.1:{app.bound[0][1]}", "--tls",
                "--auth", mechanism, "--auth-user", "alice", "--auth-password", password,
                "--from", "alice@example.jp", "--to", "bob@partner.test",
            )  # fmt: skip
    return code, out, logs


async def test_starttls_and_local_auth_with_swaks(
    upstream: RecordingUpstream, certs: CertPair, tmp_path: Path
) -> None:
    """With no trusted network, a user from the users file relays after STARTTLS + AUTH PLAIN."""
    code, out, logs = await _swaks_local_auth(
        upstream, certs, tmp_path, "PLAIN", "correct horse battery"
    )
    assert code == 0, out
    assert "235 2.7.0 Authentication successful" in out
    assert len(upstream.messages) == 1
    assert any(e.get("auth_user") == "alice" for e in logs if e["event"] == "transaction")
    assert "correct horse battery" not in repr(logs)


async def test_local_auth_wrong_password_refused(
    certs: CertPair, tmp_path: Path, upstream: RecordingUpstream
) -> None:
    """A wrong password gets 535 and the mail is refused at RCPT; the password is never logged."""
    code, out, logs = await _swaks_local_auth(
        upstream, certs, tmp_path, "LOGIN", "wrong-password-42"
    )
    assert code != 0
    assert "535 5.7.8" in out
    assert upstream.messages == []
    assert "wrong-password-42" not in repr(logs)


async def test_passthrough_auth_uses_clients_credentials_upstream(
    certs: CertPair, tmp_path: Path
) -> None:
    """In pass-through mode the upstream checks the password and its session carries the mail."""
    async with (
        RecordingUpstream(tls=certs, users={"carol@example.jp": "s3cret-pass"}) as up,
        running_relay(
            upstream=up.url,
            upstream_ca_file=certs.cert,
            trusted_networks="",
            auth_mode="passthrough",
            tls_cert=certs.cert,
            tls_key=certs.key,
        ) as app,
    ):
        port = app.bound[0][1]
        ok_code, ok_out = await run_tool(
            need_tool("swaks"),
            "--server",
            f"127.0.0.1:{port}",
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "carol@example.jp",
            "--auth-password",
            "s3cret-pass",
            "--from",
            "carol@example.jp",
            "--to",
            "dave@partner.test",
        )
        bad_code, bad_out = await run_tool(
            need_tool("swaks"),
            "--server",
            f"127.0.0.1:{port}",
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "carol@example.jp",
            "--auth-password",
            "guess",
            "--from",
            "carol@example.jp",
            "--to",
            "dave@partner.test",
        )
    assert ok_code == 0, ok_out
    assert bad_code != 0 and "535" in bad_out
    [got] = up.messages
    assert got.auth_user == "carol@example.jp"


async def test_smtputf8_not_advertised_when_upstream_lacks_it() -> None:
    """The relay advertises only the extensions its upstream supports."""
    async with RecordingUpstream(smtputf8=False) as up, running_relay(upstream=up.url) as app:

        def ehlo(port: int) -> str:
            with smtplib.SMTP("127.0.0.1", port) as client:
                return client.ehlo()[1].decode()

        features = await asyncio.to_thread(ehlo, app.bound[0][1])
    assert "8BITMIME" in features
    assert "SMTPUTF8" not in features


def test_tls_context_helper_verifies(certs: CertPair) -> None:
    """The test certificate is a usable server certificate (guards the TLS tests above)."""
    ctx = certs.server_context()
    assert isinstance(ctx, ssl.SSLContext)
