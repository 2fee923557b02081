"""`sendguard queue list|show|release|reject|cancel|delete|purge|recover`: reviewers' CLI.

A thin shell over `sendguard.review.service.ReviewService`: every decision is checked and
audited there. Who acts is the operating-system account running the command (the account
behind ``sudo``), mapped to a person by the policy's ``[people]`` table
(`sendguard.review.actor`); ``--actor NAME`` only records whom an admin acts for. Settings
are found as ``serve`` finds them (``SENDGUARD_CONFIG``, else /etc/sendguard/sendguard.toml),
and a store that does not exist is refused, never created. ``release ALL`` and ``purge`` show
what they will do and ask first (``--yes`` for scripts). Exit status: 0 done, 1 refused or
not found, 2 bad settings, policy or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import re
import sys
from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

from sendguard.entry import STATES, Entry
from sendguard.errors import ConfigError, PolicyError, ReviewError, StoreError
from sendguard.model import Finding
from sendguard.notify.render import shown_time
from sendguard.policy.load import load_policy
from sendguard.queue.auditkey import key_path, read_key
from sendguard.queue.backends import open_configured_store
from sendguard.queue.existing import require_existing
from sendguard.queue.store import CorruptEntry, Store
from sendguard.review.actor import Actor, os_actor
from sendguard.review.details import EntryDetails
from sendguard.review.service import ALL, ReleaseResult, ReviewService
from sendguard.settings import Settings, load_settings

_FULL = "%Y-%m-%d %H:%M:%S %Z"
"""How `queue show` writes a time (in the display zone, ``notify.timezone``)."""

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> dt.timedelta:
    """``90s``, ``30m``, ``12h``, ``30d``, ``2w`` → a timedelta."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30d, 12h, 90m or 45s")
    return dt.timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def common_options() -> argparse.ArgumentParser:
    """``--store``, shared by the queue and audit commands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--store", help="store URL (default: SENDGUARD_STORE / the settings file, as serve)"
    )
    return common


def actor_options() -> argparse.ArgumentParser:
    """``--actor``, for the commands that decide (admins only)."""
    opts = argparse.ArgumentParser(add_help=False)
    opts.add_argument(
        "--actor",
        default=None,
        metavar="NAME",
        help="admins only: record that you act for NAME (the audit names both); everyone "
        "else acts as the account running the command",
    )
    return opts


def _yes_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--yes", action="store_true", help=f"{what} without asking (scripts)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `queue` and its actions."""
    p = sub.add_parser("queue", help="review held and delayed mail", description=__doc__)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = [common_options()]
    deciding = [common_options(), actor_options()]
    ls = actions.add_parser("list", parents=common, help="list queued mail (oldest first)")
    ls.add_argument("--state", choices=STATES, help="only entries in this state")
    ls.add_argument("--json", action="store_true", help="JSON lines, one entry per line")
    ls.add_argument("--limit", type=int, default=None, help="at most this many entries")
    show = actions.add_parser("show", parents=common, help="envelope, headers, findings, files")
    show.add_argument("id")
    show.add_argument("--json", action="store_true", help="one JSON object")
    rel = actions.add_parser("release", parents=deciding, help="release (approve) held mail")
    rel.add_argument("ids", nargs="+", metavar="ID", help="queue ids, or the literal ALL")
    _yes_option(rel, "release ALL")
    rej = actions.add_parser("reject", parents=deciding, help="reject held mail (sender is told)")
    rej.add_argument("id")
    rej.add_argument("--reason", required=True, help="why; sent to the sender")
    can = actions.add_parser("cancel", parents=deciding, help="cancel your own delayed mail")
    can.add_argument("id")
    dele = actions.add_parser(
        "delete", parents=deciding, help="delete an entry (admins; no notice)"
    )
    dele.add_argument("id")
    purge = actions.add_parser(
        "purge", parents=deciding, help="remove old finished entries (admins)"
    )
    purge.add_argument("--older-than", type=parse_duration, required=True, metavar="DURATION")
    _yes_option(purge, "purge")
    rec = actions.add_parser(
        "recover", parents=deciding, help="put a corrupt entry back once it reads again (admins)"
    )
    rec.add_argument("id")
    p.set_defaults(func=run)


async def open_cli_store(url: str | None, settings: Settings | None = None) -> Store:
    """The store named by ``--store`` or the settings, with the configured keys and calendar.

    Never creates one: a missing SQLite file or an unmigrated PostgreSQL schema is refused
    with where it looked (only ``serve`` creates the store). The audit key is only read here
    (`serve` creates it): without it, a command can extend only a log that has no keyed
    record yet, and `audit verify` says the key is needed.
    """
    settings = settings or load_settings()
    store_url = url or settings.store
    await require_existing(store_url)
    key_file = key_path(store_url, settings.audit_key)
    audit_key = read_key(key_file) if settings.audit_key or key_file.exists() else None
    return await open_configured_store(store_url, settings.queue, audit_key=audit_key)


