"""`thread-outsider`: a reply that brings an outside domain into a known thread.

A reply-all that autocomplete extended, or a forward-as-reply to the wrong party: the
message answers (In-Reply-To / References) a thread the history has recorded, and one of its
outside recipients is at a registrable domain that took no part in that thread. Replies to
threads the history has not seen (the first reply to an incoming mail) say nothing.
"""

from __future__ import annotations

from typing import ClassVar

import pydantic

from sendguard.detect.base import DetectContext, DetectorSettings, HistoryDetector
from sendguard.detect.domains import is_internal
from sendguard.model import Finding, Mail


class ThreadOutsiderSettings(DetectorSettings):
    """Settings of `thread-outsider`."""

    max_evidence: int = pydantic.Field(default=5, ge=0, description="Domains named.")


class ThreadOutsider(HistoryDetector):
    """Outside domains new to the thread a reply belongs to."""

    reads_parts: ClassVar[bool] = False

    id: ClassVar[str] = "thread-outsider"
    description: ClassVar[str] = "A reply adding an outside domain that was not in the thread"
    Settings: ClassVar[type[pydantic.BaseModel]] = ThreadOutsiderSettings
    codes: ClassVar[tuple[str, ...]] = ("new-party",)

    def detect(self, mail: Mail, ctx: DetectContext) -> list[Finding]:
        """One `new-party` finding counting the recipients at domains new to the thread."""
        history = ctx.history
        if history is None or not history.thread_known:
            return []
        if not (mail.in_reply_to or mail.references):
            return []
        outsiders = {
            a.addr_spec.lower(): a.registrable_domain
            for a in ctx.recipients
            if not is_internal(a, ctx.organisation)
            and a.registrable_domain not in history.thread_domains
        }
        if not outsiders:
            return []
        domains = sorted(set(outsiders.values()))
        cfg = self.settings_as(ThreadOutsiderSettings)
        return [
            Finding(
                detector=self.id,
                code="new-party",
                message="A reply adds {count} recipients at {domains} domains that were not "
                "in the thread",
                count=len(outsiders),
                severity="medium",
                params={"count": len(outsiders), "domains": len(domains)},
                evidence=tuple(domains[: cfg.max_evidence]),
                where=("envelope",),
            )
        ]
