"""The live relay enforces the policy: rewrite, hold → review → deliver, reject, warn, reload."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import smtplib
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from sendguard.cli.main import main as cli
from tests.support.attachments import Attachment, build_message, nested_zip_bomb
from tests.support.relay import running_relay, write_policy
from tests.support.review import me_listed
from tests.support.upstream import RecordingUpstream

POLICY = """\
[organisation]
internal_domains = ["example.co.jp"]
partner_domains = ["partner.example.jp"]

[detectors.unresolvable-domain]
enabled = false

[[rule]]
id = "bcc-many-external-visible"
description = "10+ outside addresses visible"
action = "rewrite-bcc"
recipients = "any-external"
when.any = [{ detector = "visible-recipients", code = "external-visible", count_at_least = 10 }]

[[rule]]
id = "hold-lookalike-domain"
description = "lookalike recipient domain"
action = "hold"
reason = "Recipient domain looks like a typo of a trusted domain"
reviewers = ["security@example.co.jp"]
when.any = [{ detector = "lookalike-domain" }]

[[rule]]
id = "reject-my-number"
description = "My Number to outside"
action = "reject"
recipients = "any-external"
reason = "My Number must not leave"
when.any = [{ detector = "personal-data", code = "my-number" }]

[[rule]]
id = "hold-uninspectable"
description = "cannot inspect"
action = "hold"
recipients = "any-external"
when.any = [{ detector = "uninspectable-attachment" }]

[[rule]]
id = "warn-confidential"
description = "confidential marker (rollout)"
mode = "warn"
action = "hold"
when.any = [{ detector = "confidential-marker" }]
"""

SENDER = "tanaka@example.co.jp"


def _send(port: int, rcpts: list[str], data: bytes) -> tuple[int, str]:
    """One transaction; the reply to the final dot (code, text)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.ehlo()
        client.mail(SENDER)
        for rcpt in rcpts:
            client.rcpt(rcpt)
        code, text = client.data(data)
        return code, text.decode()


def _sent_to(upstream: RecordingUpstream, rcpt: str) -> list[bytes]:
    return [m.data for m in upstream.messages if rcpt in m.rcpt_tos and m.mail_from == SENDER]


