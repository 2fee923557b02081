"""The MAIL hook binds an authenticated login to the addresses [people] gives it."""

from __future__ import annotations

import asyncio

import pytest
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from aiosmtpd.smtp import Session
from structlog.testing import capture_logs

from sendguard.intake.auth import Identity
from sendguard.intake.handler import IntakeOptions, RelayHandler
from sendguard.policy.people import People, build_people

OPTIONS = IntakeOptions(trusted_networks=(), max_recipients=10, max_message_size=10_000)
PEOPLE = build_people({"tanaka": (("tanaka@example.co.jp",), "sender")}, ("example.co.jp",))


def _session(login: str | None) -> Session:
    session = Session(asyncio.get_running_loop())
    session.peer = ("192.0.2.7", 40000)
    if login is not None:
        session.authenticated = True
        session.auth_data = Identity(login=login)
    return session


async def _mail(login: str | None, address: str, people: People | None = PEOPLE) -> str:
    handler = RelayHandler(None, OPTIONS, people=(lambda: people) if people else None)  # type: ignore[arg-type]
    return await handler.handle_MAIL(None, _session(login), SmtpEnvelope(), address, [])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("login", "address", "code"),
    [
        ("tanaka", "tanaka@example.co.jp", "250"),
        ("TANAKA", "Tanaka@EXAMPLE.co.jp", "250"),  # logins and addresses compare case-blind
        ("tanaka", "shacho@example.co.jp", "553 5.7.1"),
        ("tanaka", "", "553 5.7.1"),  # the null sender: people do not send bounces
        ("sato", "sato@example.co.jp", "250"),  # unlisted: login@ each internal domain
        ("sato", "sato@other.example", "553 5.7.1"),
        (None, "shacho@example.co.jp", "250"),  # no AUTH (trusted network): MAIL FROM kept
    ],
)
async def test_mail_from_must_belong_to_the_login(
    login: str | None, address: str, code: str
) -> None:
    """Postfix's reject_sender_login_mismatch, with [people] and its defaults."""
    assert (await _mail(login, address)).startswith(code)


async def test_mismatch_is_logged_with_the_login_and_the_address() -> None:
    """One sender_login_mismatch event: login, attempted MAIL FROM, client."""
    with capture_logs() as logs:
        await _mail("tanaka", "shacho@example.co.jp")
    [event] = logs
    assert event["event"] == "sender_login_mismatch" and event["log_level"] == "warning"
    assert (event["user"], event["mail_from"], event["client"]) == (
        "tanaka",
        "shacho@example.co.jp",
        "192.0.2.7",
    )


async def test_without_people_no_login_may_send() -> None:
    """A handler built without [people] fails closed for authenticated clients."""
    assert (await _mail("tanaka", "tanaka@example.co.jp", people=None)).startswith("553 5.7.1")
