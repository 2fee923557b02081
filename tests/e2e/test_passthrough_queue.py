"""Pass-through that never loses mail: queued mail and every notice use the queue upstream.

The upstream here requires STARTTLS and AUTH for everything, like Microsoft 365: a client's
own session carries its live mail; held, released and bounced mail and notices must log in
with the relay account (`SENDGUARD_QUEUE_UPSTREAM`), since the client's password is gone.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from sendguard.app import App, build_app
from sendguard.errors import ConfigError
from sendguard.review.service import ReviewService
from sendguard.settings import load_settings
from tests.support.relay import (
    INSPECT_ONLY_POLICY,
    hold_external_policy,
    running_relay,
    write_policy,
)
from tests.support.review import actor
from tests.support.tls import CertPair
from tests.support.upstream import Received, RecordingUpstream

boss = actor("boss", "boss@example.jp")
"""A verified reviewer of the test policy's hold rule (reviewers = boss@example.jp)."""

CAROL, CAROL_PASSWORD = "carol@example.jp", "s3cret-pass"
RELAY, RELAY_PASSWORD = "relay@example.jp", "relay-account-pass"
NOTICES_FROM = "sendguard@example.jp"
NULL_SENDER = ("", "<>")  # how aiosmtpd records MAIL FROM:<>
HOLD_EXTERNAL = hold_external_policy("example.jp")
MESSAGE = (
    b"From: carol@example.jp\r\nTo: dave@partner.test\r\nSubject: quote\r\n"
    b"Message-ID: <quote-1@example.jp>\r\n\r\nThe quote is attached.\r\n"
)


@pytest.fixture(autouse=True)
def _queue_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENDGUARD_NOTIFY__FROM_ADDRESS", NOTICES_FROM)
    monkeypatch.setenv("SENDGUARD_QUEUE__POLL_INTERVAL", "0.1")


@asynccontextmanager
async def passthrough_relay(
    up: RecordingUpstream, certs: CertPair, policy: Path, **overrides: Any
) -> AsyncIterator[App]:
    async with running_relay(
        upstream=up.url,
        upstream_ca_file=certs.cert,
        trusted_networks="",
        auth_mode="passthrough",
        tls_cert=certs.cert,
        tls_key=certs.key,
        policy_dir=policy,
        **overrides,
    ) as app:
        yield app


def queue_url(port: int) -> str:
    return f"smtp+starttls://relay%40example.jp:{RELAY_PASSWORD}@127.0.0.1:{port}"


async def send_as_carol(port: int, certs: CertPair) -> str:
    """Carol's mail client: STARTTLS, AUTH with her own password, one message; the reply."""
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1", port=port, start_tls=True, cert_bundle=str(certs.cert), timeout=30
    )
    await client.connect()
    try:
        await client.login(CAROL, CAROL_PASSWORD)
        _, reply = await client.sendmail(CAROL, ["dave@partner.test"], MESSAGE)
    except aiosmtplib.SMTPResponseException as exc:
        reply = f"{exc.code} {exc.message}"
    finally:
        client.close()
    return reply


def queue_id(reply: str) -> str:
    found = re.search(r" as ([0-9A-Z]{26}):", reply)
    assert found is not None, reply
    return found.group(1)


async def until(up: RecordingUpstream, check: Any, within: float = 20.0) -> list[Received]:
    async with asyncio.timeout(within):
        while not check(up.messages):
            up.arrived.clear()
            await up.arrived.wait()
    return up.messages


async def test_held_message_and_its_notices_reach_an_upstream_that_requires_login(
    certs: CertPair, tmp_path: Path
) -> None:
    """Carol (pass-through) sends external mail: held. After release it is delivered, and the
    held, reviewer and released notices too — all through the relay account."""
    policy = write_policy(tmp_path / "policies", HOLD_EXTERNAL)
    users = {CAROL: CAROL_PASSWORD, RELAY: RELAY_PASSWORD}
    async with (
        RecordingUpstream(tls=certs, users=users) as up,
        passthrough_relay(up, certs, policy, queue_upstream=queue_url(up.port)) as app,
    ):
        reply = await send_as_carol(app.bound[0][1], certs)
        assert "held by rule hold-external" in reply
        await until(up, lambda got: len(got) >= 2)  # held notice to carol, reviewers' to boss
        assert app.store is not None
        [released] = await ReviewService(app.store).release([queue_id(reply)], boss)
        assert released.outcome == "released"
        got = await until(up, lambda got: any(m.mail_from == CAROL for m in got) and len(got) >= 4)
    [delivered] = [m for m in got if m.mail_from == CAROL]
    assert delivered.rcpt_tos == ("dave@partner.test",) and delivered.data == MESSAGE
    notices = [m for m in got if m.mail_from == NOTICES_FROM]
    assert sorted(m.rcpt_tos for m in notices) == [("boss@example.jp",), (CAROL,), (CAROL,)]
    assert {m.auth_user for m in got} == {RELAY}


async def test_bounce_of_a_released_message_goes_out_the_queue_upstream(
    certs: CertPair, tmp_path: Path
) -> None:
    """A released message the upstream refuses for good bounces to the sender, from <>, over
    the relay account (the bounce was dropped before)."""
    policy = write_policy(tmp_path / "policies", HOLD_EXTERNAL)
    users = {CAROL: CAROL_PASSWORD, RELAY: RELAY_PASSWORD}
    async with (
        RecordingUpstream(tls=certs, users=users) as up,
        passthrough_relay(up, certs, policy, queue_upstream=queue_url(up.port)) as app,
    ):
        reply = await send_as_carol(app.bound[0][1], certs)
        await until(up, lambda got: len(got) >= 2)
        up.fail_next("RCPT", "550 5.1.1 no such user", rcpt="dave@partner.test")
        assert app.store is not None
        await ReviewService(app.store).release([queue_id(reply)], boss)
        got = await until(up, lambda got: any(m.mail_from in NULL_SENDER for m in got))
        entry = await app.store.get(queue_id(reply))
    [bounce] = [m for m in got if m.mail_from in NULL_SENDER]
    assert bounce.rcpt_tos == (CAROL,) and bounce.auth_user == RELAY
    assert b"multipart/report" in bounce.data
    assert entry.state == "failed"


