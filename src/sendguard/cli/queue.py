"""`sendguard queue list|show|release|reject|cancel|delete|purge`: reviewers' and senders' CLI.

A thin shell over `sendguard.review.service.ReviewService`: every decision is checked and
audited there. The acting person (``--actor``, default ``$SUDO_USER`` or ``$USER``) is
recorded with each decision. Exit status: 0 done, 1 refused or not found, 2 bad settings.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from sendguard.errors import ReviewError, StoreError
from sendguard.model import Finding
from sendguard.queue.auditkey import key_path, read_key
from sendguard.queue.settings import QueueSettings
from sendguard.queue.store import STATES, Entry, Store, open_configured_store
from sendguard.review.details import EntryDetails
from sendguard.review.service import ALL, ReviewService
from sendguard.settings import load_settings

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def default_actor() -> str:
    """Who is acting: the user behind sudo, else the login name."""
    return os.environ.get("SUDO_USER") or os.environ.get("USER") or getpass.getuser()


def parse_duration(text: str) -> dt.timedelta:
    """``90s``, ``30m``, ``12h``, ``30d``, ``2w`` → a timedelta."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30d, 12h, 90m or 45s")
    return dt.timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def common_options() -> argparse.ArgumentParser:
    """``--store`` and ``--actor``, shared by the queue and audit commands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", help="store URL (default SENDGUARD_STORE / settings)")
    common.add_argument(
        "--actor", default=None, help="who is acting, recorded in the audit log ($SUDO_USER/$USER)"
    )
    return common


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `queue` and its actions."""
    p = sub.add_parser("queue", help="review held and delayed mail", description=__doc__)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = [common_options()]
    ls = actions.add_parser("list", parents=common, help="list queued mail (oldest first)")
    ls.add_argument("--state", choices=STATES, help="only entries in this state")
    ls.add_argument("--json", action="store_true", help="JSON lines, one entry per line")
    ls.add_argument("--limit", type=int, default=None, help="at most this many entries")
    show = actions.add_parser("show", parents=common, help="envelope, headers, findings, files")
    show.add_argument("id")
    show.add_argument("--json", action="store_true", help="one JSON object")
    rel = actions.add_parser("release", parents=common, help="release (approve) held mail")
    rel.add_argument("ids", nargs="+", metavar="ID", help="queue ids, or the literal ALL")
    rej = actions.add_parser("reject", parents=common, help="reject held mail (sender is told)")
    rej.add_argument("id")
    rej.add_argument("--reason", required=True, help="why; sent to the sender")
    can = actions.add_parser("cancel", parents=common, help="cancel your own delayed mail")
    can.add_argument("id")
    dele = actions.add_parser("delete", parents=common, help="delete an entry (no notice)")
    dele.add_argument("id")
    purge = actions.add_parser("purge", parents=common, help="remove old finished entries")
    purge.add_argument("--older-than", type=parse_duration, required=True, metavar="DURATION")
    p.set_defaults(func=run)


def open_cli_store(url: str | None) -> Awaitable[Store]:
    """The store named by ``--store`` or the settings, with the configured keys and calendar.

    The audit key is only read here (`serve` creates it): without it, a command can extend
    only a log that has no keyed record yet, and `audit verify` says the key is needed.
    """
    settings = load_settings()
    queue = getattr(settings, "queue", None)
    queue_settings = queue if isinstance(queue, QueueSettings) else QueueSettings()
    store_url = url or settings.store
    key_file = key_path(store_url, settings.audit_key)
    audit_key = read_key(key_file) if settings.audit_key or key_file.exists() else None
    return open_configured_store(store_url, queue_settings, audit_key=audit_key)


def run(args: argparse.Namespace) -> int:
    """Carry out one queue action."""
    return asyncio.run(with_store(args, _ACTIONS[args.action]))


async def with_store(
    args: argparse.Namespace, action: Callable[[Store, argparse.Namespace], Awaitable[int]]
) -> int:
    """Open the store, run `action`, close; refusals and store errors exit 1 with a message."""
    args.actor = args.actor or default_actor()
    try:
        store = await open_cli_store(args.store)
    except StoreError as exc:
        return _fail(exc)
    try:
        return await action(store, args)
    except (ReviewError, StoreError) as exc:
        return _fail(exc)
    finally:
        await store.close()


def _fail(exc: Exception) -> int:
    print(f"sendguard: {exc}", file=sys.stderr)
    return 1


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def entry_json(entry: Entry) -> dict[str, Any]:
    """The stable JSON form of an entry in ``list --json`` (no message bytes)."""
    env = entry.envelope
    return {
        "id": entry.id, "state": entry.state, "created_at": _time(entry.created_at),
        "updated_at": _time(entry.updated_at), "mail_from": env.mail_from,
        "rcpt_tos": list(env.rcpt_tos), "auth_user": env.auth_user,
        "client_address": env.client_address, "transaction_id": env.transaction_id,
        "action": entry.verdict.action.label, "rule_id": entry.verdict.rule_id,
        "reason": entry.verdict.reason, "size": entry.size,
        "release_at": _time(entry.release_at), "expires_at": _time(entry.expires_at),
        "attempts": entry.attempts, "next_attempt_at": _time(entry.next_attempt_at),
        "last_error": entry.last_error, "approvals": list(entry.approvals),
        "approvals_required": entry.verdict.hold.approvals_required,
        "decided_by": entry.decided_by, "decision_reason": entry.reason,
    }  # fmt: skip


