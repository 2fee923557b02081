"""Postfix in front of sendguard, end to end with Debian's Postfix (deploy/postfix).

Both patterns of the recipe, each with a private Postfix instance:

1. relayhost: client → Postfix (submission) → relayhost sendguard (XFORWARD) → upstream;
2. before-queue: client → Postfix ``smtpd_proxy_filter`` → sendguard → Postfix's
   re-injection listener → upstream; sendguard's reply reaches the client through Postfix;
   after-queue: the same through Postfix's queue and ``content_filter``.

Postfix is configured from the recipe's own main.cf and master.cf (ports replaced). The
client tells Postfix who it is with XCLIENT (``smtpd_authorized_xclient_hosts``) instead of
TLS + SASL, so Postfix treats it as the address and SASL login given, exactly as after a real
AUTH (its Received: header names the login: ``smtpd_sasl_authenticated_header``). sendguard
must see that original address and login (policy, sender binding, logs), never Postfix's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import smtplib
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from sendguard.app import App
from tests.conftest import need_tool
from tests.support.postfix import (
    PostfixRelay,
    free_port,
    postfix_relay,
    read_main_cf,
    read_master_cf,
)
from tests.support.relay import running_relay, write_policy
from tests.support.upstream import RecordingUpstream

POLICY = """\
[organisation]
internal_domains = ["example.co.jp"]

[people.tanaka]
addresses = ["tanaka@example.co.jp"]

[detectors.unresolvable-domain]
enabled = false

[[rule]]
id = "lab-never-writes-out"
description = "The lab network may not write outside, even logged in"
action = "reject"
recipients = "any-external"
clients = { networks = ["198.51.100.0/24"] }
reason = "The lab network does not send outside mail"
"""
OUTSIDE = "yamada@partner.test"
RECIPES = Path(__file__).resolve().parents[2] / "deploy" / "postfix"
# The test client cannot do TLS + SASL against the submission entry: these of its options
# are replaced by XCLIENT (below); every other line of the recipe is used as written.
REPLACED = ("smtpd_tls_", "smtpd_sasl_", "smtpd_client_restrictions", "smtpd_relay_restrictions")
TEST_MAIN = (
    "smtpd_authorized_xclient_hosts = 127.0.0.0/8",
    "smtpd_sasl_auth_enable = yes",  # XCLIENT LOGIN counts as SASL (no backend needed)
)


@dataclass
class Front:
    postfix: PostfixRelay
    relay: App
    upstream: RecordingUpstream
    logs: list[dict[str, Any]]


def recipe(
    name: str, ports: dict[str, int]
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """deploy/postfix/NAME as (main.cf lines, the submission entry's options, the other
    master.cf lines), with the recipe's ports (2525 sendguard, 10025 re-injection) replaced."""

    def ported(text: str) -> str:
        for fixed, port in ports.items():
            text = text.replace(f"127.0.0.1]:{fixed}", f"127.0.0.1]:{port}")
            text = text.replace(f"127.0.0.1:{fixed}", f"127.0.0.1:{port}")
        return text

    main = read_main_cf(ported((RECIPES / name / "main.cf").read_text()))
    services = read_master_cf(ported((RECIPES / name / "master.cf").read_text()))
    submission = services.pop("submission")
    kept = tuple(o for o in submission.options if not o.startswith(REPLACED))
    others = tuple(line for service in services.values() for line in service.lines())
    return main, kept, others


@contextlib.contextmanager
def _postfix(
    relay_port: int,
    name: str,
    ports: dict[str, int],
    relay_restrictions: str,
) -> Iterator[PostfixRelay]:
    """A private Postfix configured by recipe `name`, in a directory its `postfix` user can
    enter (pytest's are 0700)."""
    need_tool("postfix")
    main, submission, services = recipe(name, ports)
    with tempfile.TemporaryDirectory(prefix="sendguard-postfix-") as tmp:
        os.chmod(tmp, 0o755)  # noqa: S103  # Postfix's unprivileged daemons must reach data/
        with postfix_relay(
            Path(tmp),
            relay_port,
            main_cf=(*main, *TEST_MAIN, f"smtpd_relay_restrictions = {relay_restrictions}"),
            smtpd_options=submission,
            services=services,
        ) as pf:
            try:
                yield pf
            except BaseException:
                # Postfix's side of a failure, in the test's output (no personal data here).
                print((Path(tmp) / "maillog").read_text(errors="replace")[-4000:])
                raise


@contextlib.asynccontextmanager
async def relay_pattern(
    tmp_path: Path, *, relay_restrictions: str = "permit_sasl_authenticated reject"
) -> AsyncIterator[Front]:
    """Pattern 1 (deploy/postfix/relayhost): Postfix's relayhost is sendguard, with XFORWARD."""
    async with (
        RecordingUpstream() as upstream,
        running_relay(
            upstream=upstream.url,
            policy_dir=write_policy(tmp_path / "policies", POLICY),
            trusted_networks="192.0.2.0/24,198.51.100.0/24,127.0.0.0/8",
            xforward_hosts="127.0.0.1/32",
        ) as relay,
    ):
        port = relay.bound[0][1]
        with (
            capture_logs() as logs,
            _postfix(port, "relayhost", {"2525": port}, relay_restrictions) as pf,
        ):
            yield Front(pf, relay, upstream, logs)