async def test_policy_reload_that_adds_a_hold_gets_451_without_a_queue_upstream(
    certs: CertPair, tmp_path: Path
) -> None:
    """Pass-through with no queue upstream starts with a policy that never queues; a reload
    then adds a hold rule. Such mail is answered 451 (the client keeps it), never accepted
    into a queue nothing could deliver from."""
    policy = write_policy(tmp_path / "policies", INSPECT_ONLY_POLICY)
    async with (
        RecordingUpstream(tls=certs, users={CAROL: CAROL_PASSWORD}) as up,
        passthrough_relay(up, certs, policy) as app,
    ):
        first = await send_as_carol(app.bound[0][1], certs)
        write_policy(policy, HOLD_EXTERNAL)
        app.reload()
        second = await send_as_carol(app.bound[0][1], certs)
        assert app.store is not None
        queued = await app.store.list()
    assert first.startswith("2.0.0 Ok: queued as R1")
    assert second.startswith("451 4.3.0")
    assert queued == []
    assert len(up.messages) == 1


def _serve(
    tmp_path: Path, certs: CertPair, policy: str, **env: str
) -> subprocess.CompletedProcess[str]:
    write_policy(tmp_path / "policies", policy)
    settings = {
        "SENDGUARD_LISTEN": "127.0.0.1:0",
        "SENDGUARD_WORKERS": "1",
        "SENDGUARD_AUTH_MODE": "passthrough",
        "SENDGUARD_TRUSTED_NETWORKS": "",
        "SENDGUARD_TLS_CERT": str(certs.cert),
        "SENDGUARD_TLS_KEY": str(certs.key),
        "SENDGUARD_UPSTREAM": "smtp+starttls://smtp.office365.example:587",
        **env,
    }
    return subprocess.run(  # our own interpreter and module
        [sys.executable, "-m", "sendguard", "serve"],
        env={**os.environ, **settings},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_serve_refuses_passthrough_that_can_hold_without_a_queue_upstream(
    certs: CertPair, tmp_path: Path
) -> None:
    """Exit 2 before listening, naming the rule and the setting that is missing."""
    done = _serve(tmp_path, certs, HOLD_EXTERNAL)
    assert done.returncode == 2, done.stderr
    assert "SENDGUARD_QUEUE_UPSTREAM" in done.stderr
    assert "rule hold-external (hold)" in done.stderr
    assert "listening" not in done.stderr + done.stdout


def test_serve_refuses_passthrough_with_on_error_hold_without_a_queue_upstream(
    certs: CertPair, tmp_path: Path
) -> None:
    done = _serve(tmp_path, certs, INSPECT_ONLY_POLICY, SENDGUARD_ON_ERROR="hold")
    assert done.returncode == 2, done.stderr
    assert "SENDGUARD_ON_ERROR=hold" in done.stderr and "SENDGUARD_QUEUE_UPSTREAM" in done.stderr


def test_serve_refuses_passthrough_to_a_plaintext_upstream(certs: CertPair, tmp_path: Path) -> None:
    """Users' Microsoft 365 passwords never cross the network in clear."""
    done = _serve(tmp_path, certs, INSPECT_ONLY_POLICY, SENDGUARD_UPSTREAM="smtp://smtp.example:25")
    assert done.returncode == 2, done.stderr
    assert "without TLS" in done.stderr and "smtp+starttls://" in done.stderr


def test_plaintext_allowed_only_when_asked(certs: CertPair, tmp_path: Path) -> None:
    """The explicit test-only setting lets pass-through use smtp://; a queue upstream with a
    password over smtp:// is refused the same way."""
    policy = write_policy(tmp_path / "policies", INSPECT_ONLY_POLICY)
    base = {
        "auth_mode": "passthrough",
        "tls_cert": certs.cert,
        "tls_key": certs.key,
        "policy_dir": policy,
        "upstream": "smtp://127.0.0.1:2",
    }
    build_app(load_settings(**base, upstream_allow_plaintext=True))
    with pytest.raises(ConfigError, match="without TLS"):
        build_app(load_settings(**base))
    with pytest.raises(ConfigError, match=r"queue_upstream .* without TLS"):
        build_app(
            load_settings(
                **{**base, "upstream": "smtps://127.0.0.1:2"},
                queue_upstream="smtp://relay:pw@127.0.0.1:2",
            )
        )


def test_queue_upstream_defaults_to_the_upstream_outside_passthrough(tmp_path: Path) -> None:
    policy = write_policy(tmp_path / "policies", HOLD_EXTERNAL)
    app = build_app(load_settings(policy_dir=policy, upstream="smtp://127.0.0.1:2"))
    assert app.queue_upstream is app.upstream
    app = build_app(
        load_settings(
            policy_dir=policy,
            upstream="smtp://127.0.0.1:2",
            queue_upstream="smtps://relay:pw@127.0.0.1:3",
        )
    )
    assert app.queue_upstream is not app.upstream
    assert str(getattr(app.queue_upstream, "target", "")) == "smtps://relay@127.0.0.1:3"
