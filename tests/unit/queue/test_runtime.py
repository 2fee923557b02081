"""The queue runtime `sendguard serve` starts: settings → store + worker, delivering."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sendguard.deliver import SmtpUpstream
from sendguard.queue.runtime import start_queue
from sendguard.queue.testing import sample_envelope, sample_message, sample_verdict
from sendguard.review.service import ReviewService
from sendguard.settings import load_settings
from sendguard.testing.upstream import RecordingUpstream


async def test_started_queue_delivers_a_release_within_seconds(
    tmp_path: Path, smtp_upstream: SmtpUpstream, upstream: RecordingUpstream
) -> None:
    """With the settings' store, a held message released through the review service is
    delivered by the running worker, and stop() ends the worker and closes the store."""
    settings = load_settings(store=f"sqlite:///{tmp_path / 'q.db'}", hostname="relay.test")
    runtime = await start_queue(settings, smtp_upstream, node_id="n1")
    entry = await runtime.store.enqueue(
        envelope=sample_envelope("tanaka@corp.example"),
        data=sample_message(),
        verdict=sample_verdict(),
        state="held",
    )
    await ReviewService(runtime.store).release([entry.id], "boss")
    async with asyncio.timeout(5):
        # The worker's commit is in the database; there is no event to wait on.
        while (await runtime.store.get(entry.id)).state != "delivered":  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert [m.rcpt_tos for m in upstream.messages if m.mail_from == "tanaka@corp.example"] == [
        ("customer@client.example",)
    ]
    await runtime.stop()
    assert runtime.task.cancelled()
