"""`first-contact`: an outside address this sender has never written to.

Reads the per-message `HistorySnapshot` (`sendguard.history`). Two codes: ``new-recipient``
— an address this sender has never written to, at a domain the organisation writes to
(autocomplete picked the wrong 田中 there, or a colleague's contact); ``new-domain`` — a
domain nobody here has written to. Thresholds keep it quiet where it means little: a sender
with little history (a new employee, the first weeks after installation), a message to many
outsiders at once (a newsletter), and — for ``new-domain`` — nothing else is flagged here:
the policy decides whether a first mail to a new customer is worth a warning or a delay.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import pydantic

from sendguard.detect.base import DetectContext, DetectorSettings, HistoryDetector
from sendguard.detect.domains import is_internal, mask_address
from sendguard.model import Address, Finding, Mail


class FirstContactSettings(DetectorSettings):
    """Settings of `first-contact`."""

    min_sender_history: int = pydantic.Field(
        default=20,
        ge=0,
        description="Outside correspondents a sender must have on record before their first "
        "contacts are reported (a cold history makes everything new).",
    )
    max_recipients: int = pydantic.Field(
        default=20,
        ge=1,
        description="Messages to more outside recipients than this are not checked "
        "(newsletters, announcements).",
    )
    min_domain_count: int = pydantic.Field(
        default=1,
        ge=1,
        description="Messages the organisation must have sent to a domain before a new "
        "address there is `new-recipient` (below it the domain counts as new).",
    )
    max_evidence: int = pydantic.Field(default=5, ge=0, description="Addresses named (masked).")


class FirstContact(HistoryDetector):
    """Outside recipients new to this sender (``new-recipient``) or to everyone (``new-domain``)."""

    reads_parts: ClassVar[bool] = False

    id: ClassVar[str] = "first-contact"
    description: ClassVar[str] = "Outside recipients this sender (or anyone here) never wrote to"
    Settings: ClassVar[type[pydantic.BaseModel]] = FirstContactSettings
    codes: ClassVar[tuple[str, ...]] = ("new-recipient", "new-domain")

    def detect(self, mail: Mail, ctx: DetectContext) -> list[Finding]:
        """At most one finding per code, counting the recipients concerned."""
        cfg = self.settings_as(FirstContactSettings)
        history = ctx.history
        if history is None or history.sender_messages < cfg.min_sender_history:
            return []
        outside = _distinct(a for a in ctx.recipients if not is_internal(a, ctx.organisation))
        if not outside or len(outside) > cfg.max_recipients:
            return []
        new_recipient: list[Address] = []
        new_domain: list[Address] = []
        for address in outside:
            if history.written.get(address.addr_spec.lower(), 0) > 0:
                continue
            if history.domains.get(address.registrable_domain, 0) >= cfg.min_domain_count:
                new_recipient.append(address)
            else:
                new_domain.append(address)
        found: list[Finding] = []
        if new_recipient:
            found.append(
                Finding(
                    detector=self.id,
                    code="new-recipient",
                    message="{count} recipients this sender has never written to, at domains "
                    "the organisation knows",
                    count=len(new_recipient),
                    severity="low",
                    params={"count": len(new_recipient)},
                    evidence=tuple(mask_address(a) for a in new_recipient[: cfg.max_evidence]),
                    where=("envelope",),
                )
            )
        if new_domain:
            domains = sorted({a.registrable_domain for a in new_domain})
            found.append(
                Finding(
                    detector=self.id,
                    code="new-domain",
                    message="{count} recipients at {domains} domains nobody here has written to",
                    count=len(new_domain),
                    severity="low",
                    params={"count": len(new_domain), "domains": len(domains)},
                    evidence=tuple(domains[: cfg.max_evidence]),
                    where=("envelope",),
                )
            )
        return found


def _distinct(addresses: Iterable[Address]) -> list[Address]:
    seen: dict[str, Address] = {}
    for address in addresses:
        seen.setdefault(address.addr_spec.lower(), address)
    return list(seen.values())
