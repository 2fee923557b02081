"""Who acts on queued mail: a verified identity, never a name the caller typed.

An `Actor` is built by whatever verified the person — the CLI from the operating system
(`os_actor`), the web console from its sign-in (`sendguard.web`) — and carries the policy's
`Person` for that login (``[people.<login>]``, `sendguard.policy.people`). The review rules
(`sendguard.review.rules`) decide on it: approvals count distinct ``login`` values, a
reviewer must be listed with a role and an address among the rule's reviewers, an admin
may decide anything.

How the CLI verifies (`os_actor`):

- the account of the **effective uid** (``pwd.getpwuid(os.geteuid())``). ``$USER``,
  ``$LOGNAME`` and ``$SUDO_USER`` are never read: any caller can set them.
- **sudo**: when the effective uid is 0 and ``SUDO_UID`` names another account, that
  account acts (``sudo sendguard queue release ID`` is you, not root), verified ``sudo``.
  Only root can run a process with effective uid 0, and sudo sets ``SUDO_UID``; a root
  shell could fake it, but root owns the store and the policy anyway. A sudoers line that
  lets reviewers run ``sendguard queue`` as root therefore does not make them admins.
- **root** (effective uid 0 without ``SUDO_UID``: a root shell, ``sudo -i``, cron, a
  container) is an admin whatever ``[people]`` says — it can write the database anyway —
  but it is one identity: ``root`` approves at most once, whatever ``--actor`` it gives.

An admin may record whom it acts for (`Actor.acting_for`, the CLI's ``--actor NAME``);
the audit log then names both (``boss, by admin root``) and the approval still counts for
the admin's own login.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from sendguard.errors import ReviewError
from sendguard.policy.people import People, Person, Role

Verification = Literal["os", "sudo", "web", "link"]
"""How the identity was established: the process's effective uid (``os``), the invoking
account behind sudo (``sudo``), a web console sign-in (``web``: a password from the users
file, or a trusted proxy's single sign-on header), or a signed link in a notice (``link``:
the sender of that message as the relay verified it, `sendguard.web.links`)."""

_MAX_NAME = 64


@dataclass(frozen=True, slots=True)
class Actor:
    """The verified identity deciding on queued mail."""

    login: str
    """The verified login (case-folded): what approvals count and the audit names."""
    person: Person
    """``[people.<login>]``, or the default for an unlisted login."""
    verified_by: Verification
    superuser: bool = False
    """The operating system's root (not via sudo): an admin even when not listed."""
    on_behalf_of: str | None = None
    """A name an admin says it acts for (``--actor``); recorded, never counted."""

    @property
    def role(self) -> Role:
        """``admin`` for root, else the person's role."""
        return "admin" if self.superuser else self.person.role

    @property
    def is_admin(self) -> bool:
        """May decide any queued message and act on someone's behalf."""
        return self.role == "admin"

    @property
    def name(self) -> str:
        """How decisions are recorded: ``boss, by admin root`` or just the login."""
        if self.on_behalf_of:
            return f"{self.on_behalf_of}, by admin {self.login}"
        return self.login

    def acting_for(self, name: str | None) -> Actor:
        """The same identity recording that it acts for `name`; only admins may.

        Naming oneself (or nothing) is accepted from anyone and changes nothing.
        """
        if name is None or name.strip().casefold() == self.login:
            return self
        label = name.strip()
        if not label or len(label) > _MAX_NAME or not label.isprintable() or "," in label:
            raise ReviewError(
                f"--actor {name!r} must be a short printable name without commas "
                f"(at most {_MAX_NAME} characters)"
            )
        if not self.is_admin:
            raise ReviewError(
                f"--actor is for admins: you are {self.login} ({self.role}); decisions are "
                f"recorded under your own login. An admin is listed in the policy with "
                f'[people.<login>] role = "admin"'
            )
        return replace(self, on_behalf_of=label)


def account_name(uid: int) -> str:
    """The account name of `uid`; `ReviewError` when the system has none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        raise ReviewError(
            f"uid {uid} has no account name on this system; reviewers are named by their "
            "account (add it to /etc/passwd or run as a named account)"
        ) from None


def os_actor(people: People, *, environ: Mapping[str, str] | None = None) -> Actor:
    """The actor running this process, verified by the operating system (see module doc)."""
    env = os.environ if environ is None else environ
    euid = os.geteuid()
    if euid == 0:
        sudo_uid = env.get("SUDO_UID", "")
        if sudo_uid.isdigit() and int(sudo_uid) != 0:
            login = account_name(int(sudo_uid)).casefold()
            return Actor(login=login, person=people.person(login), verified_by="sudo")
        login = account_name(0).casefold()
        return Actor(login=login, person=people.person(login), verified_by="os", superuser=True)
    login = account_name(euid).casefold()
    return Actor(login=login, person=people.person(login), verified_by="os")
