"""Who is who: logins, their own addresses and their role, from the policy's ``[people]``.

One home for identity, read by three decisions that must never trust a client-supplied name:

- the relay binds each authenticated login to the MAIL FROM addresses it may use (Postfix's
  ``smtpd_sender_login_maps`` + ``reject_sender_login_mismatch``);
- the policy, the review rules and the notices use the login's *own* address, not MAIL FROM;
- the review CLI maps the operating-system account running it to a person, whose addresses
  are matched against a rule's ``reviewers`` and whose role says whether it is an admin.

A login that the table does not list still has a safe default: a login that is itself an
address (pass-through to Microsoft 365 / Google) may send as exactly that address; a bare
login ``tanaka`` may send as ``tanaka@`` each internal domain. An entry ``@example.co.jp`` in
``addresses`` allows any address at that domain (shared service accounts, like Postfix's
``@domain`` lookup key). The first address listed is the person's own: where notices go.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from sendguard.model import Envelope

Role = Literal["sender", "reviewer", "admin"]
"""``sender``: may send (the default); ``reviewer``: may sign in to review; ``admin``: may
decide any queued message and act on someone's behalf (``--actor``), recorded as such."""

_LOCAL = re.compile(r"^[A-Za-z0-9#$&'*+/=?^_`{|}~.-]+$")
"""A dot-atom local part without ``%`` or ``!`` (routing characters: a login named ``a%b``
must not become a side door to another domain)."""


@dataclass(frozen=True, slots=True)
class Person:
    """One login (SMTP AUTH user name and operating-system account on the relay host)."""

    login: str
    addresses: tuple[str, ...] = ()
    """Normalised ``local@domain`` (A-label) or ``@domain`` wildcards; the first full address
    is the person's own."""
    role: Role = "sender"
    listed: bool = False
    """True when ``[people]`` names this login; False for a default derived from the login."""

    @property
    def own_address(self) -> str | None:
        """Where notices for this person go: the first full address, if any."""
        return next((a for a in self.addresses if not a.startswith("@")), None)

    def may_send_as(self, address: str) -> bool:
        """True when ``address`` (already normalised: lower case, A-label domain) is one of
        this person's addresses or lies in one of its ``@domain`` wildcards."""
        if not address:
            return False  # the null sender is for bounces, never for a person's own mail
        domain = address.rpartition("@")[2]
        return any(a == address or (a.startswith("@") and a[1:] == domain) for a in self.addresses)

    def addresses_in(self, candidates: Iterable[str]) -> bool:
        """True when one of this person's full addresses is among ``candidates``."""
        wanted = {c.casefold() for c in candidates}
        return any(a in wanted for a in self.addresses if not a.startswith("@"))


@dataclass(frozen=True, slots=True)
class People:
    """The ``[people]`` table plus the defaults for logins it does not list."""

    listed: Mapping[str, Person]
    """By login, case-folded."""
    internal_domains: tuple[str, ...] = ()

    def person(self, login: str) -> Person:
        """The listed person, or the default for an unlisted login (see the module doc)."""
        key = login.strip().casefold()
        found = self.listed.get(key)
        if found is not None:
            return found
        if "@" in key:
            local, _, domain = key.rpartition("@")
            ok = bool(local) and _LOCAL.match(local) is not None and "." in domain
            return Person(login=key, addresses=(key,) if ok else ())
        if _LOCAL.match(key):
            return Person(login=key, addresses=tuple(f"{key}@{d}" for d in self.internal_domains))
        return Person(login=key)

    def may_send_as(self, login: str, mail_from: str) -> bool:
        """Postfix's sender-login check: may ``login`` use ``mail_from`` as MAIL FROM?"""
        return self.person(login).may_send_as(mail_from.casefold())

    def identity(self, login: str) -> str:
        """Who an authenticated login is to the policy and the notices: its own address, ""
        when it has none (only ``@domain`` wildcards). The other addresses the login may use
        never count: an exemption or a group belongs to a person, not to every mailbox that
        person may send from (a secretary sending as the president is still the secretary)."""
        return self.person(login).own_address or ""

    def bind(self, envelope: Envelope) -> Envelope:
        """The envelope with `Envelope.sender_identity` filled in for an authenticated login
        (unchanged without AUTH: the envelope sender then stands for the sender)."""
        if envelope.auth_user is None:
            return envelope
        return replace(envelope, sender_identity=self.identity(envelope.auth_user))

    def by_address(self, address: str) -> tuple[Person, ...]:
        """Listed people one of whose full addresses is ``address``."""
        key = address.casefold()
        return tuple(p for p in self.listed.values() if key in p.addresses)


def build_people(
    entries: Mapping[str, tuple[tuple[str, ...], Role]], internal_domains: Iterable[str]
) -> People:
    """People from validated ``[people]`` entries (login → (addresses, role))."""
    listed = {
        login.casefold(): Person(
            login=login.casefold(), addresses=addresses, role=role, listed=True
        )
        for login, (addresses, role) in entries.items()
    }
    return People(listed=listed, internal_domains=tuple(internal_domains))
