"""`visible-recipients`: the Bcc mistake — outside addresses every recipient can read.

Compares the To/Cc headers of the parsed `Mail` with the envelope: visible external
addresses matter only when the mail actually leaves the organisation (some envelope
recipient is external). A newsletter sent correctly via Bcc (``To: undisclosed-recipients:;``
or ``To:`` the sender) shows no outside address and yields nothing.
"""

from __future__ import annotations

from typing import ClassVar

import pydantic

from sendguard.detect.base import ContentDetector, DetectContext, DetectorSettings
from sendguard.detect.domains import is_internal, party
from sendguard.model import Address, Finding, Mail


class VisibleRecipientsSettings(DetectorSettings):
    """Settings of `visible-recipients`."""

    min_organisations: int = pydantic.Field(
        default=2,
        ge=2,
        description="Distinct outside parties visible to each other before "
        "`organisations-visible` is reported.",
    )
    max_evidence: int = pydantic.Field(
        default=10, ge=0, description="How many visible outside domains to name in the evidence."
    )


def _distinct(addresses: tuple[Address, ...]) -> list[Address]:
    seen: dict[str, Address] = {}
    for address in addresses:
        seen.setdefault(address.addr_spec.lower(), address)
    return list(seen.values())


class VisibleRecipients(ContentDetector):
    """External addresses and organisations visible in To/Cc."""

    id: ClassVar[str] = "visible-recipients"
    description: ClassVar[str] = "External addresses visible to other recipients in To/Cc"
    Settings: ClassVar[type[pydantic.BaseModel]] = VisibleRecipientsSettings
    codes: ClassVar[tuple[str, ...]] = ("external-visible", "organisations-visible")

    def detect(self, mail: Mail, ctx: DetectContext) -> list[Finding]:
        """`external-visible` and `organisations-visible` findings."""
        settings = self.settings_as(VisibleRecipientsSettings)
        org = ctx.organisation
        if all(is_internal(a, org) for a in ctx.recipients):
            return []  # nobody outside receives it, so nobody outside sees the headers
        visible = [a for a in _distinct(mail.visible_recipients) if not is_internal(a, org)]
        if not visible:
            return []
        envelope = {a.addr_spec.lower() for a in ctx.recipients}
        domains = sorted({a.registrable_domain for a in visible})
        parties = {party(a) for a in visible}
        where = tuple(sorted({a.field for a in visible}))
        in_envelope = sum(1 for a in visible if a.addr_spec.lower() in envelope)
        found = [
            Finding(
                detector=self.id,
                code="external-visible",
                message="{count} external addresses in To/Cc ({organisations} organisations)",
                count=len(visible),
                severity="low" if len(visible) == 1 else "medium",
                params={
                    "count": len(visible),
                    "organisations": len(domains),
                    "in_envelope": in_envelope,
                },
                evidence=tuple(domains[: settings.max_evidence]),
                where=where,
            )
        ]
        if len(parties) >= settings.min_organisations:
            found.append(
                Finding(
                    detector=self.id,
                    code="organisations-visible",
                    message="{count} unrelated outside parties can see each other in To/Cc",
                    count=len(parties),
                    severity="high",
                    params={"count": len(parties), "domains": len(domains)},
                    evidence=tuple(domains[: settings.max_evidence]),
                    where=where,
                )
            )
        return found
