"""Who is inside: classify addresses as internal or external, and senders into groups.

Shared by `sendguard.policy.evaluate` (recipient scope and sender groups of a rule) and
`sendguard.actions.rewrite` (which addresses leave To/Cc), so both agree on what "external"
means: a domain that is not one of ours (subdomains included), a mailing list with
outside members even on our own domain, or a routing address (``user%b.example@ours``,
``b.example!user@ours``, ``"user@b.example"@ours``) that a stock upstream delivers elsewhere.
`sendguard.detect.domains.is_internal` answers the same for the same address.
"""

from __future__ import annotations

from collections.abc import Mapping

from sendguard.model import Organisation
from sendguard.parse.addresses import is_routing_address
from sendguard.policy.load import GroupMembers


def _ascii_domain(domain: str) -> str:
    text = domain.strip().lower().rstrip(".")
    if text.isascii():
        return text
    try:
        return text.encode("idna").decode("ascii")
    except UnicodeError:
        return text


def split_address(address: str) -> tuple[str, str]:
    """``Tanaka@Example.CO.JP`` → (``tanaka``, ``example.co.jp``) with an A-label domain."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    return local.lower(), _ascii_domain(domain)


def in_domains(domain: str, domains: frozenset[str]) -> bool:
    """True when ``domain`` is one of ``domains`` or a subdomain of one."""
    domain = _ascii_domain(domain)
    return any(domain == d or domain.endswith("." + d) for d in domains)


def is_internal(address: str, organisation: Organisation) -> bool:
    """True for an address on one of our domains that is not a list with outside members
    and not a routing address (`is_routing_address`)."""
    local, domain = split_address(address)
    if not local or not domain:
        return False  # unknown shape: treat as external, the safe side
    if is_routing_address(local):
        return False  # the upstream may route it outside: never "ours"
    if f"{local}@{domain}" in organisation.external_lists:
        return False
    return in_domains(domain, organisation.internal_domains)


def sender_groups(mail_from: str, groups: Mapping[str, GroupMembers]) -> frozenset[str]:
    """Names of the groups the envelope sender belongs to."""
    local, domain = split_address(mail_from)
    if not local:
        return frozenset()
    address = f"{local}@{domain}"
    return frozenset(
        name
        for name, members in groups.items()
        if address in members.addresses or in_domains(domain, members.domains)
    )
