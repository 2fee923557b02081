"""`sendguard users add|remove|list`: the local users file for ``auth_mode=local``."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from sendguard.intake.auth import UsersFile
from sendguard.settings import load_settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `users`."""
    p = sub.add_parser("users", help="manage local SMTP AUTH users", description=__doc__)
    p.add_argument(
        "--file", type=Path, help="users file (SENDGUARD_USERS_FILE, default ./var/users)"
    )
    actions = p.add_subparsers(dest="action", required=True)
    add = actions.add_parser(
        "add", help="add or change a user (password asked, or read from stdin)"
    )
    add.add_argument("name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    rm = actions.add_parser("remove", help="remove a user")
    rm.add_argument("name")
    actions.add_parser("list", help="list user names")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Carry out one users action."""
    users = UsersFile(args.file or load_settings().users_file)
    if args.action == "list":
        for name in users.names():
            print(name)
        return 0
    if args.action == "remove":
        if not users.remove(args.name):
            print(f"sendguard: no user {args.name!r}", file=sys.stderr)
            return 1
        return 0
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            print("sendguard: passwords differ", file=sys.stderr)
            return 1
    users.add(args.name, password)
    print(f"user {args.name} saved in {users.path}")
    return 0
