"""`sendguard history import|forget|stats|snapshot`: the correspondent history.

import   — bootstrap from mail already sent: an mbox file or Maildir (``--format mailbox``),
           a CSV export (``--format csv``: date, sender, recipients[, message-id, event-id])
           or a Postfix maillog (``--format postfix``). Idempotent: run it again, nothing is
           counted twice. Prints progress on stderr and a summary.
forget   — remove an address (as recipient and as sender): a data subject's request.
stats    — rows per history table.
snapshot — what the history says about one sender and recipients, as JSON for
           ``sendguard policy explain --history FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from sendguard.correspondence import Delivery
from sendguard.errors import PolicyError, StoreError
from sendguard.history.importer import (
    Tally,
    from_message,
    read_csv,
    read_mailbox,
    read_postfix_log,
)
from sendguard.history.store import HistoryStore
from sendguard.model import Organisation

_BATCH = 500


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `history` and its actions."""
    p = sub.add_parser(
        "history",
        help="import, inspect and forget the correspondent history",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", help="store URL (default SENDGUARD_STORE / settings)")
    imp = actions.add_parser("import", parents=[common], help="bootstrap from sent mail")
    imp.add_argument("source", type=Path, help="mbox file, Maildir, CSV file or maillog")
    imp.add_argument(
        "--format", choices=("mailbox", "csv", "postfix"), default="mailbox", dest="fmt"
    )
    imp.add_argument("--policy-dir", type=Path, help="policy directory (internal domains)")
    imp.add_argument(
        "--sender", default="", help="take every message as sent by this address (a user's mbox)"
    )
    imp.set_defaults(func=run_import)
    forget = actions.add_parser("forget", parents=[common], help="remove an address")
    forget.add_argument("address")
    forget.set_defaults(func=run_forget)
    stats = actions.add_parser("stats", parents=[common], help="rows per table")
    stats.set_defaults(func=run_stats)
    snap = actions.add_parser("snapshot", parents=[common], help="JSON for policy explain")
    snap.add_argument("--mail-from", required=True, help="sender (identity) address")
    snap.add_argument("--rcpt", action="append", required=True, help="recipient (repeat)")
    snap.add_argument("--policy-dir", type=Path, help="policy directory (internal domains)")
    snap.set_defaults(func=run_snapshot)


def _url(args: argparse.Namespace) -> str:
    if args.store:
        return str(args.store)
    from sendguard.settings import load_settings

    return load_settings().store


def _secret() -> bytes:
    from sendguard.settings import load_settings

    return load_settings().history.key.encode()


def _organisation(directory: Path | None) -> Organisation:
    from sendguard.policy.load import load_policy

    path = directory or Path(os.environ.get("SENDGUARD_POLICY_DIR", "policies"))
    return load_policy(path).organisation


def _fail(message: object) -> int:
    print(f"sendguard: {message}", file=sys.stderr)
    return 1


def run_import(args: argparse.Namespace) -> int:
    """Import one source; exit 1 when the source or the store cannot be read."""
    try:
        organisation = _organisation(args.policy_dir)
    except PolicyError as exc:
        return _fail(exc)
    if not args.source.exists():
        return _fail(f"{args.source}: no such file or directory")
    secret = _secret()
    items: Iterable[Delivery | str | None]
    if args.fmt == "csv":
        items = read_csv(args.source, organisation, secret)
    elif args.fmt == "postfix":
        items = read_postfix_log(args.source, organisation, secret)
    else:
        items = (
            from_message(raw, organisation, sender=args.sender, secret=secret)
            if raw
            else "unreadable"
            for raw in read_mailbox(args.source)
        )
    try:
        tally = asyncio.run(_import(_url(args), items))
    except (StoreError, ValueError, OSError) as exc:
        return _fail(exc)
    print(
        f"read {tally.read}: recorded {tally.recorded}, already known {tally.repeated}, "
        f"internal only {tally.internal_only}, unreadable {tally.unreadable}"
    )
    return 0


async def _import(url: str, items: Iterable[Delivery | str | None]) -> Tally:
    store = await HistoryStore.open(url)
    tally = Tally()
    try:
        for batch in _batches(items, tally):
            new = await store.record(batch)
            tally.recorded += new
            tally.repeated += len(batch) - new
            print(f"… {tally.read} read, {tally.recorded} recorded", file=sys.stderr)
    finally:
        await store.close()
    return tally


def _batches(items: Iterable[Delivery | str | None], tally: Tally) -> Iterator[list[Delivery]]:
    batch: list[Delivery] = []
    for item in items:
        tally.read += 1
        if item is None:
            tally.internal_only += 1
        elif isinstance(item, str):
            tally.unreadable += 1
        else:
            batch.append(item)
            if len(batch) >= _BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def run_forget(args: argparse.Namespace) -> int:
    """Remove one address; print how many rows went."""

    async def go() -> int:
        store = await HistoryStore.open(_url(args))
        try:
            return await store.forget(args.address)
        finally:
            await store.close()

    try:
        removed = asyncio.run(go())
    except StoreError as exc:
        return _fail(exc)
    print(f"forgot {removed} history rows of that address")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    """Print rows per table."""

    async def go() -> dict[str, int]:
        store = await HistoryStore.open(_url(args))
        try:
            return await store.counts()
        finally:
            await store.close()

    try:
        counts = asyncio.run(go())
    except StoreError as exc:
        return _fail(exc)
    for table, rows in counts.items():
        print(f"{table}: {rows}")
    return 0


def run_snapshot(args: argparse.Namespace) -> int:
    """Print the snapshot for one sender and recipients as JSON."""
    from sendguard.correspondence import Recipient
    from sendguard.history.extract import external

    try:
        organisation = _organisation(args.policy_dir)
    except PolicyError as exc:
        return _fail(exc)
    recipients = [
        Recipient(a.addr_spec.lower(), a.registrable_domain)
        for a in external(args.rcpt, organisation)
    ]

    async def go() -> dict[str, object]:
        store = await HistoryStore.open(_url(args))
        try:
            return (await store.snapshot(args.mail_from, recipients)).to_json()
        finally:
            await store.close()

    try:
        document = asyncio.run(go())
    except StoreError as exc:
        return _fail(exc)
    print(json.dumps(document, ensure_ascii=False, indent=2))
    return 0
