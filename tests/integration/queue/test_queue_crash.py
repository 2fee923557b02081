"""Crash safety: kill -9 a node while clients submit held mail, and while it delivers.

`node.py` is a stand-in for `sendguard serve` (hold listener + queue worker in one
process) so these tests exercise the store and worker under a real crash; see the module.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from pathlib import Path

import pytest
from nodes import message, node, postgres_or_sqlite, submit, until  # type: ignore[import-not-found]

from sendguard.queue.store import Decision, Entry, open_store
from sendguard.queue.testing import sample_envelope, sample_verdict
from sendguard.testing.upstream import RecordingUpstream

pytestmark = pytest.mark.slow
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("kind", BACKENDS)
async def test_every_acknowledged_message_is_queued_once_after_kill_9(
    kind: str, tmp_path: Path
) -> None:
    """Clients keep submitting while the node is killed; after a restart every message that
    got 250 is in the queue exactly once, under the queue id its 250 named."""
    acked: dict[int, str] = {}
    with postgres_or_sqlite(kind, tmp_path) as url:
        async with node(url, tmp_path, node_id="a") as first:

            async def client(start: int) -> None:
                for n in range(start, 400, 8):
                    text = await submit(first.port, n)
                    if text is not None:
                        acked[n] = text

            clients = [asyncio.create_task(client(i)) for i in range(8)]
            await until(lambda: len(acked) >= 40, within=30)
            first.kill()
            await asyncio.gather(*clients)
        assert 40 <= len(acked) < 400  # the kill happened mid-stream

        async with node(url, tmp_path, node_id="a-restarted"):
            store = await open_store(url)
            entries = [await store.get(e.id) for e in await store.list()]
            await store.close()
    by_message: dict[int, list[str]] = {}
    for entry in entries:
        n = int(re.search(rb"Message-ID: <msg-(\d+)@", entry.data).group(1))  # type: ignore[union-attr]
        by_message.setdefault(n, []).append(entry.id)
    for n, text in acked.items():
        assert len(by_message.get(n, [])) == 1, (
            f"message {n} acknowledged but queued {by_message.get(n)}"
        )
        assert text.endswith(f"held as {by_message[n][0]}")
    assert all(len(ids) == 1 for ids in by_message.values())


@pytest.mark.parametrize("kind", BACKENDS)
async def test_delivery_interrupted_by_kill_9_completes_after_restart(
    kind: str, tmp_path: Path, upstream: RecordingUpstream
) -> None:
    """A node killed while delivering a released message leaves it 'delivering'; the
    restarted node takes it over when the claim lease ends and delivers it once."""
    with postgres_or_sqlite(kind, tmp_path) as url:
        store = await open_store(url)
        entry = await store.enqueue(
            envelope=sample_envelope("tanaka@corp.example"),
            data=message(1),
            verdict=sample_verdict(),
            state="held",
        )

        def release(e: Entry) -> Decision:
            now = e.updated_at
            changed = replace(e, state="released", released_at=now, next_attempt_at=now)
            return Decision(changed, event="released", actor="boss")

        await store.apply(entry.id, release)
        upstream.hang_next("RCPT", 30)
        async with node(
            url, tmp_path, node_id="a", upstream=upstream.url, listen=False, lease=1
        ) as a:
            await until(lambda: any(c.startswith("RCPT") for c in upstream.commands), within=20)
            a.kill()
        assert (await store.get(entry.id)).state == "delivering"
        async with node(url, tmp_path, node_id="b", upstream=upstream.url, listen=False, lease=1):
            for _ in range(300):
                if (await store.get(entry.id)).state == "delivered":
                    break
                await asyncio.sleep(0.05)
        done = await store.get(entry.id)
        await store.close()
    assert (done.state, done.attempts) == ("delivered", 1)
    delivered = [m for m in upstream.messages if m.mail_from == "tanaka@corp.example"]
    assert len(delivered) == 1