@contextlib.asynccontextmanager
async def filter_pattern(
    tmp_path: Path,
    name: str = "before-queue",
    *,
    relay_restrictions: str = "permit_sasl_authenticated reject",
) -> AsyncIterator[Front]:
    """Pattern 2 (deploy/postfix/before-queue or after-queue): Postfix hands the mail to
    sendguard, which hands it back to the recipe's re-injection listener; Postfix then
    relays it to the upstream."""
    reinject = free_port()
    async with RecordingUpstream() as upstream:
        with capture_logs() as logs:
            async with running_relay(
                upstream=f"smtp://127.0.0.1:{reinject}",
                policy_dir=write_policy(tmp_path / "policies", POLICY),
                trusted_networks="192.0.2.0/24,198.51.100.0/24,127.0.0.0/8",
                xforward_hosts="127.0.0.1/32",
            ) as relay:
                ports = {"2525": relay.bound[0][1], "10025": reinject}
                with _postfix(upstream.port, name, ports, relay_restrictions) as pf:
                    yield Front(pf, relay, upstream, logs)


@contextlib.contextmanager
def client_as(port: int, xclient: str) -> Iterator[smtplib.SMTP]:
    """An SMTP client that Postfix takes for the XCLIENT address and login given."""
    smtp = smtplib.SMTP("127.0.0.1", port, timeout=15)
    try:
        smtp.ehlo("tester")
        code, text = smtp.docmd("XCLIENT", xclient)
        assert code == 220, text
        smtp.ehlo("pc7")
        yield smtp
    finally:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            smtp.quit()


def _message(sender: str, subject: str) -> bytes:
    return f"From: <{sender}>\r\nTo: <{OUTSIDE}>\r\nSubject: {subject}\r\n\r\nhello\r\n".encode()


async def _send(port: int, xclient: str, sender: str, subject: str) -> dict[str, Any]:
    """Send through Postfix; the refusals the client saw, by recipient ({} when accepted)."""

    def run() -> dict[str, Any]:
        with client_as(port, xclient) as smtp:
            try:
                return dict(smtp.sendmail(sender, [OUTSIDE], _message(sender, subject)))
            except smtplib.SMTPRecipientsRefused as exc:
                return {"rcpt": exc.recipients}
            except smtplib.SMTPDataError as exc:
                return {"data": (exc.smtp_code, exc.smtp_error.decode())}

    return await asyncio.to_thread(run)


