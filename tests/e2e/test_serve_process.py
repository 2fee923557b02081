"""`sendguard serve` as a real process: embedded default, signals, load from smtp-source."""

from __future__ import annotations

import asyncio
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import aiosmtplib
import pytest

from tests.support.postfix import dumped, smtp_sink, tool
from tests.support.relay import RelayProcess
from tests.support.upstream import RecordingUpstream

DATA = b"From: a@example.jp\r\nTo: b@partner.test\r\nSubject: p\r\n\r\nhello\r\n"


def test_embedded_default_delivers_to_maildir(tmp_path: Path) -> None:
    """With no settings at all, mail lands as a file in ./var/delivered/new (the quick start)."""
    relay = RelayProcess({}, cwd=tmp_path).start()
    try:
        with smtplib.SMTP("127.0.0.1", relay.port) as client:
            client.sendmail("a@example.jp", ["b@partner.test"], DATA)
    finally:
        assert relay.stop() == 0
    [path] = list((tmp_path / "var" / "delivered" / "new").iterdir())
    assert path.read_bytes().endswith(DATA)
    assert b"Return-Path: <a@example.jp>" in path.read_bytes()
    events = [e["event"] for e in relay.events()]
    assert "transaction" in events and events[-1] == "shutdown_finished"


async def test_sigterm_finishes_in_flight_transaction(tmp_path: Path) -> None:
    """SIGTERM during DATA: the message still completes with 250, new connections are refused."""
    async with RecordingUpstream() as up:
        up.hang_next("DATA", 1.5)
        relay = RelayProcess({"SENDGUARD_UPSTREAM": up.url}, cwd=tmp_path)
        await asyncio.to_thread(relay.start)
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, timeout=30)
        await client.connect()
        sending = asyncio.create_task(client.sendmail("a@example.jp", ["b@partner.test"], DATA))
        await asyncio.sleep(0.7)
        relay.signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", relay.port)
        refused, final = await sending
        assert await asyncio.to_thread(relay.wait) == 0
    assert refused == {} and final.startswith("2.0.0")
    assert len(up.messages) == 1


def test_sighup_reloads_without_stopping(tmp_path: Path) -> None:
    """SIGHUP triggers a reload and the relay keeps serving."""
    relay = RelayProcess({}, cwd=tmp_path).start()
    try:
        relay.signal(signal.SIGHUP)
        time.sleep(0.3)
        with smtplib.SMTP("127.0.0.1", relay.port) as client:
            client.sendmail("a@example.jp", ["b@partner.test"], DATA)
    finally:
        assert relay.stop() == 0
    assert "reload_requested" in [e["event"] for e in relay.events()]


@pytest.mark.postfix
def test_load_2000_messages_20_connections_arrive_once(tmp_path: Path) -> None:
    """smtp-source sends 2,000 20 KB messages over 20 connections; smtp-sink gets each once."""
    sink_dir = tmp_path / "sink"
    with smtp_sink(sink_dir) as sink_port:
        relay = RelayProcess(
            {"SENDGUARD_UPSTREAM": f"smtp://127.0.0.1:{sink_port}"}, cwd=tmp_path
        ).start()
        try:
            started = time.monotonic()
            subprocess.run(
                [
                    tool("smtp-source"),
                    "-s",
                    "20",
                    "-m",
                    "2000",
                    "-l",
                    "20480",
                    "-f",
                    "load@example.jp",
                    "-t",
                    "sink@partner.test",
                    f"127.0.0.1:{relay.port}",
                ],
                check=True,
                timeout=240,
                capture_output=True,
            )
            elapsed = time.monotonic() - started
        finally:
            relay.stop()
        deadline = time.monotonic() + 10
        while len(dumped(sink_dir)) < 2000 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert len(dumped(sink_dir)) == 2000
    transactions = [e for e in relay.events() if e.get("event") == "transaction"]
    assert len(transactions) == 2000
    assert all(e["reply_code"] == 250 for e in transactions)
    print(
        f"relayed 2000 x 20 KB over 20 connections in {elapsed:.1f}s = {2000 / elapsed:.0f} msg/s"
    )


def test_broken_policy_is_refused_at_start_with_a_clear_error(tmp_path: Path) -> None:
    """With the default pre-fork workers, a broken policy is one clear error and exit 2,
    never workers dying and restarting."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "bad.toml").write_text('[[rule]]\nid = "x"\naction = "explode"\n')
    done = subprocess.run(
        [sys.executable, "-m", "sendguard", "serve", "--workers", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "bad.toml: rule 'x' field action" in done.stderr
    assert "worker_died" not in done.stderr
