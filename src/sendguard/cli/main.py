"""The `sendguard` command: one sub-command module per concern, each with a `register` function.

Every sub-command module defines ``register(subparsers)``, which adds its parser and sets
``func`` to a callable taking the parsed arguments and returning the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from sendguard import __version__
from sendguard.errors import ConfigError
from sendguard.log import route_logs_to_stderr

# Sub-command modules in the order `sendguard --help` lists them.
COMMANDS = ("serve", "users", "policy", "queue", "audit", "history", "doctor", "backup")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="sendguard",
        description="Outgoing-mail misdelivery guard: an SMTP relay that inspects every message.",
    )
    parser.add_argument("--version", action="version", version=f"sendguard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"sendguard.cli.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; configuration errors are printed without a traceback (exit 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    route_logs_to_stderr()  # stdout is the command's output (`--json`, lists, heads)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"sendguard: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code
