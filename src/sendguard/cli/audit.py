"""`sendguard audit verify|export|head`: check the keyed hash chain, stream it, or print its head.

``export`` writes one JSON object per record in chain order (``--since`` a time,
``--after-seq`` to resume, ``--follow`` to keep streaming new records as they commit: no
export lag for a SIEM). ``verify`` recomputes every hash (HMAC with the audit key,
``SENDGUARD_AUDIT_KEY``) and exits 1 at the first break; ``--head`` / ``--head-file`` also
require heads exported earlier (``audit head``, the relay's ``audit_head`` log events or its
anchor file) to be in the chain, so records cut off at the end or a re-chained log are
detected. A missing or wrong audit key exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from pathlib import Path

from sendguard.cli.queue import common_options, with_store
from sendguard.errors import ConfigError
from sendguard.queue.auditkey import head_json, parse_head
from sendguard.queue.store import AuditHead, AuditRecord, Store


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
    verify = actions.add_parser("verify", parents=common, help="check the hash chain")
    verify.add_argument(
        "--head",
        action="append",
        default=[],
        metavar="HASH",
        help="an exported head (HASH, SEQ:HASH or the JSON line) that must be in the chain",
    )
    verify.add_argument(
        "--head-file", action="append", default=[], type=Path, help="an anchor file to check"
    )
    actions.add_parser("head", parents=common, help="print the newest record's seq and hash")
    export = actions.add_parser("export", parents=common, help="JSON lines, oldest first")
    export.add_argument("--since", type=_since, help="only records at or after this time")
    export.add_argument("--after-seq", type=int, default=0, help="resume after this record")
    export.add_argument("--follow", action="store_true", help="keep printing new records")
    export.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Carry out one audit action."""
    actions = {"verify": _verify, "export": _export, "head": _head}
    return asyncio.run(with_store(args, actions[args.action]))


def _heads(args: argparse.Namespace) -> list[AuditHead]:
    heads = [parse_head(text) for text in args.head]
    for path in args.head_file:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read anchor file {path}: {exc.strerror}") from exc
        heads += [parse_head(line) for line in lines if line.strip()]
    return heads


async def _verify(store: Store, args: argparse.Namespace) -> int:
    check = await store.verify_audit(_heads(args))
    if check.ok:
        print(f"audit log OK: {check.records} records, chain intact")
        if check.keyed_from is not None:
            legacy = check.keyed_from - 1
            print(f"keyed (HMAC) from record {check.keyed_from}", end="")
            print(f"; records 1-{legacy} are legacy, unkeyed" if legacy else "")
        elif check.records:
            print(
                "note: no record is keyed (HMAC): whoever can write the database could rewrite"
                " this chain unnoticed",
                file=sys.stderr,
            )
        if check.anchors:
            print(f"{check.anchors} anchored head(s) found in the chain")
        return 0
    print(
        f"sendguard: audit log BROKEN at record {check.bad_seq}: {check.problem}", file=sys.stderr
    )
    return 1


async def _head(store: Store, args: argparse.Namespace) -> int:
    head = await store.audit_head()
    if head is None:
        print("sendguard: the audit log is empty", file=sys.stderr)
        return 1
    print(head_json(head))
    return 0


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
            "v": record.v,
            "key_id": record.key_id,
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