async def _list(store: Store, args: argparse.Namespace) -> int:
    entries = await ReviewService(store).list(state=args.state, limit=args.limit)
    for entry in entries:
        if args.json:
            print(json.dumps(entry_json(entry), ensure_ascii=False))
        else:
            print(_summary_line(entry))
    if not args.json and not entries:
        print("queue is empty" if not args.state else f"no {args.state} entries")
    return 0


def _summary_line(entry: Entry) -> str:
    when = entry.created_at.astimezone().strftime("%Y-%m-%d %H:%M")
    rcpts = len(entry.envelope.rcpt_tos)
    return (
        f"{entry.id}  {entry.state:<10} {when}  {entry.envelope.mail_from or '<>'} "
        f"→ {rcpts} rcpt  rule={entry.verdict.rule_id or '-'}  {entry.size} bytes"
    )


async def _show(store: Store, args: argparse.Namespace) -> int:
    details = await ReviewService(store).show(args.id)
    if args.json:
        print(json.dumps(_details_json(details), ensure_ascii=False, indent=2))
    else:
        print("\n".join(_details_lines(details)))
    return 0


def _details_json(details: EntryDetails) -> dict[str, Any]:
    return {
        **entry_json(details.entry),
        "headers": [[name, value] for name, value in details.headers],
        "attachments": [
            {"filename": a.filename, "content_type": a.content_type, "size": a.size}
            for a in details.attachments
        ],
        "findings": [
            {
                "detector": f.detector,
                "code": f.code,
                "message": f.render(),
                "count": f.count,
                "severity": f.severity,
                "evidence": list(f.evidence),
                "where": list(f.where),
            }
            for f in details.findings
        ],
        "rules": [
            {
                "rule_id": r.rule_id,
                "action": r.action.label,
                "mode": r.mode,
                "reasons": list(r.reasons),
            }
            for r in details.rules
        ],
    }


def _details_lines(details: EntryDetails) -> list[str]:
    e, env = details.entry, details.entry.envelope
    hold = e.verdict.hold
    lines = [
        f"Queue id:   {e.id}",
        f"State:      {e.state}  (approvals {len(e.approvals)}/{hold.approvals_required}"
        f"{': ' + ', '.join(e.approvals) if e.approvals else ''})",
        f"Created:    {e.created_at.astimezone():%Y-%m-%d %H:%M:%S %Z}",
    ]
    for label, value in (("Release at", e.release_at), ("Expires at", e.expires_at)):
        if value:
            lines.append(f"{label}: {value.astimezone():%Y-%m-%d %H:%M:%S %Z}")
    lines += [
        f"Rule:       {e.verdict.rule_id or '-'} ({e.verdict.action.label}): {e.verdict.reason}",
        f"Reviewers:  {', '.join(hold.reviewers) or '-'}   self-release: "
        f"{'yes' if hold.self_release else 'no'}",
        f"MAIL FROM:  <{env.mail_from}>  auth={env.auth_user or '-'}  client={env.client_address}",
        *(f"RCPT TO:    <{r}>" for r in env.rcpt_tos),
        "Headers:",
        *(f"  {name}: {value}" for name, value in details.headers),
        "Findings (evidence masked):",
        *(_finding_lines(f) for f in details.findings),
        "Rules matched:",
        *(f"  - {r.rule_id} ({r.action.label}, {r.mode}): {'; '.join(r.reasons)}"
          for r in details.rules),
        "Attachments:",
        *(f"  - {a.filename} ({a.content_type}, {a.size} bytes)" for a in details.attachments),
    ]  # fmt: skip
    if e.last_error:
        lines.append(f"Last error: {e.last_error} (attempts {e.attempts})")
    return lines


def _finding_lines(finding: Finding) -> str:
    lines = [f"  - [{finding.detector}/{finding.code}] {finding.render()} (x{finding.count})"]
    if finding.where:
        lines.append(f"      where:    {'; '.join(finding.where)}")
    if finding.evidence:
        lines.append(f"      evidence: {', '.join(finding.evidence)}")
    return "\n".join(lines)


async def _release(store: Store, args: argparse.Namespace) -> int:
    ids = ALL if args.ids == [ALL] else args.ids
    results = await ReviewService(store).release(ids, args.actor)
    for result in results:
        if result.entry is None:
            print(f"sendguard: {result.error}", file=sys.stderr)  # the error names the id
        elif result.outcome == "released":
            print(f"{result.queue_id}: released by {args.actor}")
        else:
            have, need = len(result.entry.approvals), result.entry.verdict.hold.approvals_required
            print(f"{result.queue_id}: approved by {args.actor} ({have}/{need} approvals)")
    if ids == ALL and not results:
        print("no held entries")
    return 1 if any(r.entry is None for r in results) else 0


async def _reject(store: Store, args: argparse.Namespace) -> int:
    entry = await ReviewService(store).reject(args.id, args.actor, args.reason)
    print(f"{entry.id}: rejected by {args.actor}")
    return 0


async def _cancel(store: Store, args: argparse.Namespace) -> int:
    entry = await ReviewService(store).cancel(args.id, args.actor)
    print(f"{entry.id}: cancelled; it will not be sent")
    return 0


async def _delete(store: Store, args: argparse.Namespace) -> int:
    await ReviewService(store).delete(args.id, args.actor)
    print(f"{args.id}: deleted")
    return 0


async def _purge(store: Store, args: argparse.Namespace) -> int:
    count = await ReviewService(store).purge(args.older_than, args.actor)
    print(f"purged {count} finished entries")
    return 0


_ACTIONS: dict[str, Callable[[Store, argparse.Namespace], Awaitable[int]]] = {
    "list": _list,
    "show": _show,
    "release": _release,
    "reject": _reject,
    "cancel": _cancel,
    "delete": _delete,
    "purge": _purge,
}
