"""Senders bound to their login, end to end: a real client doing STARTTLS + AUTH against a
local users file, a real relay, a real queue and upstream.

A login may use only the MAIL FROM addresses ``[people]`` gives it; the policy (sender groups,
``clients``) and the notices follow the login's own address, never the MAIL FROM it chose;
notices never go to an outside address and come from a real address of the organisation.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import smtplib
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from sendguard.app import App
from sendguard.intake.auth import UsersFile
from tests.conftest import need_tool
from tests.support.attachments import build_message
from tests.support.relay import run_tool, running_relay, write_policy
from tests.support.tls import CertPair
from tests.support.upstream import Received, RecordingUpstream

PASSWORD = "correct horse battery"
OUTSIDE = "yamada@partner.test"
POLICY = """\
[organisation]
internal_domains = ["example.co.jp"]

[organisation.groups.executives]
addresses = ["shacho@example.co.jp"]

[organisation.groups.sales]
addresses = ["tanaka@example.co.jp"]

[people.tanaka]
addresses = ["tanaka@example.co.jp", "eigyo@example.co.jp"]   # own, then the shared sales box

[people.hisho]
addresses = ["hisho@example.co.jp", "shacho@example.co.jp"]   # the secretary, also as the president

[detectors.unresolvable-domain]
enabled = false

[[rule]]
id = "hold-external"
description = "Outside mail is reviewed, except the executives'"
action = "hold"
recipients = "any-external"
except_senders = ["executives"]
reviewers = ["boss@example.co.jp"]
reason = "External mail is held for review"

[[rule]]
id = "tag-sales"
description = "Mark mail of the sales team"
action = "tag"
senders = ["sales"]
"""
SCRIPTS_POLICY = """\
[organisation]
internal_domains = ["example.co.jp"]

[detectors.unresolvable-domain]
enabled = false

[[rule]]
id = "hold-scripts-to-outside"
description = "Unauthenticated clients (printers, scripts) never write outside unreviewed"
action = "hold"
recipients = "any-external"
clients = { authenticated = false, networks = ["127.0.0.0/8"] }
reviewers = ["boss@example.co.jp"]
"""


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A users file with tanaka, hisho (the secretary) and shacho (the president)."""
    path = tmp_path_factory.mktemp("users") / "users"
    for login in ("tanaka", "hisho", "shacho"):
        UsersFile(path).add(login, PASSWORD)
    return path


@asynccontextmanager
async def relay(
    upstream: RecordingUpstream,
    certs: CertPair,
    users: Path,
    tmp_path: Path,
    *,
    policy: str = POLICY,
    trusted: str = "",
    **overrides: Any,
) -> AsyncIterator[App]:
    """A relay with local AUTH after STARTTLS, a queue polled often, and `policy`."""
    async with running_relay(
        upstream=upstream.url,
        policy_dir=write_policy(tmp_path / "policies", policy),
        trusted_networks=trusted,
        auth_mode="local",
        users_file=users,
        tls_cert=certs.cert,
        tls_key=certs.key,
        queue={"poll_interval": 0.1},
        **overrides,
    ) as app:
        yield app


