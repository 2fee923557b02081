"""Notices and bounces: content (ja then en, masked), headers, recipients, real sending."""

from __future__ import annotations

import datetime as dt
import email
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import get_args

import pytest
from structlog.testing import capture_logs

from sendguard.deliver import SmtpOptions, SmtpUpstream, parse_target
from sendguard.entry import Entry, NoticeKind
from sendguard.model import Envelope, HoldParams
from sendguard.notify.dsn import build_dsn, status_of
from sendguard.notify.notifier import Notifier
from sendguard.notify.render import render
from sendguard.notify.settings import NotifySettings
from sendguard.policy.load import LoadedPolicy, load_policy
from tests.support.store import sample_envelope, sample_message, sample_verdict
from tests.support.upstream import RecordingUpstream

NOW = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
SETTINGS = NotifySettings(from_address="sendguard@corp.example", reviewers=("sec@corp.example",))


def _entry(
    data: bytes | None = None, hold: HoldParams | None = None, envelope: Envelope | None = None
) -> Entry:
    """A held entry as the store would return it."""
    body = sample_message() if data is None else data
    return Entry(
        id="01TESTENTRY",
        state="held",
        envelope=envelope or sample_envelope("tanaka@corp.example", "a@client.example"),
        data=body,
        verdict=sample_verdict(hold=hold),
        created_at=NOW,
        updated_at=NOW,
        size=len(body),
        expires_at=NOW + dt.timedelta(days=3),
    )


def _parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=default_policy)
    assert isinstance(msg, EmailMessage)
    return msg


def _text(msg: EmailMessage) -> str:
    body = msg.get_body(("plain",))
    assert body is not None
    content: str = body.get_content()
    return content


def test_every_notice_kind_has_both_language_templates() -> None:
    """Rendering works for every kind in both languages (templates ship as package data)."""
    for kind in get_args(NoticeKind):
        rendered = render(kind, _entry(), SETTINGS)
        assert rendered.subject
        assert "$" not in rendered.body


def test_held_notice_is_japanese_first_with_english_below_and_masked() -> None:
    """The sender's notice names the rule, reviewers and masked evidence; no raw data."""
    notifier = Notifier(None, SETTINGS, hostname="relay.test")  # type: ignore[arg-type]
    msg = _parse(notifier.compose("held", _entry(), ("tanaka@corp.example",)))
    text = _text(msg)
    assert text.index("保留されています") < text.index("Your message was held")
    assert "hold-my-number" in text
    assert "boss@corp.example" in text
    assert "1234****9012" in text
    assert "123456789012" not in text  # the raw My Number in the attachment
    assert "添付をご確認ください" not in text  # the message body
    assert "見積書の送付" in str(msg["Subject"])
    assert msg["X-Sendguard-Notification"] == "yes"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["From"].addresses[0].addr_spec == "sendguard@corp.example"
    assert "2026-11-23 18:00 (Asia/Tokyo)" in text


def test_english_only_when_configured() -> None:
    """languages=("en",) leaves the Japanese part out."""
    settings = NotifySettings(languages=("en",))
    text = render("rejected", _entry(), settings).body
    assert "Your held message was rejected" in text
    assert "却下" not in text


def test_header_injection_through_the_original_subject_is_defused() -> None:
    """An encoded Subject hiding CRLF + Bcc does not create a header in the notice."""
    evil = (
        b"From: t@corp.example\r\nTo: a@client.example\r\n"
        b"Subject: =?utf-8?b?aGVsbG8NCkJjYzogZXZpbEB4LmV4YW1wbGU=?=\r\n\r\nbody\r\n"
    )
    notifier = Notifier(None, SETTINGS, hostname="relay.test")  # type: ignore[arg-type]
    msg = _parse(notifier.compose("held", _entry(evil), ("t@corp.example",)))
    assert msg["Bcc"] is None
    assert "hello Bcc: evil@x.example" in str(msg["Subject"])


