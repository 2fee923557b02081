"""`sendguard doctor` against real parts: aiosmtpd upstreams (STARTTLS, AUTH, refusals), real
SQLite stores, real sockets, a real DNS server on loopback, real certificate files."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import dns.message
import dns.rcode
import psycopg
import pytest

from sendguard.cli.main import main
from sendguard.doctor import Report, Result, check_certificate, diagnose
from sendguard.queue.auditkey import load_or_create_key
from sendguard.queue.backends import open_store
from tests.support.relay import INSPECT_ONLY_POLICY, running_relay, write_policy
from tests.support.store import postgres_schema
from tests.support.tls import CertPair, make_self_signed
from tests.support.upstream import RecordingUpstream


def _by_check(report: Report) -> dict[str, Result]:
    return {r.check: r for r in report.results}


@pytest.fixture
async def tls_upstream(certs: CertPair) -> AsyncIterator[RecordingUpstream]:
    """An upstream that requires STARTTLS and AUTH (user relay, password s3cret)."""
    async with RecordingUpstream(tls=certs, users={"relay": "s3cret"}) as up:
        yield up


@pytest.fixture
async def deployment(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    certs: CertPair,
    tls_upstream: RecordingUpstream,
) -> Path:
    """A healthy node's settings in the environment: store created by the relay's own code,
    audit key 0600, policy, STARTTLS listener certificate, authenticated STARTTLS upstream."""
    store = f"sqlite:///{tmp_path / 'var' / 'sendguard.db'}"
    opened = await open_store(store)
    await opened.close()
    load_or_create_key(tmp_path / "var" / "audit.key")
    write_policy(tmp_path / "policies")
    monkeypatch.chdir(tmp_path)
    env = {
        "SENDGUARD_CONFIG": "",
        "SENDGUARD_STORE": store,
        "SENDGUARD_POLICY_DIR": str(tmp_path / "policies"),
        "SENDGUARD_LISTEN": "127.0.0.1:0",
        "SENDGUARD_WEB_LISTEN": "",
        "SENDGUARD_TLS_CERT": str(certs.cert),
        "SENDGUARD_TLS_KEY": str(certs.key),
        "SENDGUARD_UPSTREAM": f"smtp+starttls://relay:s3cret@127.0.0.1:{tls_upstream.port}",
        "SENDGUARD_UPSTREAM_CA_FILE": str(certs.cert),
    }
    for name in [n for n in os.environ if n.startswith("SENDGUARD_")]:
        monkeypatch.delenv(name)  # only this deployment's settings, whatever ran before
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return tmp_path


async def test_a_healthy_node_passes_and_no_mail_is_sent(
    deployment: Path, tls_upstream: RecordingUpstream
) -> None:
    """Every check runs; the notice sender is tried with MAIL/RCPT only, never DATA."""
    report = await diagnose(deadline=5)
    checks = _by_check(report)
    assert report.ok, report.results
    for name in ("settings", "policy", "startup-rules", "store", "audit-key", "upstream"):
        assert checks[name].status == "ok", checks[name]
    assert (
        checks["upstream-tls"].status == "ok"
        and "certificate valid" in checks["upstream-tls"].detail
    )
    assert checks["upstream-auth"].detail == "logged in as relay"
    assert checks["notice-sender"].status == "ok"
    assert "postmaster@example.jp" in checks["notice-sender"].detail
    assert checks["tls"].status == "warn" and "self-signed" in checks["tls"].detail
    assert tls_upstream.commands == [
        "MAIL postmaster@example.jp",
        "RCPT postmaster@example.jp",
    ]
    assert tls_upstream.messages == []


async def test_unreachable_upstream_fails_with_exit_1_and_json(
    deployment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing listens on the upstream's port: FAIL within the deadline, exit code 1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    monkeypatch.setenv("SENDGUARD_UPSTREAM", f"smtp+starttls://relay:s3cret@127.0.0.1:{closed}")
    code = await asyncio.to_thread(main, ["doctor", "--json", "--timeout", "3"])
    document = json.loads(capsys.readouterr().out)
    assert code == 1 and document["ok"] is False
    [upstream] = [r for r in document["results"] if r["check"] == "upstream"]
    assert (
        upstream["status"] == "fail" and f"127.0.0.1:{closed} not reachable" in upstream["detail"]
    )
    assert upstream["fix"]


def test_json_on_stdout_stays_parseable_when_events_are_logged(deployment: Path) -> None:
    """The real command in its own process (structlog unconfigured, as a user runs it): the
    policy's `allow_empty` warning goes to stderr, stdout is the JSON document alone
    (before: the warning was printed to stdout in front of it)."""
    done = subprocess.run(  # the CLI of this venv, fixed arguments
        [sys.executable, "-m", "sendguard", "doctor", "--json", "--timeout", "3"],
        capture_output=True, text=True, timeout=120, check=False, cwd=deployment,
    )  # fmt: skip
    document = json.loads(done.stdout)
    assert done.returncode == (0 if document["ok"] else 1)
    assert "policy_loaded" in done.stderr


async def test_upstream_certificate_not_trusted_fails(
    deployment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the CA that signed the upstream's self-signed certificate, STARTTLS fails."""
    monkeypatch.delenv("SENDGUARD_UPSTREAM_CA_FILE")
    checks = _by_check(await diagnose(deadline=5))
    assert checks["upstream-tls"].status == "fail"
    assert "certificate" in checks["upstream-tls"].detail
    assert "upstream-auth" not in checks  # no password is sent over an unverified session


