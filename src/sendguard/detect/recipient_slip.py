"""`recipient-slip`: a new address that looks like one of the sender's real correspondents.

The right-looking wrong person: autocomplete offered 田中 at another company, or one letter
of a known address slipped. Reads the per-message `HistorySnapshot`. Two codes:
``autocomplete`` — an address this sender never wrote to whose display name or local part
equals that of a correspondent at *another* domain; ``near-address`` — an address one edit
away from a known address at the *same* domain. Generic local parts (info, sales…) are not
compared, a local part shared by two differently named people is not a slip, and a
correspondent must have been written to `min_known_count` times.
"""

from __future__ import annotations

from typing import ClassVar

import pydantic

from sendguard.correspondence import Known, name_key
from sendguard.detect.base import DetectContext, DetectorSettings, HistoryDetector
from sendguard.detect.domains import is_internal, mask_address
from sendguard.detect.similarity import distance
from sendguard.model import Address, Finding, Mail

GENERIC_LOCAL_PARTS = frozenset(
    {
        "info", "sales", "support", "contact", "admin", "office", "mail", "webmaster",
        "postmaster", "noreply", "no-reply", "help", "service", "inquiry", "toiawase",
        "soumu", "keiri", "jinji", "eigyo", "recruit", "saiyo", "pr", "press", "hr",
    }
)  # fmt: skip
"""Role addresses every company has: the same local part elsewhere says nothing."""


class RecipientSlipSettings(DetectorSettings):
    """Settings of `recipient-slip`."""

    min_known_count: int = pydantic.Field(
        default=2,
        ge=1,
        description="Messages the sender must have sent to a correspondent before a new "
        "address resembling it is reported.",
    )
    min_local_length: int = pydantic.Field(
        default=3,
        ge=1,
        description="Shortest local part compared (by equality or by one edit).",
    )
    max_recipients: int = pydantic.Field(
        default=20,
        ge=1,
        description="Messages to more outside recipients than this are not checked "
        "(newsletters: a slip there is the Bcc rules' business).",
    )
    max_evidence: int = pydantic.Field(default=5, ge=0, description="Pairs named (masked).")


def _mask(address: str) -> str:
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


class RecipientSlip(HistoryDetector):
    """New recipients resembling known correspondents (autocomplete slips, one-letter slips)."""

    reads_parts: ClassVar[bool] = False

    id: ClassVar[str] = "recipient-slip"
    description: ClassVar[str] = "New recipients resembling the sender's known correspondents"
    Settings: ClassVar[type[pydantic.BaseModel]] = RecipientSlipSettings
    codes: ClassVar[tuple[str, ...]] = ("autocomplete", "near-address")

    def detect(self, mail: Mail, ctx: DetectContext) -> list[Finding]:
        """At most one finding per code, counting the new recipients concerned."""
        cfg = self.settings_as(RecipientSlipSettings)
        history = ctx.history
        if history is None:
            return []
        outside = {
            a.addr_spec.lower() for a in ctx.recipients if not is_internal(a, ctx.organisation)
        }
        if len(outside) > cfg.max_recipients:
            return []
        names = {a.addr_spec.lower(): name_key(a.display_name) for a in mail.visible_recipients}
        slips: dict[str, list[tuple[Address, Known, str]]] = {}
        seen: set[str] = set()
        for address in ctx.recipients:
            spec = address.addr_spec.lower()
            if spec in seen or is_internal(address, ctx.organisation):
                continue
            seen.add(spec)
            if history.written.get(spec, 0) > 0:
                continue
            hit = self._autocomplete(address, history.same_name.get(spec, ()), "display name")
            local = address.local_part.lower()
            if (
                hit is None
                and local not in GENERIC_LOCAL_PARTS
                and len(local) >= cfg.min_local_length
            ):
                # Same local part, but both named and the names differ: another person.
                name = names.get(spec, "")
                same = tuple(
                    k
                    for k in history.same_local.get(spec, ())
                    if not (name and k.name and k.name != name)
                )
                hit = self._autocomplete(address, same, "name")
            if hit is not None:
                slips.setdefault("autocomplete", []).append(hit)
                continue
            near = self._near(address, history.neighbours.get(address.registrable_domain, ()))
            if near is not None:
                slips.setdefault("near-address", []).append(near)
        return [self._finding(code, hits, cfg) for code, hits in slips.items()]

    def _autocomplete(
        self, address: Address, known: tuple[Known, ...], what: str
    ) -> tuple[Address, Known, str] | None:
        cfg = self.settings_as(RecipientSlipSettings)
        for other in known:
            if other.count >= cfg.min_known_count:
                return address, other, what
        return None

    def _near(
        self, address: Address, known: tuple[Known, ...]
    ) -> tuple[Address, Known, str] | None:
        cfg = self.settings_as(RecipientSlipSettings)
        local = address.local_part.lower()
        if len(local) < cfg.min_local_length:
            return None
        for other in known:
            other_local = other.address.rpartition("@")[0]
            if len(other_local) >= cfg.min_local_length and distance(local, other_local, 1) == 1:
                return address, other, "one edit"
        return None

    def _finding(
        self, code: str, hits: list[tuple[Address, Known, str]], cfg: RecipientSlipSettings
    ) -> Finding:
        evidence = tuple(f"{mask_address(a)} ≈ {_mask(k.address)} ({why})" for a, k, why in hits)[
            : cfg.max_evidence
        ]
        if code == "autocomplete":
            message = "{count} new recipients share a name with correspondents at other domains"
        else:
            message = "{count} new recipients are one letter away from known addresses"
        return Finding(
            detector=self.id,
            code=code,
            message=message,
            count=len(hits),
            severity="high" if code == "autocomplete" else "medium",
            params={"count": len(hits)},
            evidence=evidence,
            where=("envelope",),
        )
