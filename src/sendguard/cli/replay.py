"""`sendguard policy replay NEW_POLICY_DIR --since 7d`: a policy change's effect on past mail.

Reads the audit log (no message content: `sendguard.policy.replay`), re-decides every
verdict since the given time with the new policy and prints how many would change action,
by rule, with transaction ids to look up. Held and delayed mail is rebuilt from its queue
entry while it still exists.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import re
import sys
from pathlib import Path

from sendguard.errors import NotFound, PolicyError, StoreError
from sendguard.policy.replay import Past, details_of, from_facts, replay

_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def since(text: str) -> dt.datetime:
    """``7d``, ``12h``, ``30m`` ago, or an ISO 8601 time."""
    m = _SPAN.match(text.strip())
    if m is not None:
        return dt.datetime.now(dt.UTC) - dt.timedelta(**{_UNITS[m[2]]: float(m[1])})
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a span like 7d / 12h nor an ISO 8601 time"
        ) from exc
    return value if value.tzinfo else value.astimezone()


def register_replay(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `policy replay`."""
    p = actions.add_parser("replay", help="re-decide past traffic with another policy")
    p.add_argument("directory", type=Path, help="the changed policy directory")
    p.add_argument("--since", type=since, default="7d", help="how far back (7d, 24h, ISO time)")
    p.add_argument("--store", help="store URL (default SENDGUARD_STORE / settings)")
    p.add_argument("--examples", type=int, default=3, help="references printed per rule")
    p.add_argument("--json", action="store_true", help="print the JSON report")
    p.set_defaults(func=run_replay)


def run_replay(args: argparse.Namespace) -> int:
    """Replay; exit 1 when the policy or the store cannot be read."""
    from sendguard.policy.load import load_policy

    try:
        policy = load_policy(args.directory)
    except PolicyError as exc:
        print(f"sendguard: policy invalid:\n{exc}", file=sys.stderr)
        return 1
    try:
        past = asyncio.run(_past(args.store, args.since))
    except StoreError as exc:
        print(f"sendguard: {exc}", file=sys.stderr)
        return 1
    report = replay(past, policy, examples=args.examples)
    if args.json:
        print(json.dumps(report.as_json(), ensure_ascii=False, indent=2))
    else:
        when = f"{args.since:%Y-%m-%d %H:%M %Z}"
        print(f"policy {args.directory} (version {policy.version[:12]}) since {when}")
        print("\n".join(report.lines()))
    return 0


async def _past(url: str | None, start: dt.datetime) -> list[Past]:
    from sendguard.cli.queue import open_cli_store

    store = await open_cli_store(url)
    past: list[Past] = []
    try:
        after = 0
        while batch := await store.audit_records(after_seq=after, since=start, limit=1000):
            after = batch[-1].seq
            for record in batch:
                if record.event not in ("verdict", "queued"):
                    continue
                details = details_of(record.details)
                item: Past | None = None
                if record.event == "queued" and record.queue_id:
                    try:
                        entry = await store.get(record.queue_id, with_data=False)
                    except NotFound:
                        entry = None
                    if entry is not None:
                        verdict = entry.verdict
                        item = Past(
                            record.queue_id,
                            entry.envelope,
                            verdict.trace.findings,
                            verdict.action.label,
                            verdict.rule_id,
                        )
                if item is None:
                    reference = record.transaction_id or record.queue_id or f"seq {record.seq}"
                    item = from_facts(reference, details)
                if item is not None:
                    past.append(item)
    finally:
        await store.close()
    return past
