"""Helpers for tests of the review stage (test-only, like `tests.support.store`).

Builds verified `Actor` values without an operating system or a policy directory. Nothing
here is used by the running relay or the CLI.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from sendguard.policy.people import Person, Role
from sendguard.review.actor import Actor, Verification


def actor(
    login: str,
    *addresses: str,
    role: Role = "reviewer",
    listed: bool = True,
    verified_by: Verification = "os",
    superuser: bool = False,
) -> Actor:
    """An actor for `login` listed in ``[people]`` with `addresses` and `role`
    (``listed=False``: an unlisted login, role ``sender``)."""
    person = Person(
        login=login.casefold(),
        addresses=tuple(a.casefold() for a in addresses),
        role=role if listed else "sender",
        listed=listed,
    )
    return Actor(
        login=login.casefold(), person=person, verified_by=verified_by, superuser=superuser
    )


def root() -> Actor:
    """The operating system's root: an admin, one identity, not listed."""
    return actor("root", listed=False, superuser=True)


REVIEW_POLICY = """\
allow_empty = true  # people only: the review tests need no rule

[organisation]
internal_domains = ["corp.example"]

# Debian's system accounts stand in for people, so tests can run the CLI as each of them.
[people.daemon]
addresses = ["boss@corp.example"]
role = "reviewer"

[people.bin]
addresses = ["security@corp.example"]
role = "reviewer"

[people.sys]
addresses = ["admin@corp.example"]
role = "admin"

[people.mail]
addresses = ["tanaka@corp.example"]  # the sender of `sample_envelope`
"""
"""A policy whose ``[people]`` maps system accounts (present on every Debian system) to
reviewers of ``boss@corp.example`` (daemon) and ``security@corp.example`` (bin), an admin
(sys) and the sender tanaka@corp.example (mail); ``nobody`` is not listed."""


def write_review_policy(directory: Path) -> Path:
    """Write `REVIEW_POLICY` as ``directory/people.toml``; return `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "people.toml").write_text(REVIEW_POLICY, "utf-8")
    return directory


def me_listed(role: Role = "admin", *addresses: str) -> str:
    """TOML listing the account running this process in ``[people]`` with `role` — for
    tests that run the review CLI as whoever runs the test suite."""
    login = pwd.getpwuid(os.geteuid()).pw_name
    listed = ", ".join(f'"{a}"' for a in addresses)
    return f'\n[people."{login}"]\naddresses = [{listed}]\nrole = "{role}"\n'