async def test_upstream_without_starttls_fails(
    deployment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """smtp+starttls:// to a server that does not offer STARTTLS is a failure, not a fallback."""
    async with RecordingUpstream() as plain:
        monkeypatch.setenv("SENDGUARD_UPSTREAM", f"smtp+starttls://127.0.0.1:{plain.port}")
        checks = _by_check(await diagnose(deadline=5))
    assert checks["upstream-tls"].status == "fail"
    assert "does not offer STARTTLS" in checks["upstream-tls"].detail


async def test_wrong_upstream_password_fails(
    deployment: Path, monkeypatch: pytest.MonkeyPatch, tls_upstream: RecordingUpstream
) -> None:
    """AUTH refused: named as such (not as an unreachable server)."""
    monkeypatch.setenv(
        "SENDGUARD_UPSTREAM", f"smtp+starttls://relay:wrong@127.0.0.1:{tls_upstream.port}"
    )
    checks = _by_check(await diagnose(deadline=5))
    assert checks["upstream"].status == "ok"
    assert checks["upstream-auth"].status == "fail" and "535" in checks["upstream-auth"].detail


async def test_notice_sender_refused_by_the_upstream_fails(
    deployment: Path, tls_upstream: RecordingUpstream
) -> None:
    """The upstream refuses MAIL FROM the notice sender (no send-as right): FAIL with its reply."""
    tls_upstream.fail_next("MAIL", "550 5.7.60 not allowed to send as this sender")
    report = await diagnose(deadline=5)
    checks = _by_check(report)
    assert not report.ok
    assert checks["notice-sender"].status == "fail"
    assert "550 5.7.60" in checks["notice-sender"].detail


async def test_bad_policy_fails_and_skips_startup_rules(
    deployment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A policy with a syntax error: FAIL naming it; the text output carries the fix."""
    (deployment / "policies" / "broken.toml").write_text("[[rules]\nid = ", encoding="utf-8")
    code = await asyncio.to_thread(main, ["doctor"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL  policy" in out and "broken.toml" in out and "sendguard policy check" in out
    assert "startup-rules" not in out


async def test_unmigrated_store_is_reported_and_left_alone(deployment: Path) -> None:
    """A store at an older schema: WARN (serve migrates it), and doctor does not migrate it."""
    db = deployment / "var" / "sendguard.db"
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM schema_version WHERE version > 4")
    conn.commit()
    conn.close()
    checks = _by_check(await diagnose(deadline=5))
    assert checks["store"].status == "warn" and "schema 4" in checks["store"].detail
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone() == (4,)
    conn.close()


async def test_missing_store_fails_and_is_not_created(
    deployment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong store path is a failure, and doctor creates nothing there."""
    monkeypatch.setenv("SENDGUARD_STORE", f"sqlite:///{deployment / 'elsewhere' / 'x.db'}")
    checks = _by_check(await diagnose(deadline=5))
    assert checks["store"].status == "fail" and "no queue store" in checks["store"].detail
    assert not (deployment / "elsewhere").exists()


async def test_audit_key_readable_by_others_fails(deployment: Path) -> None:
    """A key file with mode 0644: FAIL with the chmod to run."""
    (deployment / "var" / "audit.key").chmod(0o644)
    checks = _by_check(await diagnose(deadline=5))
    assert checks["audit-key"].status == "fail"
    assert "chmod 600" in checks["audit-key"].fix


async def test_invalid_settings_fail_first(
    deployment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A setting that does not validate: one FAIL naming it, nothing else is tried."""
    monkeypatch.setenv("SENDGUARD_WORKERS", "many")
    report = await diagnose(deadline=5)
    [result] = report.results
    assert (result.check, result.status) == ("settings", "fail") and "workers" in result.detail


async def test_listener_taken_by_another_program_or_by_sendguard(
    deployment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A port held by something else fails; the port of a running sendguard is fine."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        monkeypatch.setenv("SENDGUARD_LISTEN", f"127.0.0.1:{other.getsockname()[1]}")
        checks = _by_check(await diagnose(deadline=2))
        assert checks["listen-smtp"].status == "fail"
        assert "another program" in checks["listen-smtp"].detail
    async with running_relay() as app:
        monkeypatch.setenv("SENDGUARD_LISTEN", f"127.0.0.1:{app.bound[0][1]}")
        checks = _by_check(await diagnose(deadline=2))
    assert checks["listen-smtp"].status == "ok"
    assert "running sendguard" in checks["listen-smtp"].detail


def test_certificate_expired_expiring_or_not_matching(tmp_path: Path) -> None:
    """The listener certificate (valid 30 days from now): expired, expiring soon, key swapped."""
    pair = make_self_signed(tmp_path / "a")
    other = make_self_signed(tmp_path / "b")
    now = dt.datetime.now(dt.UTC)
    expired = check_certificate(pair.cert, pair.key, now=now + dt.timedelta(days=31))
    assert expired.status == "fail" and "expired" in expired.detail
    soon = check_certificate(pair.cert, pair.key, now=now + dt.timedelta(days=20))
    assert soon.status == "warn" and "expires in" in soon.detail
    swapped = check_certificate(pair.cert, other.key)
    assert swapped.status == "fail" and "does not belong" in swapped.detail


class _Dns(asyncio.DatagramProtocol):
    """A DNS server on loopback that answers every query NXDOMAIN (an answer all the same)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector transport is not a DatagramTransport subclass, but has sendto.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        response = dns.message.make_response(dns.message.from_wire(data))
        response.set_rcode(dns.rcode.NXDOMAIN)
        self.transport.sendto(response.to_wire(), addr)


@pytest.fixture
def free_udp_port() -> int:
    """A loopback UDP port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _dns_policy(directory: Path, port: int) -> None:
    policy = INSPECT_ONLY_POLICY.replace(
        "[detectors.unresolvable-domain]\nenabled = false   # tests never query DNS",
        f'[detectors.unresolvable-domain]\nnameservers = ["127.0.0.1"]\nport = {port}\n'
        "query_timeout = 0.5",
    )
    write_policy(directory, policy)


async def test_dns_resolver_answering_or_not(deployment: Path, free_udp_port: int) -> None:
    """The detector's resolver is asked as the detector asks: an answer is OK, silence FAILs."""
    _dns_policy(deployment / "policies", free_udp_port)
    silent = _by_check(await diagnose(deadline=5))["dns"]
    assert silent.status == "fail" and "did not answer" in silent.detail
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_Dns, local_addr=("127.0.0.1", 0))
    try:
        _dns_policy(deployment / "policies", transport.get_extra_info("sockname")[1])
        answering = _by_check(await diagnose(deadline=5))["dns"]
    finally:
        transport.close()
    assert answering.status == "ok" and "nxdomain" in answering.detail


@pytest.mark.postgres
async def test_postgres_store_checked_and_left_at_its_schema(
    deployment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PostgreSQL store: current is OK; rolled back to schema 4 is a WARN, and stays at 4."""
    with postgres_schema() as url:
        await (await open_store(url)).close()
        monkeypatch.setenv("SENDGUARD_STORE", url)
        current = _by_check(await diagnose(deadline=5))["store"]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM schema_version WHERE version > 4")
            older = _by_check(await diagnose(deadline=5))["store"]
            row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    assert current.status == "ok" and "(current)" in current.detail
    assert older.status == "warn" and "schema 4" in older.detail
    assert row == (4,)


async def test_passthrough_to_a_plaintext_upstream_is_refused_as_serve_would(
    deployment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Pass-through AUTH that would send users' passwords in clear: serve's own refusal,
    reported by doctor (exit 1) before anyone starts the relay."""
    async with RecordingUpstream() as plain:
        monkeypatch.setenv("SENDGUARD_AUTH_MODE", "passthrough")
        monkeypatch.setenv("SENDGUARD_UPSTREAM", f"smtp://127.0.0.1:{plain.port}")
        monkeypatch.setenv("SENDGUARD_QUEUE_UPSTREAM", f"smtp://127.0.0.1:{plain.port}")
        code = await asyncio.to_thread(main, ["doctor"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL  startup-rules" in out and "without TLS" in out


async def test_exit_code_0_when_only_warnings(
    deployment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Warnings (a self-signed listener certificate) do not fail the run."""
    code = await asyncio.to_thread(main, ["doctor"])
    out = capsys.readouterr().out
    assert code == 0 and "WARN  tls" in out and "0 FAIL" in out
