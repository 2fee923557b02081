"""Helpers for tests of the queue, review and notify stages (test-only: not in the package).

A settable clock, a throw-away PostgreSQL schema, and builders for held/delayed inputs.
Nothing here is used by the running relay.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import quote

from sendguard.model import Action, Envelope, Finding, HoldParams, RuleResult, Trace, Verdict

TEST_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
"""The CI database; override with ``SENDGUARD_TEST_POSTGRES``."""


@dataclass
class FakeClock:
    """A clock tests move by hand; call it for the current time."""

    now: dt.datetime = field(default_factory=lambda: dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC))

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        """Move forward by a `timedelta(**delta)`; return the new time."""
        self.now += dt.timedelta(**delta)
        return self.now


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A store URL on a fresh schema of the test database, dropped afterwards."""
    import psycopg

    base = os.environ.get("SENDGUARD_TEST_POSTGRES", TEST_POSTGRES)
    schema = f"sg_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}".encode())
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE".encode())


def damage_row(store_url: str, queue_id: str, column: str, value: str) -> None:
    """Overwrite one text column of a queue row behind the store's back (a row damaged by
    hand, a bad migration, a newer sendguard): to test that such a row is moved aside."""
    if column not in ("envelope", "verdict", "state", "delivered_to", "approvals"):
        raise ValueError(f"not a column to damage: {column}")
    sql = f"UPDATE queue_entry SET {column} = {{}} WHERE id = {{}}"  # noqa: S608  # fixed set
    if store_url.startswith("sqlite:"):
        import sqlite3

        conn = sqlite3.connect(store_url.removeprefix("sqlite:///"))
        try:
            conn.execute(sql.format("?", "?"), (value, queue_id))
            conn.commit()
        finally:
            conn.close()
        return
    import psycopg

    with psycopg.connect(store_url, autocommit=True) as pg:
        pg.execute(sql.format("%s", "%s").encode(), (value, queue_id))


def sample_envelope(
    mail_from: str = "tanaka@corp.example", *rcpts: str, auth_user: str | None = "tanaka"
) -> Envelope:
    """An envelope as the relay would have validated it (an authenticated login's own
    address is its MAIL FROM here)."""
    return Envelope(
        mail_from=mail_from,
        rcpt_tos=rcpts or ("customer@client.example",),
        transaction_id=uuid.uuid4().hex[:16],
        client_address="192.0.2.10",
        client_helo="pc-tanaka",
        auth_user=auth_user,
        received_at=dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC),
        sender_identity=mail_from if auth_user is not None else None,
    )


def sample_verdict(
    action: Action = Action.HOLD, *, hold: HoldParams | None = None, delay_minutes: float = 0
) -> Verdict:
    """A verdict with a realistic trace: one personal-data finding, masked."""
    finding = Finding(
        detector="personal-data",
        code="my-number",
        message="{count} My Numbers in {where}",
        count=3,
        severity="high",
        params={"count": 3, "where": "attachment 1"},
        evidence=("1234****9012", "2345****0123"),
        where=("attachment 1 › 顧客.csv",),
    )
    rule = RuleResult(
        rule_id="hold-my-number",
        description="Hold My Numbers going outside",
        matched=True,
        action=action,
        reasons=("3 My Numbers ≥ 1",),
        findings=(finding,),
    )
    return Verdict(
        action=action,
        rule_id="hold-my-number",
        reason="my numbers to an outside recipient",
        delay_minutes=delay_minutes,
        hold=hold or HoldParams(reviewers=("boss@corp.example",)),
        trace=Trace(findings=(finding,), rules=(rule,), policy_version="abc123"),
    )


def sample_message(subject: str = "見積書の送付") -> bytes:
    """A small MIME message with a CSV attachment, CRLF line ends."""
    from email.message import EmailMessage
    from email.policy import SMTP

    msg = EmailMessage(policy=SMTP)
    msg["From"] = "田中 <tanaka@corp.example>"
    msg["To"] = "customer@client.example"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@corp.example>"
    msg.set_content("お世話になっております。\n添付をご確認ください。\n")
    msg.add_attachment(
        "氏名,マイナンバー\n山田,123456789012\n".encode(),
        maintype="text",
        subtype="csv",
        filename="顧客.csv",
    )
    return msg.as_bytes()
