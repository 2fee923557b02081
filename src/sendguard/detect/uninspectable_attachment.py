"""`uninspectable-attachment`: what parsing could not read becomes a finding, never a pass.

Reads `Mail.problems` (filled by `sendguard.parse`: encrypted ZIP — the PPAP pattern —,
encrypted Office/PDF, a limit hit, malformed or unsupported content, an extraction timeout)
and any `Part.encrypted` the parser did not already report as a problem. A malformed
To/Cc/Resent-To/Resent-Cc entry is not an attachment: `visible-recipients` reports it
(code ``malformed``).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import ClassVar

import pydantic

from sendguard.detect.base import ContentDetector, DetectContext, DetectorSettings
from sendguard.model import Finding, Mail, Problem, Severity
from sendguard.parse.headers import is_visible_address_problem

_SEVERITY: MappingProxyType[str, Severity] = MappingProxyType(
    {
        "encrypted": "high",
        "limit": "high",
        "timeout": "high",
        "malformed": "medium",
        "unsupported": "low",
    }
)


class UninspectableAttachmentSettings(DetectorSettings):
    """Settings of `uninspectable-attachment` (none yet; present so policies can name it)."""


class UninspectableAttachment(ContentDetector):
    """One finding per problem the parser reported."""

    reads_parts: ClassVar[bool] = False  # only parts' problems and encryption flags

    id: ClassVar[str] = "uninspectable-attachment"
    description: ClassVar[str] = "Attachments or parts that could not be inspected"
    Settings: ClassVar[type[pydantic.BaseModel]] = UninspectableAttachmentSettings
    codes: ClassVar[tuple[str, ...]] = ("encrypted", "limit", "malformed", "unsupported", "timeout")

    def _finding(self, problem: Problem) -> Finding:
        return Finding(
            detector=self.id,
            code=problem.kind,
            message="Could not inspect {where}: {reason}",
            severity=_SEVERITY.get(problem.kind, "medium"),
            params={"reason": problem.code, "where": problem.where, "detail": problem.detail},
            where=(problem.where,),
        )

    def detect(self, mail: Mail, ctx: DetectContext) -> list[Finding]:
        """Findings with code = problem kind and params ``reason`` = problem code."""
        problems = [p for p in mail.problems if not is_visible_address_problem(p)]
        reported = {p.where for p in problems if p.kind == "encrypted"}
        for part in mail.parts:
            if part.encrypted and part.label not in reported:
                problems.append(Problem("encrypted", "encrypted", part.label))
        return [self._finding(p) for p in problems]
