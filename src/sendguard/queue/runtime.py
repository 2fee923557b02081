"""The queue as `sendguard serve` runs it: store + notifier + worker, started and stopped together.

`sendguard.app` calls `start_queue` after building the upstream, hands `runtime.store` to
the pipeline (enqueue and audit), and calls `runtime.stop()` on shutdown. Settings come from
``settings.queue`` and ``settings.notify`` (defaults until those groups are nested).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass

import structlog

from sendguard.deliver import Upstream
from sendguard.notify.notifier import Notifier
from sendguard.notify.settings import NotifySettings
from sendguard.queue.settings import QueueSettings
from sendguard.queue.store import Store, open_configured_store
from sendguard.queue.worker import Prepare, Worker, as_stored
from sendguard.settings import Settings

log = structlog.get_logger(__name__)


def queue_settings(settings: Settings) -> QueueSettings:
    """``settings.queue``, or the defaults when the group is not nested (yet)."""
    value = getattr(settings, "queue", None)
    return value if isinstance(value, QueueSettings) else QueueSettings()


def notify_settings(settings: Settings) -> NotifySettings:
    """``settings.notify``, or the defaults when the group is not nested (yet)."""
    value = getattr(settings, "notify", None)
    return value if isinstance(value, NotifySettings) else NotifySettings()


@dataclass
class QueueRuntime:
    """What one node runs for the queue."""

    store: Store
    worker: Worker
    task: asyncio.Task[None]

    async def stop(self) -> None:
        """Stop the worker (a delivery in flight is taken over later by lease) and close."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.store.close()


async def start_queue(
    settings: Settings,
    upstream: Upstream,
    *,
    prepare: Prepare = as_stored,
    node_id: str | None = None,
) -> QueueRuntime:
    """Open (and migrate) the store and start this node's worker."""
    queue = queue_settings(settings)
    store = await open_configured_store(settings.store, queue)
    notifier = Notifier(upstream, notify_settings(settings), hostname=settings.hostname)
    node = node_id or f"{settings.hostname}:{os.getpid()}"
    worker = Worker(store, upstream, notifier, queue, node_id=node, prepare=prepare)
    task = asyncio.create_task(worker.run(), name=f"queue-worker-{node}")
    log.info("queue_started", store=settings.store.split("@")[-1], node_id=node)
    return QueueRuntime(store=store, worker=worker, task=task)
