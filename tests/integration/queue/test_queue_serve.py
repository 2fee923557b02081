"""`sendguard serve` with its queue, as processes: kill -9 while clients submit held mail and
while a release is being delivered; two nodes sharing PostgreSQL, released from the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from queue_helpers import (  # type: ignore[import-not-found]
    postgres_or_sqlite,
    relay_audit_key,
    relay_key_file,
    submit,
    until,
)
from tests.support.relay import RelayProcess, hold_external_policy, write_policy
from tests.support.review import actor, me_listed
from tests.support.store import postgres_schema
from tests.support.upstream import RecordingUpstream

from sendguard.entry import Entry
from sendguard.queue.backends import open_store
from sendguard.review.service import ReviewService

pytestmark = pytest.mark.slow
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
SENDER = "tanaka@corp.example"
HOLD_EXTERNAL = hold_external_policy("corp.example")


@asynccontextmanager
async def serving(
    cwd: Path, upstream: str, store: str, *, nodes: int = 1, **env: str
) -> AsyncIterator[list[RelayProcess]]:
    """`nodes` × `sendguard serve` holding external mail into one `store`, started side by
    side; SIGKILLed when the block ends."""
    write_policy(cwd / "policies", HOLD_EXTERNAL + me_listed("admin"))  # for the CLI
    settings: Mapping[str, str] = {
        "SENDGUARD_UPSTREAM": upstream,
        "SENDGUARD_STORE": store,
        "SENDGUARD_QUEUE__POLL_INTERVAL": "0.1",
        "SENDGUARD_QUEUE__CLAIM_LEASE": "1",
        "SENDGUARD_NOTIFY__FROM_ADDRESS": "sendguard@corp.example",
        **env,
    }
    relays = [RelayProcess(settings, cwd=cwd) for _ in range(nodes)]
    try:
        # start() blocks; the recording upstream it probes runs in this loop. 60 s: on a
        # loaded machine two nodes warming their extraction pools side by side took > 15 s.
        await asyncio.gather(*(asyncio.to_thread(r.start, 60) for r in relays))
        yield relays
    finally:
        for relay in relays:
            kill(relay)
        await asyncio.gather(*(asyncio.to_thread(r.wait) for r in relays if r.proc))


def kill(relay: RelayProcess) -> None:
    """kill -9: no shutdown, no flush."""
    assert relay.proc is not None
    if relay.proc.poll() is None:
        relay.signal(signal.SIGKILL)


def _queue_id(reply: str) -> str:
    """The queue id a 250 names ("… held by rule R as ID: reason")."""
    found = re.search(r" as ([0-9A-Z]{26}):", reply)
    assert found is not None, reply
    return found.group(1)


def _message_number(entry: Entry) -> int:
    found = re.search(rb"Message-ID: <msg-(\d+)@", entry.data)
    assert found is not None
    return int(found.group(1))


@pytest.mark.parametrize("kind", BACKENDS)
async def test_kill_9_loses_no_acknowledged_message_and_finishes_a_delivery(
    kind: str, tmp_path: Path, upstream: RecordingUpstream
) -> None:
    """While 8 clients submit held mail and a released message is mid-delivery, serve is
    killed with SIGKILL. After a restart every message that got 250 is queued exactly once
    (under the id its 250 named) and the interrupted delivery completes, once."""
    acked: dict[int, str] = {}
    with postgres_or_sqlite(kind, tmp_path) as url:
        store = await open_store(url, audit_key=relay_audit_key(url, tmp_path))
        async with serving(tmp_path, upstream.url, url, SENDGUARD_NOTIFY__ENABLED="false") as [one]:
            first = await submit(one.port, 0)
            assert first is not None
            acked[0] = first
            upstream.hang_next("RCPT", 60)
            boss = actor("boss", "boss@corp.example")
            (released,) = await ReviewService(store).release([_queue_id(first)], boss)
            assert released.entry is not None

            async def client(start: int) -> None:
                for n in range(start, 400, 8):
                    if (text := await submit(one.port, n)) is not None:
                        acked[n] = text

            clients = [asyncio.create_task(client(i)) for i in range(1, 9)]
            await until(lambda: len(acked) >= 40 and "RCPT" in " ".join(upstream.commands),
                        within=30)  # fmt: skip
            kill(one)
            await asyncio.gather(*clients)
        assert len(acked) < 400  # the kill came mid-stream
        assert (await store.get(released.queue_id)).state == "delivering"

        async with serving(tmp_path, upstream.url, url, SENDGUARD_NOTIFY__ENABLED="false"):
            for _ in range(200):
                if (await store.get(released.queue_id)).state == "delivered":
                    break
                await asyncio.sleep(0.05)
        entries = [await store.get(e.id) for e in await store.list()]
        await store.close()
    queued = Counter(_message_number(e) for e in entries)
    ids = {_message_number(e): e.id for e in entries}
    for n, text in acked.items():
        assert queued[n] == 1, f"message {n} got 250 but is queued {queued[n]} times"
        assert _queue_id(text) == ids[n]
    assert max(queued.values()) == 1
    assert [e.state for e in entries if e.id == released.queue_id] == ["delivered"]
    assert [m.rcpt_tos for m in upstream.messages] == [("customer@client.example",)]


@pytest.mark.postgres
async def test_two_serve_nodes_on_postgres_deliver_a_cli_release_exactly_once(
    tmp_path: Path, upstream: RecordingUpstream
) -> None:
    """Hold 20 messages through node A; `sendguard queue release ALL --yes` from the CLI (an
    admin, in the relay's directory); both nodes' workers run; the upstream gets each
    message exactly once."""
    with postgres_schema() as url:
        async with serving(tmp_path, upstream.url, url, nodes=2) as [a, _]:
            replies = await asyncio.gather(*(submit(a.port, n) for n in range(20)))
            assert all(r is not None and "held by rule hold-external" in r for r in replies)
            # The CLI extends the relays' keyed audit log: it needs their key file.
            key = {"SENDGUARD_AUDIT_KEY": str(relay_key_file(url, tmp_path))}
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "sendguard", "queue", "release", "ALL", "--yes",
                "--actor", "boss", "--store", url, stdout=asyncio.subprocess.PIPE, cwd=tmp_path,
                env={**os.environ, **key},
            )  # fmt: skip
            out, _ = await proc.communicate()
            assert proc.returncode == 0
            assert out.decode().count("released by boss") == 20

            def sent() -> list[bytes]:
                return [m.data for m in upstream.messages if m.mail_from == SENDER]

            await until(lambda: len(sent()) >= 20, within=30)
            await asyncio.sleep(0.5)  # time for a duplicate, if any, to show up
        store = await open_store(url)
        entries = await store.list()
        records = await store.audit_records(limit=10_000)
        await store.close()
    message_ids = Counter(
        line for data in sent() for line in data.split(b"\r\n") if line.startswith(b"Message-ID")
    )
    assert len(message_ids) == 20
    assert set(message_ids.values()) == {1}
    assert {e.state for e in entries} == {"delivered"}
    nodes = Counter(json.loads(r.details)["node"] for r in records if r.event == "delivered")
    assert sum(nodes.values()) == 20
    notices = [m for m in upstream.messages if m.mail_from == "sendguard@corp.example"]
    assert len(notices) == 60  # held + reviewers + released, per message
