"""`visible-recipients`: the Bcc mistake — outside addresses every recipient can read.

Compares the To/Cc (and Resent-To/Resent-Cc) headers of the parsed `Mail` with the
envelope: visible external addresses matter only when the mail actually leaves the
organisation (some envelope recipient is external). A newsletter sent correctly via Bcc
(``To: undisclosed-recipients:;`` or ``To:`` the sender) shows no outside address and yields
nothing. An entry our strict parser cannot read may still show an outside address to a
person, so it is reported too (``malformed``), never skipped.
"""

from __future__ import annotations

from typing import ClassVar

import pydantic

from sendguard.detect.base import ContentDetector, DetectContext, DetectorSettings
from sendguard.detect.domains import is_internal, party
from sendguard.model import Address, Finding, Mail
from sendguard.parse.headers import is_visible_address_problem


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
    """External addresses and organisations visible in To/Cc, and unreadable To/Cc entries."""

    reads_parts: ClassVar[bool] = False

    id: ClassVar[str] = "visible-recipients"
    description: ClassVar[str] = "External addresses visible to other recipients in To/Cc"
    Settings: ClassVar[type[pydantic.BaseModel]] = VisibleRecipientsSettings
    codes: ClassVar[tuple[str, ...]] = ("external-visible", "organisations-visible", "malformed")

    def detect(self, mail: Mail, ctx: DetectContext) -> list[Finding]:
        """`external-visible`, `organisations-visible` and `malformed` findings."""
        org = ctx.organisation
        if all(is_internal(a, org) for a in ctx.recipients):
            return []  # nobody outside receives it, so nobody outside sees the headers
        return [*self._visible(mail, ctx), *self._malformed(mail)]

    def _malformed(self, mail: Mail) -> list[Finding]:
        problems = [p for p in mail.problems if is_visible_address_problem(p)]
        if not problems:
            return []
        return [
            Finding(
                detector=self.id,
                code="malformed",
                message="{count} To/Cc entries could not be read as addresses",
                count=len(problems),
                severity="medium",
                params={"count": len(problems)},
                # The parser's reasons ("bad domain"): ASCII and free of the address itself.
                evidence=tuple(sorted({p.detail for p in problems}))[:10],
                where=tuple(sorted({p.where for p in problems})),
            )
        ]

    def _visible(self, mail: Mail, ctx: DetectContext) -> list[Finding]:
        settings = self.settings_as(VisibleRecipientsSettings)
        org = ctx.organisation
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