async def _event(logs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The first log event of that name, waiting (10 s) for Postfix's queue to get there."""
    deadline = asyncio.get_running_loop().time() + 10
    while asyncio.get_running_loop().time() < deadline:
        for event in logs:
            if event.get("event") == name:
                return event
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {name} event; got {[e.get('event') for e in logs]}")


async def _delivered(upstream: RecordingUpstream, count: int) -> None:
    """Wait (10 s) until the upstream has `count` messages: Postfix's queue is asynchronous."""
    deadline = asyncio.get_running_loop().time() + 10
    while len(upstream.messages) < count and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    assert len(upstream.messages) == count


# --------------------------------------------------------------------------- 1. relayhost


async def test_relay_pattern_policy_and_logs_see_the_original_client(tmp_path: Path) -> None:
    """Postfix relays to sendguard; sendguard sees the client's address and Postfix's SASL
    login (not 127.0.0.1 without login) and logs both with Postfix as `via`."""
    async with relay_pattern(tmp_path) as front:
        refused = await _send(
            front.postfix.port, "ADDR=203.0.113.9 LOGIN=tanaka", "tanaka@example.co.jp", "ok"
        )
        assert refused == {}
        await _delivered(front.upstream, 1)
        event = await _event(front.logs, "transaction")
        assert front.relay.store is not None
        records = await front.relay.store.audit_records()
    [verdict] = [json.loads(r.details) for r in records if r.event == "verdict"]
    replay = verdict["replay"]  # what a policy replay decides on again: the original client
    assert (replay["client"], replay["auth_user"], verdict["via"]) == (
        "203.0.113.9",
        "tanaka",
        "127.0.0.1",
    )
    assert front.upstream.messages[0].rcpt_tos == (OUTSIDE,)
    assert (event["client"], event["auth_user"], event["via"]) == (
        "203.0.113.9",
        "tanaka",
        "127.0.0.1",
    )
    assert event["postfix_id"]  # Postfix's queue id, to follow the message there
    assert event["action"] == "pass"


async def test_relay_pattern_sender_binding_applies_to_the_postfix_login(
    tmp_path: Path,
) -> None:
    """A Postfix-authenticated login forging another MAIL FROM is refused by sendguard."""
    async with relay_pattern(tmp_path) as front:
        await _send(
            front.postfix.port, "ADDR=203.0.113.9 LOGIN=tanaka", "shacho@example.co.jp", "forged"
        )
        event = await _event(front.logs, "sender_login_mismatch")
    assert (event["user"], event["client"], event["via"]) == ("tanaka", "203.0.113.9", "127.0.0.1")
    assert front.upstream.messages == []


# --------------------------------------------------------------------------- 2. proxy filter


async def test_proxy_pattern_relays_and_the_refusal_reaches_the_client(tmp_path: Path) -> None:
    """Before-queue filter: an owned sender goes through Postfix's re-injection listener;
    a forged one gets sendguard's 553 at the client, through Postfix."""
    async with filter_pattern(tmp_path) as front:
        ok = await _send(
            front.postfix.port, "ADDR=203.0.113.9 LOGIN=tanaka", "tanaka@example.co.jp", "ok"
        )
        await _delivered(front.upstream, 1)
        forged = await _send(
            front.postfix.port, "ADDR=203.0.113.9 LOGIN=tanaka", "shacho@example.co.jp", "forged"
        )
        event = await _event(front.logs, "transaction")
        maillog = (front.postfix.config_dir.parent / "maillog").read_text(errors="replace")
    assert ok == {}
    # sendguard forwards the client to the re-injection listener in turn: Postfix's log
    # names it and sendguard's transaction id for the re-injected copy.
    assert re.search(r"orig_queue_id=[0-9a-f]{16}, orig_client=unknown\[203\.0\.113\.9\]", maillog)
    code, text = forged["data"]
    assert code == 553 and "5.7.1" in text and "not owned" in text
    assert (event["client"], event["auth_user"], event["via"]) == (
        "203.0.113.9",
        "tanaka",
        "127.0.0.1",
    )
    assert len(front.upstream.messages) == 1


async def test_proxy_pattern_clients_rule_matches_the_forwarded_address(tmp_path: Path) -> None:
    """A `clients` rule sees the original network: the lab's mail is rejected at the client."""
    async with filter_pattern(tmp_path) as front:
        refused = await _send(
            front.postfix.port, "ADDR=198.51.100.5 LOGIN=tanaka", "tanaka@example.co.jp", "lab"
        )
    code, text = refused["data"]
    assert code == 550 and "lab network" in text
    assert front.upstream.messages == []


async def test_no_open_relay_behind_an_open_postfix(tmp_path: Path) -> None:
    """Even a Postfix that relays for anyone gets nothing through sendguard for a client with
    neither a login nor a trusted address."""
    anyone = "check_client_access static:OK reject"  # Postfix refuses a bare "permit"
    async with filter_pattern(tmp_path, relay_restrictions=anyone) as front:
        refused = await _send(front.postfix.port, "ADDR=203.0.113.66", "x@evil.test", "spam")
        event = await _event(front.logs, "relay_denied")
    code, text = refused["data"]
    assert code == 550 and "5.7.1" in text
    assert (event["client"], event["via"]) == ("203.0.113.66", "127.0.0.1")
    assert front.upstream.messages == []


async def test_after_queue_pattern_keeps_the_client_through_the_queue(tmp_path: Path) -> None:
    """content_filter: Postfix queues, then its `sendguard` transport forwards the client by
    XFORWARD; a forged sender is refused by sendguard, and Postfix bounces it."""
    async with filter_pattern(tmp_path, "after-queue") as front:
        ok = await _send(
            front.postfix.port, "ADDR=203.0.113.9 LOGIN=tanaka", "tanaka@example.co.jp", "ok"
        )
        await _delivered(front.upstream, 1)
        passed = await _event(front.logs, "transaction")
        await _send(
            front.postfix.port, "ADDR=203.0.113.9 LOGIN=tanaka", "shacho@example.co.jp", "forged"
        )
        mismatch = await _event(front.logs, "sender_login_mismatch")
        await _delivered(front.upstream, 2)  # the bounce, from Postfix's queue, not sendguard
    assert ok == {}
    assert (passed["client"], passed["auth_user"], passed["via"]) == (
        "203.0.113.9",
        "tanaka",
        "127.0.0.1",
    )
    assert passed["postfix_id"]  # the queue id in Postfix's log, for following the message
    assert (mismatch["user"], mismatch["client"]) == ("tanaka", "203.0.113.9")
    sent, bounce = front.upstream.messages
    assert b"Subject: ok" in sent.data
    # After the queue a refusal can only bounce, to the MAIL FROM (see the README).
    assert (bounce.mail_from, bounce.rcpt_tos) == ("<>", ("shacho@example.co.jp",))
    assert b"553 5.7.1" in bounce.data