@pytest.fixture
def policy_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test policy in its own directory; the review CLI reads it too, and its [people]
    makes the account running the tests an admin (who may act for "boss")."""
    directory = write_policy(tmp_path / "policies", POLICY + me_listed("admin"))
    monkeypatch.setenv("SENDGUARD_POLICY_DIR", str(directory))
    monkeypatch.setenv("SENDGUARD_CONFIG", "")
    return directory


async def test_forty_customers_in_to_are_moved_to_bcc(
    upstream: RecordingUpstream, policy_dir: Path
) -> None:
    """40 customers in To: all 40 still receive it, and no customer address is in any header."""
    customers = [(f"顧客{i}", f"customer{i}@client{i}.example") for i in range(40)]
    data = build_message(from_=("田中", SENDER), to=customers, subject="新製品のご案内")
    rcpts = [addr for _, addr in customers]
    async with running_relay(upstream=upstream.url, policy_dir=policy_dir) as app:
        code, _ = await asyncio.to_thread(_send, app.bound[0][1], rcpts, data)
    assert code == 250
    [got] = upstream.messages
    assert sorted(got.rcpt_tos) == sorted(rcpts)
    header = got.data.split(b"\r\n\r\n", 1)[0]
    assert not any(addr.encode() in header for addr in rcpts)
    assert b"undisclosed-recipients:;" in header
    assert b"X-Sendguard-Rewritten" in header
    assert got.data.split(b"\r\n\r\n", 1)[1] == data.split(b"\r\n\r\n", 1)[1]


async def test_lookalike_domain_is_held_then_released_by_a_reviewer(
    upstream: RecordingUpstream, policy_dir: Path, tmp_path: Path
) -> None:
    """gmial.com is held (250 with the queue id), the sender is notified, and a reviewer's
    release delivers it through the same upstream."""
    store = f"sqlite:///{tmp_path}/queue.db"
    data = build_message(from_=("田中", SENDER), to=[("", "yamada@gmial.com")], subject="見積書")
    async with running_relay(upstream=upstream.url, policy_dir=policy_dir, store=store) as app:
        code, text = await asyncio.to_thread(_send, app.bound[0][1], ["yamada@gmial.com"], data)
        assert code == 250
        [queue_id] = re.findall(r"held by rule hold-lookalike-domain as (\S+):", text) or [None]
        assert queue_id is not None, text
        await asyncio.sleep(1.5)  # the worker's outbox sends the notices
        assert _sent_to(upstream, "yamada@gmial.com") == []
        notices = [m for m in upstream.messages if m.rcpt_tos == (SENDER,)]
        assert notices
        notice = email.message_from_bytes(notices[0].data, policy=email.policy.default)
        text = notice.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "hold-lookalike-domain" in text and "gmial.com" in text
        released = await asyncio.to_thread(
            cli, ["queue", "release", queue_id, "--store", store, "--actor", "boss"]
        )
        assert released == 0
        await upstream.wait_for(len(upstream.messages) + 1, timeout=10)
        for _ in range(50):
            if _sent_to(upstream, "yamada@gmial.com"):
                break
            await asyncio.sleep(0.1)
    assert _sent_to(upstream, "yamada@gmial.com") == [data]


async def test_reject_rule_answers_550_with_rule_and_reference(
    upstream: RecordingUpstream, policy_dir: Path
) -> None:
    """A My Number to outside is refused with 550 5.7.1 naming the rule, and never sent."""
    data = build_message(
        from_=("田中", SENDER), to=[("", "hr@partner.example.jp")], body="個人番号: 1234 5678 9018"
    )
    async with running_relay(upstream=upstream.url, policy_dir=policy_dir) as app:
        code, text = await asyncio.to_thread(
            _send, app.bound[0][1], ["hr@partner.example.jp"], data
        )
    assert code == 550
    assert "5.7.1" in text and "reject-my-number" in text and "ref " in text
    assert "1234" not in text
    assert upstream.messages == []


async def test_soft_reject_turns_reject_into_451(
    upstream: RecordingUpstream, policy_dir: Path
) -> None:
    """With soft_reject the same message is deferred (451) during a rollout."""
    data = build_message(
        from_=("田中", SENDER), to=[("", "hr@partner.example.jp")], body="マイナンバー 123456789018"
    )
    async with running_relay(upstream=upstream.url, policy_dir=policy_dir, soft_reject=True) as app:
        code, _ = await asyncio.to_thread(_send, app.bound[0][1], ["hr@partner.example.jp"], data)
    assert code == 451


async def test_warn_mode_passes_and_logs_the_would_be_action(
    upstream: RecordingUpstream, policy_dir: Path
) -> None:
    """A warn-mode rule lets the mail through and logs what it would have done."""
    data = build_message(
        from_=("田中", SENDER), to=[("", "a@partner.example.jp")], subject="【社外秘】計画"
    )
    with capture_logs() as logs:
        async with running_relay(upstream=upstream.url, policy_dir=policy_dir) as app:
            code, _ = await asyncio.to_thread(
                _send, app.bound[0][1], ["a@partner.example.jp"], data
            )
    assert code == 250
    assert _sent_to(upstream, "a@partner.example.jp") == [data]
    warned = [e for e in logs if e["event"] == "policy_rule_warned"]
    assert warned and warned[0]["rule"] == "warn-confidential" and warned[0]["would_be"] == "hold"
    [tx] = [e for e in logs if e["event"] == "transaction"]
    assert tx["warned"] == ["warn-confidential"] and tx["action"] == "pass"
    assert any(f.startswith("confidential-marker/") for f in tx["findings"])


async def test_broken_reload_keeps_the_last_good_policy(
    upstream: RecordingUpstream, policy_dir: Path
) -> None:
    """SIGHUP with a broken policy file: the old policy keeps serving (lookalikes still held)."""
    data = build_message(from_=("田中", SENDER), to=[("", "yamada@gmial.com")])
    async with running_relay(upstream=upstream.url, policy_dir=policy_dir) as app:
        (policy_dir / "broken.toml").write_text("[[rule]]\nid = 'x'\naction = 'explode'\n")
        with capture_logs() as logs:
            app.reload()
        assert any(e["event"] == "policy_reload_failed" for e in logs)
        code, text = await asyncio.to_thread(_send, app.bound[0][1], ["yamada@gmial.com"], data)
    assert code == 250 and "held by rule hold-lookalike-domain" in text
    assert _sent_to(upstream, "yamada@gmial.com") == []


async def test_zip_bomb_is_held_while_other_clients_are_served(
    upstream: RecordingUpstream, policy_dir: Path
) -> None:
    """A nested ZIP bomb is held as uninspectable, and small mail flows meanwhile."""
    bomb = build_message(
        from_=("田中", SENDER),
        to=[("", "x@partner.example.jp")],
        attachments=[Attachment("42.zip", nested_zip_bomb(), "application/zip")],
    )
    small = build_message(from_=("田中", SENDER), to=[("", "y@partner.example.jp")])
    async with running_relay(upstream=upstream.url, policy_dir=policy_dir) as app:
        port = app.bound[0][1]
        bombing = asyncio.create_task(
            asyncio.to_thread(_send, port, ["x@partner.example.jp"], bomb)
        )
        started = asyncio.get_running_loop().time()
        for _ in range(5):
            assert (await asyncio.to_thread(_send, port, ["y@partner.example.jp"], small))[0] == 250
        small_elapsed = asyncio.get_running_loop().time() - started
        code, text = await bombing
    assert code == 250 and "hold-uninspectable" in text
    assert _sent_to(upstream, "x@partner.example.jp") == []
    assert len(_sent_to(upstream, "y@partner.example.jp")) == 5
    assert small_elapsed < 10


async def test_held_rewrite_is_applied_once_at_release(
    upstream: RecordingUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hold that also rewrites and tags: the queue keeps the original, the release edits once."""
    tagging = (
        POLICY
        + """
[[rule]]
id = "tag-external"
description = "tag mail to outside"
action = "tag"
when.any = [{ detector = "external-recipients" }]
"""
    )
    policy = write_policy(tmp_path / "p", tagging + me_listed("admin"))
    monkeypatch.setenv("SENDGUARD_POLICY_DIR", str(policy))
    monkeypatch.setenv("SENDGUARD_CONFIG", "")
    store = f"sqlite:///{tmp_path}/q.db"
    customers = [("", f"c{i}@client{i}.example") for i in range(12)] + [("", "z@gmial.com")]
    data = build_message(from_=("田中", SENDER), to=customers)
    rcpts = [a for _, a in customers]
    async with running_relay(upstream=upstream.url, policy_dir=policy, store=store) as app:
        code, text = await asyncio.to_thread(_send, app.bound[0][1], rcpts, data)
        assert code == 250 and "held" in text
        queue_id = re.findall(r" as (\S+):", text)[0]
        released = await asyncio.to_thread(
            cli, ["queue", "release", queue_id, "--store", store, "--actor", "boss"]
        )
        assert released == 0
        for _ in range(100):
            if _sent_to(upstream, "z@gmial.com"):
                break
            await asyncio.sleep(0.1)
    [out] = _sent_to(upstream, "z@gmial.com")
    header = out.split(b"\r\n\r\n", 1)[0]
    assert header.count(b"X-Sendguard-Tag: tag-external") == 1
    assert b"X-Sendguard-Rewritten" in header
    assert not any(a.encode() in header for a in rcpts)
