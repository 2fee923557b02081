"""Senders into groups, for `sendguard.policy.evaluate` (a rule's ``senders``).

Whether a recipient is inside has one answer, `sendguard.detect.domains.is_internal`, used
by the detectors, the rule scope, the To/Cc rewrite and the notices alike.
"""

from __future__ import annotations

from collections.abc import Mapping

from sendguard.detect.domains import in_domains, split_address
from sendguard.policy.load import GroupMembers


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
