"""`external-recipients`: who in the envelope is outside the organisation.

Reads only `DetectContext.recipients` (the envelope is the truth, never the headers) and the
policy's `Organisation`. Feeds rules such as "external mail → delay 5 min" and "≥ 3 outside
organisations → hold".
"""

from __future__ import annotations

from typing import ClassVar

import pydantic

from sendguard.detect.base import ContentDetector, DetectContext, DetectorSettings
from sendguard.detect.domains import is_external_list, is_internal, is_partner, mask_address
from sendguard.model import Address, Finding, Mail, Organisation


class ExternalRecipientsSettings(DetectorSettings):
    """Settings of `external-recipients`."""

    max_evidence: int = pydantic.Field(
        default=10, ge=0, description="How many external domains/addresses to name in the evidence."
    )


class ExternalRecipients(ContentDetector):
    """Classify every envelope recipient as internal or external."""

    reads_parts: ClassVar[bool] = False

    id: ClassVar[str] = "external-recipients"
    description: ClassVar[str] = "Envelope recipients outside the organisation"
    Settings: ClassVar[type[pydantic.BaseModel]] = ExternalRecipientsSettings
    codes: ClassVar[tuple[str, ...]] = ("external", "partner", "external-list")

    def detect(self, mail: Mail, ctx: DetectContext) -> list[Finding]:
        """`external`, `partner` and `external-list` findings for the envelope recipients."""
        settings = self.settings_as(ExternalRecipientsSettings)
        org = ctx.organisation
        external = [a for a in ctx.recipients if not is_internal(a, org)]
        if not external:
            return []
        domains = sorted({a.registrable_domain for a in external})
        found = [
            Finding(
                detector=self.id,
                code="external",
                message="{count} external recipients in {organisations} organisations",
                count=len(external),
                severity="low",
                params={
                    "count": len(external),
                    "organisations": len(domains),
                    "total": len(ctx.recipients),
                },
                evidence=tuple(domains[: settings.max_evidence]),
                where=("envelope",),
            )
        ]
        found.extend(self._partner(external, org, settings.max_evidence))
        found.extend(self._lists(external, org, settings.max_evidence))
        return found

    def _partner(self, external: list[Address], org: Organisation, limit: int) -> list[Finding]:
        partners = [a for a in external if is_partner(a, org)]
        if not partners:
            return []
        return [
            Finding(
                detector=self.id,
                code="partner",
                message="{count} recipients at partner domains",
                count=len(partners),
                severity="info",
                params={"count": len(partners)},
                evidence=tuple(sorted({a.domain_unicode for a in partners}))[:limit],
                where=("envelope",),
            )
        ]

    def _lists(self, external: list[Address], org: Organisation, limit: int) -> list[Finding]:
        lists = [a for a in external if is_external_list(a, org)]
        if not lists:
            return []
        return [
            Finding(
                detector=self.id,
                code="external-list",
                message="{count} mailing lists with outside members among the recipients",
                count=len(lists),
                severity="low",
                params={"count": len(lists)},
                evidence=tuple(mask_address(a) for a in lists[:limit]),
                where=("envelope",),
            )
        ]
