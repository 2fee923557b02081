"""Two relay nodes sharing one PostgreSQL queue: hold through one, release from the CLI,
every message delivered exactly once (`node.py` stands in for `sendguard serve`)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path

import pytest
from nodes import node, submit, until  # type: ignore[import-not-found]

from sendguard.queue.store import open_store
from sendguard.queue.testing import postgres_schema
from sendguard.testing.upstream import RecordingUpstream

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


async def test_hold_on_one_node_release_by_cli_delivered_exactly_once(
    tmp_path: Path, upstream: RecordingUpstream
) -> None:
    """20 messages held through node A; `queue release ALL` from the CLI; nodes A and B
    both run workers; the upstream receives each message exactly once."""
    with postgres_schema() as url:
        async with (
            node(url, tmp_path, node_id="node-a", upstream=upstream.url) as a,
            node(url, tmp_path, node_id="node-b", upstream=upstream.url, listen=False),
        ):
            replies = await asyncio.gather(*(submit(a.port, n) for n in range(20)))
            assert all(r is not None and "held as" in r for r in replies)
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "sendguard",
                "queue",
                "release",
                "ALL",
                "--actor",
                "boss",
                "--store",
                url,
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await proc.communicate()
            assert proc.returncode == 0
            assert out.decode().count("released by boss") == 20

            def sent() -> list[bytes]:
                return [m.data for m in upstream.messages if m.mail_from == "tanaka@corp.example"]

            await until(lambda: len(sent()) >= 20, within=30)
            await asyncio.sleep(1.0)  # time for a duplicate, if any, to show up
        store = await open_store(url)
        entries = await store.list()
        records = await store.audit_records(limit=10_000)
        await store.close()
    ids = Counter(line for data in sent() for line in data.split(b"\r\n") if b"Message-ID" in line)
    assert len(ids) == 20
    assert set(ids.values()) == {1}
    assert {e.state for e in entries} == {"delivered"}
    deliverers = Counter(json.loads(r.details)["node"] for r in records if r.event == "delivered")
    assert sum(deliverers.values()) == 20
    assert set(deliverers) <= {"node-a", "node-b"}
