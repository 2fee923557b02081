"""A stand-in relay node for the queue's crash and multi-node tests, run as a subprocess.

It does what `sendguard serve` does for held mail, and nothing else: an SMTP listener
(aiosmtpd, port 0) that holds every message through `Store.enqueue` and answers 250 only
after the commit (text carries the queue id), plus the queue `Worker` delivering released
mail to ``--upstream``. Tests kill it with SIGKILL and start it again.

    python node.py --store URL --upstream smtp://127.0.0.1:PORT --port-file F --node-id A
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP

from sendguard.deliver import SmtpOptions, SmtpUpstream, parse_target
from sendguard.errors import StoreError
from sendguard.model import Envelope
from sendguard.notify.notifier import Notifier
from sendguard.notify.settings import NotifySettings
from sendguard.queue.settings import QueueSettings
from sendguard.queue.store import Store, open_store
from sendguard.queue.testing import sample_verdict
from sendguard.queue.worker import Worker


class HoldHandler:
    """aiosmtpd handler: every message is held; 250 only after the store committed it."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        """Enqueue, then answer with the queue id."""
        try:
            entry = await self.store.enqueue(
                envelope=Envelope(mail_from=envelope.mail_from, rcpt_tos=tuple(envelope.rcpt_tos)),
                data=envelope.original_content,
                verdict=sample_verdict(),
                state="held",
            )
        except StoreError:
            return "451 4.3.0 queue unavailable"
        return f"250 2.0.0 Ok: held as {entry.id}"


async def main(args: argparse.Namespace) -> None:
    """Run the listener and/or the worker until killed."""
    settings = QueueSettings(poll_interval=0.05, claim_lease=args.lease, retry_backoff=(0.5,))
    store = await open_store(args.store, settings=settings)
    tasks = []
    if args.upstream:
        upstream = SmtpUpstream(
            parse_target(args.upstream), SmtpOptions(local_hostname=args.node_id, timeout=60)
        )
        notifier = Notifier(upstream, NotifySettings(from_address="sendguard@corp.example"))
        worker = Worker(store, upstream, notifier, settings, node_id=args.node_id)
        tasks.append(asyncio.create_task(worker.run()))
    port = 0
    if args.port_file:
        loop = asyncio.get_running_loop()
        handler = HoldHandler(store)
        server = await loop.create_server(
            lambda: SMTP(handler, decode_data=False, hostname=args.node_id), "127.0.0.1", 0
        )
        port = server.sockets[0].getsockname()[1]
        await asyncio.to_thread(Path(args.port_file).write_text, str(port))
    await asyncio.gather(*tasks) if tasks else await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--upstream", default="")
    parser.add_argument("--port-file", default="")
    parser.add_argument("--node-id", default="node")
    parser.add_argument("--lease", type=float, default=900.0)
    asyncio.run(main(parser.parse_args()))