def cli_actor(settings: Settings, name: str | None) -> Actor:
    """The verified actor running this command, from the OS account and the policy's
    ``[people]``; ``--actor`` NAME only for admins. A policy that does not load is a
    `ConfigError` (exit 2)."""
    try:
        people = load_policy(settings.policy_dir).people
    except PolicyError as exc:
        raise ConfigError(
            f"cannot read who may review: the policy in {settings.policy_dir.absolute()} does "
            f"not load ({exc}); set SENDGUARD_POLICY_DIR or SENDGUARD_CONFIG as for serve"
        ) from exc
    return os_actor(people).acting_for(name)


def run(args: argparse.Namespace) -> int:
    """Carry out one queue action."""
    return asyncio.run(with_store(args, _ACTIONS[args.action]))


async def with_store(
    args: argparse.Namespace, action: Callable[[Store, argparse.Namespace], Awaitable[int]]
) -> int:
    """Load settings (and, for a decision, the verified actor), open the store, run `action`,
    close; refusals and store errors exit 1 with a message, bad settings raise (exit 2)."""
    args.settings = load_settings()
    try:
        if "actor" in vars(args):
            args.who = cli_actor(args.settings, args.actor)
        store = await open_cli_store(args.store, args.settings)
    except (ReviewError, StoreError) as exc:
        return _fail(exc)
    try:
        return await action(store, args)
    except (ReviewError, StoreError) as exc:
        return _fail(exc)
    finally:
        await store.close()


def _service(store: Store, args: argparse.Namespace) -> ReviewService:
    return ReviewService(store, default_reviewers=args.settings.notify.reviewers)