def test_dsn_status_comes_from_the_reply_or_give_up() -> None:
    """5xx enhanced codes are reported as they are; give-up is 4.4.7; no code is 5.0.0."""
    assert status_of("550 5.1.1 no such user", gave_up=False) == "5.1.1"
    assert status_of("554 transaction failed", gave_up=False) == "5.0.0"
    assert status_of("451 4.3.0 later", gave_up=True) == "4.4.7"


def test_dsn_returns_headers_only() -> None:
    """The bounce carries the original headers but not the body."""
    entry = _entry()
    data = build_dsn(entry, hostname="relay.test", from_name="MDS", subject="件名", human="x",
                     gave_up=False)  # fmt: skip
    assert b"Subject: =?utf-8?" in data
    headers_part = data.split(b"text/rfc822-headers", 1)[1]
    assert b"Message-ID:" in headers_part
    assert "添付をご確認ください".encode() not in data


@pytest.fixture
async def notifier(upstream: RecordingUpstream) -> AsyncIterator[Notifier]:
    """A notifier sending through the real SMTP client to the recording upstream."""
    client = SmtpUpstream(parse_target(upstream.url), SmtpOptions(local_hostname="relay.test"))
    yield Notifier(client, SETTINGS, hostname="relay.test")
    await client.close()


async def test_notices_go_from_the_configured_address(
    notifier: Notifier, upstream: RecordingUpstream
) -> None:
    """Held goes to the sender, reviewers to the rule's reviewers, from the notify address."""
    entry = _entry()
    assert (await notifier.notify_held(entry)).ok
    assert (await notifier.notify_reviewers(entry)).ok
    sender, reviewers = upstream.messages
    assert (sender.mail_from, sender.rcpt_tos) == (
        "sendguard@corp.example",
        ("tanaka@corp.example",),
    )
    assert reviewers.rcpt_tos == ("boss@corp.example",)
    assert "承認依頼" in str(_parse(reviewers.data)["Subject"])


async def test_default_reviewers_when_the_rule_names_none(
    notifier: Notifier, upstream: RecordingUpstream
) -> None:
    """A rule without reviewers falls back to the configured default reviewers."""
    assert (await notifier.notify_reviewers(_entry(hold=HoldParams()))).ok
    assert upstream.messages[0].rcpt_tos == ("sec@corp.example",)


async def test_null_sender_gets_no_notice_and_no_bounce(
    notifier: Notifier, upstream: RecordingUpstream
) -> None:
    """Mail from <> is never answered (no notice, no bounce: no loops)."""
    entry = _entry(envelope=Envelope(mail_from="", rcpt_tos=("a@client.example",)))
    assert (await notifier.notify_held(entry)).ok
    assert (await notifier.bounce(entry)).ok
    assert upstream.messages == []


async def test_refused_notice_returns_the_upstream_reply(
    notifier: Notifier, upstream: RecordingUpstream
) -> None:
    """A 4xx from the upstream comes back as the reply so the worker can retry."""
    upstream.fail_next("RCPT", "450 4.2.1 try later")
    reply = await notifier.notify_expired(_entry())
    assert (reply.code, reply.ok) == (450, False)


