"""`sendguard policy check|explain|test`: validate, explain and test a policy directory.

check   — load the directory exactly as the relay would; exit 1 on any error.
explain — run the real parser, detectors and policy on one message without sending it;
          print every finding (masked) and rule, hit or miss, and the decision (exit 0).
test    — run the cases in DIR/tests/*.toml; exit 1 if any case fails.
replay  — re-decide past traffic (from the audit log) with another policy directory and
          print how many messages would change action, by rule, with references.

explain and test read the relay's own settings (SENDGUARD_* and the SENDGUARD_CONFIG file,
like `sendguard serve`): the same parsing limits, network timeout and policy directory, so
they decide exactly as the relay does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sendguard.errors import PolicyError, SendguardError
from sendguard.model import Envelope
from sendguard.policy.load import LoadedPolicy, load_policy

if TYPE_CHECKING:
    from sendguard.settings import Settings


def _relay_settings() -> Settings:
    """The settings `sendguard serve` would run with (ConfigError, exit 2, if invalid)."""
    from sendguard.settings import load_settings

    return load_settings()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `policy` with its sub-commands."""
    p = sub.add_parser(
        "policy",
        help="check, explain and test policy files",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="validate a policy directory")
    check.add_argument(
        "directory",
        nargs="?",
        type=Path,
        help="policy directory (default: the relay's policy_dir setting, ./policies)",
    )
    check.set_defaults(func=run_check)
    explain = actions.add_parser("explain", help="explain what the policy does with a message")
    explain.add_argument("message", type=Path, help="message file (.eml)")
    explain.add_argument("--mail-from", required=True, help="envelope sender")
    explain.add_argument(
        "--rcpt", action="append", required=True, help="envelope recipient (repeat)"
    )
    explain.add_argument(
        "--auth-user",
        metavar="LOGIN",
        help="the client authenticated as LOGIN: sender groups use its own address ([people])",
    )
    explain.add_argument(
        "--client", metavar="IP", default="", help="client IP address (for rules' clients)"
    )
    explain.add_argument("--json", action="store_true", help="print the JSON report")
    explain.add_argument(
        "--policy-dir", type=Path, help="policy directory (default: the relay's policy_dir)"
    )
    explain.add_argument("--offline", action="store_true", help="skip network (DNS) detectors")
    explain.add_argument(
        "--history",
        type=Path,
        metavar="FILE",
        help="correspondent history snapshot (JSON from `sendguard history snapshot`)",
    )
    explain.set_defaults(func=run_explain)
    from sendguard.cli.replay import register_replay

    register_replay(actions)
    test = actions.add_parser("test", help="run the policy test cases in DIR/tests/*.toml")
    test.add_argument(
        "directory", nargs="?", type=Path, help="policy directory (default: the relay's)"
    )
    test.add_argument("--online", action="store_true", help="also run network (DNS) detectors")
    test.set_defaults(func=run_test)


def _load(directory: Path | None) -> LoadedPolicy:
    return load_policy(directory or _relay_settings().policy_dir)


def run_check(args: argparse.Namespace) -> int:
    """Validate; print a summary, or the errors on stderr (exit 1)."""
    from sendguard.policy.holder import load_settled

    try:
        # As the relay reads it: a file still being written is waited for, then refused.
        loaded = load_settled(args.directory or _relay_settings().policy_dir)
    except PolicyError as exc:
        print(f"sendguard: policy invalid:\n{exc}", file=sys.stderr)
        return 1
    rules = loaded.policy.rules
    count = f"{len(loaded.files)} file(s), {len(rules)} rule(s)"
    print(f"policy OK: {count}, version {loaded.version[:16]}")
    for rule in rules:
        flags = "" if rule.enabled else " (disabled)"
        flags += " (warn mode)" if rule.mode == "warn" else ""
        print(f"  {rule.id}: {rule.action}{flags}")
    return 0


def run_explain(args: argparse.Namespace) -> int:
    """Inspect one message without sending it and print the explanation."""
    from sendguard.inspect import inspect_sync
    from sendguard.usecases.cases import smtp_bytes
    from sendguard.usecases.explain import render_text, report, rewrite_preview

    settings = _relay_settings()
    loaded = load_policy(args.policy_dir or settings.policy_dir)
    try:
        data = smtp_bytes(args.message.read_bytes())
    except OSError as exc:
        print(f"sendguard: cannot read {args.message}: {exc.strerror}", file=sys.stderr)
        return 2
    envelope = loaded.people.bind(
        Envelope(
            mail_from=args.mail_from,
            rcpt_tos=tuple(args.rcpt),
            client_address=args.client,
            auth_user=args.auth_user,
        )
    )
    history = None
    if args.history is not None:
        from sendguard.correspondence import HistorySnapshot

        try:
            history = HistorySnapshot.from_json(json.loads(args.history.read_text("utf-8")))
        except (OSError, ValueError) as exc:
            print(f"sendguard: cannot read history {args.history}: {exc}", file=sys.stderr)
            return 2
    try:
        inspection = inspect_sync(
            envelope,
            data,
            loaded,
            settings.limits,
            offline=args.offline,
            network_timeout=settings.network_timeout,
            history=history,
        )
    except SendguardError as exc:
        print(
            f"sendguard: inspection failed (the relay would not pass this message): {exc}",
            file=sys.stderr,
        )
        return 1
    if history is None:
        from dataclasses import replace

        from sendguard.detect.registry import build

        built = build(loaded.detector_settings, enabled=loaded.enabled_detectors()).history
        if built:
            skipped = ", ".join(d.id for d in built)
            note = f"no correspondent history given (--history): not run ({skipped})"
            inspection = replace(inspection, notes=(*inspection.notes, note))
    if args.json:
        document = report(inspection, envelope, loaded.people).model_dump(mode="json")
        print(json.dumps(document, ensure_ascii=False, indent=2))
    else:
        print(render_text(inspection, envelope, loaded.enabled_detectors(), loaded.people))
        for line in rewrite_preview(data, inspection, envelope, loaded.organisation):
            print(line)
    return 0


def run_test(args: argparse.Namespace) -> int:
    """Run every case; print one line per case and a summary; exit 1 on any failure."""
    from sendguard.usecases.cases import load_cases, run_case

    settings = _relay_settings()
    directory = args.directory or settings.policy_dir
    try:
        loaded = _load(directory)
        cases = load_cases(directory / "tests")
    except PolicyError as exc:
        print(f"sendguard: {exc}", file=sys.stderr)
        return 1
    if not cases:
        print(f"sendguard: no test cases in {directory / 'tests'}/*.toml", file=sys.stderr)
        return 1
    failed = 0
    notes: set[str] = set()
    for path, case in cases:
        result = run_case(
            path,
            case,
            loaded,
            offline=not args.online,
            limits=settings.limits,
            network_timeout=settings.network_timeout,
        )
        notes.update(result.notes)
        want = case.expect + (f" ({case.rule})" if case.rule else "")
        if result.ok:
            print(f"PASS  {path.name}: {case.name}: {result.got}")
        else:
            failed += 1
            print(f"FAIL  {path.name}: {case.name}: expected {want}, got {result.got}")
    for note in sorted(notes):
        print(f"note: {note}")
    print(f"{len(cases) - failed} passed, {failed} failed")
    return 1 if failed else 0