def confirm(question: str, *, yes: bool) -> bool:
    """Ask `question` (y/N) on a terminal; `yes` skips asking. Without a terminal and
    without `yes` this refuses (`ReviewError`) instead of guessing."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise ReviewError(f"{question} — not confirmed: there is no terminal to ask on; add --yes")
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


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
    entries = await _service(store, args).list(state=args.state, limit=args.limit)
    for entry in entries:
        if args.json:
            print(json.dumps(entry_json(entry), ensure_ascii=False))
        else:
            print(_summary_line(entry, ZoneInfo(args.settings.notify.timezone)))
    if not args.json and not entries:
        print("queue is empty" if not args.state else f"no {args.state} entries")
    return 0


def _summary_line(entry: Entry, zone: ZoneInfo) -> str:
    when = shown_time(entry.created_at, zone)
    rcpts = len(entry.envelope.rcpt_tos)
    return (
        f"{entry.id}  {entry.state:<10} {when}  {entry.envelope.mail_from or '<>'} "
        f"→ {rcpts} rcpt  rule={entry.verdict.rule_id or '-'}  {entry.size} bytes"
    )


async def _show(store: Store, args: argparse.Namespace) -> int:
    try:
        details = await _service(store, args).show(args.id)
    except CorruptEntry as exc:
        if exc.stand_in is None:
            raise
        return _show_corrupt(exc.stand_in, args)
    if args.json:
        print(json.dumps(_details_json(details), ensure_ascii=False, indent=2))
    else:
        print("\n".join(_details_lines(details, ZoneInfo(args.settings.notify.timezone))))
    return 0


def _show_corrupt(entry: Entry, args: argparse.Namespace) -> int:
    """What can be shown of a row that cannot be decoded, and what to do about it."""
    if args.json:
        print(json.dumps(entry_json(entry), ensure_ascii=False, indent=2))
        return 0
    was = entry.quarantined_from or "?"
    print("\n".join([
        f"Queue id:   {entry.id}",
        f"State:      corrupt (stored as {was})",
        f"Problem:    {entry.reason}",
        f"MAIL FROM:  <{entry.envelope.mail_from}>  rule={entry.verdict.rule_id or '-'}  "
        f"{entry.size} bytes",
        "Fix the cause (e.g. the encryption key), then: sendguard queue recover ID; "
        "or remove it: sendguard queue delete ID",
    ]))  # fmt: skip
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


def _details_lines(details: EntryDetails, zone: ZoneInfo) -> list[str]:
    e, env = details.entry, details.entry.envelope
    hold = e.verdict.hold
    lines = [
        f"Queue id:   {e.id}",
        f"State:      {e.state}  (approvals {len(e.approvals)}/{hold.approvals_required}"
        f"{': ' + ', '.join(e.approvals) if e.approvals else ''})",
        f"Created:    {shown_time(e.created_at, zone, _FULL)}",
    ]
    for label, value in (("Release at", e.release_at), ("Expires at", e.expires_at)):
        if value:
            lines.append(f"{label}: {shown_time(value, zone, _FULL)}")
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
    if e.state == "corrupt":
        lines.append(f"Corrupt:    {e.reason} (was {e.quarantined_from or '?'})")
    return lines


def _finding_lines(finding: Finding) -> str:
    lines = [f"  - [{finding.detector}/{finding.code}] {finding.render()} (x{finding.count})"]
    if finding.where:
        lines.append(f"      where:    {'; '.join(finding.where)}")
    if finding.evidence:
        lines.append(f"      evidence: {', '.join(finding.evidence)}")
    return "\n".join(lines)


def _plan_line(entry: Entry, planned: ReleaseResult) -> str:
    line = (
        f"  {entry.id}  {entry.envelope.mail_from or '<>'}  rule={entry.verdict.rule_id or '-'}"
        f"  {len(entry.envelope.rcpt_tos)} rcpt  → "
    )
    if planned.entry is None:
        return line + f"skipped: {planned.error}"
    if planned.outcome == "released":
        return line + "released"
    have, need = len(planned.entry.approvals), planned.entry.verdict.hold.approvals_required
    return line + f"approved ({have}/{need} approvals)"


async def _release(store: Store, args: argparse.Namespace) -> int:
    service, actor = _service(store, args), args.who
    ids: list[str] = args.ids
    skipped = 0
    if ids == [ALL]:
        held = await service.list(state="held")
        if not held:
            print("no held entries")
            return 0
        plan = service.plan_release(held, actor)
        print(f"release ALL as {actor.name}: {len(held)} held message(s)")
        print("\n".join(_plan_line(e, p) for e, p in zip(held, plan, strict=True)))
        ids = [p.queue_id for p in plan if p.entry is not None]
        skipped = len(plan) - len(ids)
        if not ids:
            print(f"sendguard: none of them may be released by {actor.login}", file=sys.stderr)
            return 1
        if not confirm(f"Release (or approve) these {len(ids)} message(s)?", yes=args.yes):
            print("nothing released", file=sys.stderr)
            return 1
        # Exactly what was shown, not whatever was held since; each is decided again.
    results = await service.release(ids, actor)
    for result in results:
        if result.entry is None:
            print(f"sendguard: {result.error}", file=sys.stderr)  # the error names the id
        elif result.outcome == "released":
            print(f"{result.queue_id}: released by {actor.name}")
        else:
            have, need = len(result.entry.approvals), result.entry.verdict.hold.approvals_required
            print(f"{result.queue_id}: approved by {actor.name} ({have}/{need} approvals)")
    return 1 if skipped or any(r.entry is None for r in results) else 0


async def _reject(store: Store, args: argparse.Namespace) -> int:
    entry = await _service(store, args).reject(args.id, args.who, args.reason)
    print(f"{entry.id}: rejected by {args.who.name}")
    return 0


async def _cancel(store: Store, args: argparse.Namespace) -> int:
    entry = await _service(store, args).cancel(args.id, args.who)
    print(f"{entry.id}: cancelled; it will not be sent")
    return 0


async def _delete(store: Store, args: argparse.Namespace) -> int:
    await _service(store, args).delete(args.id, args.who)
    print(f"{args.id}: deleted")
    return 0


async def _purge(store: Store, args: argparse.Namespace) -> int:
    service = _service(store, args)
    before = service.purge_cutoff(args.older_than)
    doomed = await service.purgeable(before, args.who)
    if not doomed:
        print("nothing to purge")
        return 0
    states: dict[str, int] = {}
    for entry in doomed:
        states[entry.state] = states.get(entry.state, 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    print(f"purge would remove {len(doomed)} finished entries ({summary}) last changed before "
          f"{before.astimezone():%Y-%m-%d %H:%M:%S %Z}")  # fmt: skip
    if not confirm(f"Remove these {len(doomed)} entries for good?", yes=args.yes):
        print("nothing purged", file=sys.stderr)
        return 1
    count = await service.purge(before, args.who)
    print(f"purged {count} finished entries")
    return 0


async def _recover(store: Store, args: argparse.Namespace) -> int:
    entry = await _service(store, args).recover(args.id, args.who)
    print(f"{entry.id}: recovered to {entry.state} by {args.who.name}")
    return 0


_ACTIONS: dict[str, Callable[[Store, argparse.Namespace], Awaitable[int]]] = {
    "list": _list,
    "show": _show,
    "release": _release,
    "reject": _reject,
    "cancel": _cancel,
    "delete": _delete,
    "purge": _purge,
    "recover": _recover,
}