def test_from_address_must_be_a_mail_address() -> None:
    """A from_address without a domain is refused when settings load, naming the value."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="'nobody' is not a mail address"):
        NotifySettings(from_address="nobody")


# --------------------------------------------------------------------------- who is told


@pytest.fixture
def corp_policy(tmp_path: Path) -> LoadedPolicy:
    """A policy whose internal domains are corp.example (first) and corp2.example."""
    (tmp_path / "p.toml").write_text(
        'allow_empty = true\n[organisation]\ninternal_domains = ["corp.example", "corp2.example"]\n'
        '[people.suzuki]\naddresses = ["@corp.example"]\n',
        encoding="utf-8",
    )
    return load_policy(tmp_path)


async def _held_notice_to(
    upstream: RecordingUpstream,
    envelope: Envelope,
    *,
    policy: LoadedPolicy | None,
    settings: NotifySettings = SETTINGS,
) -> list[tuple[str, tuple[str, ...]]]:
    """(MAIL FROM, recipients) of what a held notice for `envelope` sent."""
    client = SmtpUpstream(parse_target(upstream.url), SmtpOptions(local_hostname="relay.test"))
    notifier = Notifier(client, settings, hostname="relay.test", policy=lambda: policy)  # type: ignore[arg-type,return-value]
    try:
        assert (await notifier.notify_held(_entry(envelope=envelope))).ok
    finally:
        await client.close()
    return [(m.mail_from, m.rcpt_tos) for m in upstream.messages]


@pytest.mark.parametrize(
    ("envelope", "expected", "why"),
    [
        # A login's notice goes to its own address, whatever MAIL FROM it used.
        (Envelope("eigyo@corp.example", ("a@client.example",), auth_user="tanaka",
                  sender_identity="tanaka@corp.example"), "tanaka@corp.example", None),
        # Stored before logins were bound: [people] of the policy in force says who it is.
        (Envelope("eigyo@corp.example", ("a@client.example",), auth_user="tanaka"),
         "tanaka@corp.example", None),
        # A login without an own address (only @domain) is told nothing.
        (Envelope("x@corp.example", ("a@client.example",), auth_user="suzuki"), None,
         "login-without-own-address"),
        # Without AUTH: an internal MAIL FROM is told, an outside one never.
        (Envelope("sato@corp2.example", ("a@client.example",)), "sato@corp2.example", None),
        (Envelope("boss@partner.example", ("a@client.example",)), None, "external-sender"),
    ],
)  # fmt: skip
async def test_sender_notices_go_only_to_insiders(
    upstream: RecordingUpstream,
    corp_policy: LoadedPolicy,
    envelope: Envelope,
    expected: str | None,
    why: str | None,
) -> None:
    """Rule ids, recipients and reviewers never reach an outside address."""
    with capture_logs() as logs:
        sent = await _held_notice_to(upstream, envelope, policy=corp_policy)
    assert sent == ([("sendguard@corp.example", (expected,))] if expected else [])
    reasons = [e["reason"] for e in logs if e["event"] == "notice_not_sent"]
    assert reasons == ([why] if why else [])


async def test_notices_come_from_postmaster_of_the_first_internal_domain(
    upstream: RecordingUpstream, corp_policy: LoadedPolicy
) -> None:
    """Without from_address the notice comes from postmaster@corp.example (From: too)."""
    envelope = Envelope("sato@corp.example", ("a@client.example",))
    sent = await _held_notice_to(upstream, envelope, policy=corp_policy, settings=NotifySettings())
    assert sent == [("postmaster@corp.example", ("sato@corp.example",))]
    assert _parse(upstream.messages[0].data)["From"].addresses[0].addr_spec == (
        "postmaster@corp.example"
    )


async def test_no_notice_without_any_address_of_the_organisation(
    upstream: RecordingUpstream,
) -> None:
    """No from_address and no policy to take a domain from: nothing is sent, an error says why
    (never a made-up sendguard@localhost)."""
    envelope = Envelope("sato@corp.example", ("a@client.example",), auth_user="sato",
                        sender_identity="sato@corp.example")  # fmt: skip
    with capture_logs() as logs:
        sent = await _held_notice_to(upstream, envelope, policy=None, settings=NotifySettings())
    assert sent == []
    assert [e["reason"] for e in logs if e["event"] == "notice_not_sent"] == ["no-from-address"]


@pytest.mark.parametrize("value", ["sendguard@localhost", "sendguard@relay"])
def test_from_address_must_be_of_a_real_domain(value: str) -> None:
    """A host-only domain would make replies to notices go nowhere."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="needs a domain of your organisation"):
        NotifySettings(from_address=value)
    assert NotifySettings(from_address="").from_address is None  # empty = unset