def _submit(
    port: int, certs: CertPair, login: str | None, mail_from: str, rcpts: list[str], data: bytes
) -> tuple[int, str]:
    """One transaction with smtplib (STARTTLS + AUTH when `login` is given): the first
    refusal, or the reply to the final dot."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo()
        if login is not None:
            client.starttls(context=ssl.create_default_context(cafile=str(certs.cert)))
            client.login(login, PASSWORD)
        code, text = client.mail(mail_from)
        for rcpt in rcpts if code == 250 else []:
            code, text = client.rcpt(rcpt)
            if code != 250:
                break
        if code == 250:
            code, text = client.data(data)
        return code, text.decode()


async def submit(
    app: App, certs: CertPair, login: str | None, mail_from: str, rcpt: str = OUTSIDE
) -> tuple[int, str]:
    """`_submit` off the loop the relay runs in."""
    data = build_message(from_=("", mail_from), to=[("", rcpt)], subject="見積書")
    port = app.bound[0][1]
    return await asyncio.to_thread(_submit, port, certs, login, mail_from, [rcpt], data)


def _to(upstream: RecordingUpstream, rcpt: str) -> list[Received]:
    return [m for m in upstream.messages if rcpt in m.rcpt_tos]


async def _notices(upstream: RecordingUpstream, count: int) -> list[Received]:
    """Wait for `count` notices (the worker's outbox sends them), then a little longer so a
    notice that should not exist has had its chance to arrive."""
    await upstream.wait_for(count, timeout=10)
    await asyncio.sleep(0.5)
    return [m for m in upstream.messages if b"X-Sendguard-Notification: yes" in m.data]


async def test_a_login_cannot_claim_another_persons_address(
    upstream: RecordingUpstream, certs: CertPair, users: Path, tmp_path: Path
) -> None:
    """swaks as tanaka with MAIL FROM the president (whose mail is exempt) gets 553 5.7.1 at
    MAIL and nothing is sent; the mismatch is logged with the login."""
    with capture_logs() as logs:
        async with relay(upstream, certs, users, tmp_path) as app:
            code, out = await run_tool(
                need_tool("swaks"), "--server", f"127.0.0.1:{app.bound[0][1]}", "--tls",
                "--auth", "PLAIN", "--auth-user", "tanaka", "--auth-password", PASSWORD,
                "--from", "shacho@example.co.jp", "--to", OUTSIDE,
            )  # fmt: skip
    assert code != 0
    assert "553 5.7.1 Sender address rejected" in out
    assert upstream.messages == []
    [event] = [e for e in logs if e["event"] == "sender_login_mismatch"]
    assert (event["user"], event["mail_from"]) == ("tanaka", "shacho@example.co.jp")
    assert PASSWORD not in repr(logs)


async def test_an_exemption_belongs_to_the_login_not_to_the_mail_from(
    upstream: RecordingUpstream, certs: CertPair, users: Path, tmp_path: Path
) -> None:
    """The secretary may send as the president, but the executives' exemption is the
    president's: her mail is held; the president's own passes."""
    async with relay(upstream, certs, users, tmp_path) as app:
        code, text = await submit(app, certs, "hisho", "shacho@example.co.jp")
        assert code == 250 and "held by rule hold-external" in text, text
        code, text = await submit(app, certs, "shacho", "shacho@example.co.jp")
        assert code == 250 and "held" not in text, text
    delivered = _to(upstream, OUTSIDE)
    assert len(delivered) == 1 and delivered[0].auth_user is None


async def test_sender_groups_follow_the_logins_own_address(
    upstream: RecordingUpstream, certs: CertPair, users: Path, tmp_path: Path
) -> None:
    """tanaka writing from the shared sales box is still tanaka: the sales rule tags it."""
    async with relay(upstream, certs, users, tmp_path) as app:
        code, text = await submit(app, certs, "tanaka", "eigyo@example.co.jp", "sato@example.co.jp")
    assert code == 250, text
    [got] = _to(upstream, "sato@example.co.jp")
    assert got.mail_from == "eigyo@example.co.jp"
    assert b"X-Sendguard-Tag: tag-sales" in got.data


async def test_a_trusted_network_client_keeps_its_mail_from(
    upstream: RecordingUpstream, certs: CertPair, users: Path, tmp_path: Path
) -> None:
    """Without AUTH (a printer or script on a trusted network) MAIL FROM still decides the
    sender groups, as before."""
    async with relay(upstream, certs, users, tmp_path, trusted="127.0.0.0/8") as app:
        code, text = await submit(app, certs, None, "shacho@example.co.jp")
    assert code == 250 and "held" not in text, text
    assert len(_to(upstream, OUTSIDE)) == 1


async def test_a_clients_rule_tells_scripts_from_people(
    upstream: RecordingUpstream, certs: CertPair, users: Path, tmp_path: Path
) -> None:
    """`clients = { authenticated = false, networks = [...] }` holds the script's mail from
    the trusted network and lets the authenticated person's pass."""
    async with relay(
        upstream, certs, users, tmp_path, policy=SCRIPTS_POLICY, trusted="127.0.0.0/8"
    ) as app:
        code, text = await submit(app, certs, None, "tanaka@example.co.jp")
        assert code == 250 and "held by rule hold-scripts-to-outside" in text, text
        code, text = await submit(app, certs, "tanaka", "tanaka@example.co.jp")
        assert code == 250 and "held" not in text, text
    assert len(_to(upstream, OUTSIDE)) == 1


async def test_the_hold_notice_goes_to_the_logins_own_address_from_postmaster(
    upstream: RecordingUpstream, certs: CertPair, users: Path, tmp_path: Path
) -> None:
    """tanaka's mail from the shared box is held: his notice goes to tanaka@, not to the
    shared box, from postmaster@ the first internal domain (never @localhost)."""
    async with relay(upstream, certs, users, tmp_path) as app:
        code, text = await submit(app, certs, "tanaka", "eigyo@example.co.jp")
        assert code == 250 and "held" in text, text
        notices = await _notices(upstream, 2)
    assert sorted(n.rcpt_tos for n in notices) == [
        ("boss@example.co.jp",),
        ("tanaka@example.co.jp",),
    ]
    assert _to(upstream, "eigyo@example.co.jp") == []
    for notice in notices:
        assert notice.mail_from == "postmaster@example.co.jp"
        parsed = email.message_from_bytes(notice.data, policy=email.policy.default)
        assert parsed["From"].addresses[0].addr_spec == "postmaster@example.co.jp"


async def test_no_notice_goes_to_an_outside_sender(
    upstream: RecordingUpstream, certs: CertPair, users: Path, tmp_path: Path
) -> None:
    """A trusted-network client claiming an outside MAIL FROM is held: the reviewers are
    told (from the configured address), the outsider learns nothing, and an event says why."""
    with capture_logs() as logs:
        async with relay(
            upstream,
            certs,
            users,
            tmp_path,
            trusted="127.0.0.0/8",
            notify={"from_address": "sendguard@example.co.jp"},
        ) as app:
            code, text = await submit(app, certs, None, "someone@partner.test")
            assert code == 250 and "held" in text, text
            notices = await _notices(upstream, 1)
    assert [n.rcpt_tos for n in notices] == [("boss@example.co.jp",)]
    assert notices[0].mail_from == "sendguard@example.co.jp"
    assert _to(upstream, "someone@partner.test") == []
    [why] = [e for e in logs if e["event"] == "notice_not_sent"]
    assert (why["kind"], why["reason"]) == ("held", "external-sender")


async def test_sender_binding_follows_a_policy_reload(
    upstream: RecordingUpstream, certs: CertPair, users: Path, tmp_path: Path
) -> None:
    """The relay reads [people] of the policy in force: once tanaka is given the info box
    and the policy reloads, the same MAIL FROM is accepted."""
    async with relay(upstream, certs, users, tmp_path) as app:
        code, _ = await submit(app, certs, "tanaka", "info@example.co.jp", "sato@example.co.jp")
        assert code == 553
        policy = (tmp_path / "policies" / "policy.toml").read_text()
        wider = policy.replace(
            '"eigyo@example.co.jp"]', '"eigyo@example.co.jp", "info@example.co.jp"]'
        )
        assert wider != policy
        (tmp_path / "policies" / "policy.toml").write_text(wider)
        app.reload()
        code, text = await submit(app, certs, "tanaka", "info@example.co.jp", "sato@example.co.jp")
    assert code == 250, text
    assert [m.mail_from for m in _to(upstream, "sato@example.co.jp")] == ["info@example.co.jp"]
