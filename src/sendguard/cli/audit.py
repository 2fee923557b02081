"""`sendguard audit verify|export`: check the hash-chained audit log, or stream it as JSON lines.

``export`` writes one JSON object per record in chain order (``--since`` a time,
``--after-seq`` to resume, ``--follow`` to keep streaming new records as they commit: no
export lag for a SIEM). ``verify`` recomputes every hash and exits 1 at the first break.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys

from sendguard.cli.queue import common_options, with_store
from sendguard.queue.store import AuditRecord, Store


def _since(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time like 2026-11-20 or 2026-11-20T09:00+09:00"
        ) from exc
    return value if value.tzinfo else value.astimezone()  # naive = this machine's local time


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `audit`."""
    p = sub.add_parser("audit", help="verify or export the audit log", description=__doc__)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = [common_options()]
    actions.add_parser("verify", parents=common, help="check the hash chain")
    export = actions.add_parser("export", parents=common, help="JSON lines, oldest first")
    export.add_argument("--since", type=_since, help="only records at or after this time")
    export.add_argument("--after-seq", type=int, default=0, help="resume after this record")
    export.add_argument("--follow", action="store_true", help="keep printing new records")
    export.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Carry out one audit action."""
    action = _verify if args.action == "verify" else _export
    return asyncio.run(with_store(args, action))


async def _verify(store: Store, args: argparse.Namespace) -> int:
    check = await store.verify_audit()
    if check.ok:
        print(f"audit log OK: {check.records} records, chain intact")
        return 0
    print(
        f"sendguard: audit log BROKEN at record {check.bad_seq}: {check.problem}", file=sys.stderr
    )
    return 1


def record_json(record: AuditRecord) -> str:
    """One record as a JSON line (details as an object)."""
    return json.dumps(
        {
            "seq": record.seq,
            "at": record.at.isoformat(),
            "event": record.event,
            "actor": record.actor,
            "queue_id": record.queue_id,
            "transaction_id": record.transaction_id,
            "details": json.loads(record.details),
            "prev_hash": record.prev_hash,
            "hash": record.hash,
        },
        ensure_ascii=False,
    )


async def _export(store: Store, args: argparse.Namespace) -> int:
    after = args.after_seq
    while True:
        batch = await store.audit_records(after_seq=after, since=args.since)
        for record in batch:
            print(record_json(record), flush=True)
        if batch:
            after = batch[-1].seq
            continue
        if not args.follow:
            return 0
        await asyncio.sleep(args.interval)
