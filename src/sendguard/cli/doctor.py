"""`sendguard doctor`: check this deployment as `sendguard serve` would load it.

Reads the same settings (SENDGUARD_CONFIG or /etc/sendguard/sendguard.toml, then SENDGUARD_*)
and prints OK, WARN or FAIL per check with what to fix. Changes nothing: the store is never
created or migrated and no mail is sent. Exit 0 when nothing failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `doctor`."""
    p = sub.add_parser(
        "doctor",
        help="check the deployment's configuration and say what to fix",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds for each network probe (upstream, store; default 10)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run every check and print the report."""
    from sendguard.doctor import diagnose, render_text

    report = asyncio.run(diagnose(deadline=args.timeout))
    if args.json:
        print(json.dumps(report.as_json(), ensure_ascii=False, indent=2))
    else:
        print(render_text(report))
    return 0 if report.ok else 1
