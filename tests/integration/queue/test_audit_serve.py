"""`sendguard serve` relaying passed mail, killed with SIGKILL: every message the client saw
250 for has its verdict record, and the keyed chain verifies against the relay's anchor.

On main the audit of passed mail was a fire-and-forget task after the reply: 22 of 3,908
acknowledged messages had no record after a kill -9.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import aiosmtplib
import pytest
from queue_helpers import postgres_or_sqlite, until  # type: ignore[import-not-found]
from tests.support.relay import RelayProcess

from sendguard.cli.main import main
from sendguard.queue.auditkey import read_key
from sendguard.queue.backends import open_store

pytestmark = pytest.mark.slow
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


async def _send(port: int, n: int) -> bool:
    """Message `n` from a unique sender (the audit record names it); True on 250."""
    data = f"From: s{n}@example.jp\r\nTo: x@partner.test\r\nSubject: {n}\r\n\r\nhi\r\n"
    try:
        errors, _ = await aiosmtplib.send(
            data.encode(), sender=f"s{n}@example.jp", recipients=["x@partner.test"],
            hostname="127.0.0.1", port=port, timeout=10,
        )  # fmt: skip
    except (aiosmtplib.SMTPException, OSError):
        return False
    return not errors


@pytest.mark.parametrize("kind", BACKENDS)
async def test_kill_9_leaves_no_acknowledged_message_without_its_verdict(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    acked: set[int] = set()
    # Defaults: beside a SQLite store; ./var/ (of the relay's directory) for PostgreSQL.
    key_file = tmp_path / ("audit.key" if kind == "sqlite" else "var/audit.key")
    anchor = key_file.parent / "audit.head"
    with postgres_or_sqlite(kind, tmp_path) as url:
        relay = RelayProcess(
            {"SENDGUARD_STORE": url, "SENDGUARD_AUDIT_ANCHOR_INTERVAL": "0.2"}, cwd=tmp_path
        )
        await asyncio.to_thread(relay.start)
        try:

            async def client(start: int) -> None:
                for n in range(start, 4000, 12):
                    if await _send(relay.port, n):
                        acked.add(n)

            clients = [asyncio.create_task(client(i)) for i in range(12)]
            await until(lambda: len(acked) >= 300, within=60)
            await until(anchor.exists, within=10)
            relay.signal(signal.SIGKILL)
            await asyncio.gather(*clients)
        finally:
            if relay.proc is not None and relay.proc.poll() is None:
                relay.signal(signal.SIGKILL)
            await asyncio.to_thread(relay.wait)
        assert len(acked) < 4000  # the kill came mid-stream
        heads = [e for e in relay.events() if e.get("event") == "audit_head"]
        assert heads  # the JSON log carries the anchors too (what a SIEM keeps)
        assert (key_file.stat().st_mode & 0o777) == 0o600
        store = await open_store(url, audit_key=read_key(key_file))
        records = await store.audit_records(limit=100_000)
        check = await store.verify_audit()
        await store.close()
        assert check.ok, check.problem
        recorded = {
            int(json.loads(r.details)["mail_from"][1:].split("@")[0])
            for r in records
            if r.event == "verdict"
        }
        missing = sorted(acked - recorded)
        assert not missing, f"{len(missing)} of {len(acked)} acknowledged without a verdict"
        assert all(r.v == 2 for r in records)
        # The CLI checks the same chain against the relay's anchor file.
        monkeypatch.setenv("SENDGUARD_AUDIT_KEY", str(key_file))
        argv = ["audit", "verify", "--store", url, "--head-file", str(anchor)]
        argv += [arg for h in heads for arg in ("--head", f"{h['seq']}:{h['hash']}")]
        code = await asyncio.to_thread(main, argv)
        out, err = capsys.readouterr()
        assert code == 0, err
        assert f"{len(heads) + 1} anchored head(s) found" in out
