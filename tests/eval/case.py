"""One labelled evaluation case: a mail, its envelope, which detectors judge it and which
(detector, code) pairs must fire. Everything a case does not expect is a false positive."""

from __future__ import annotations

from dataclasses import dataclass, field

from sendguard.detect.base import DetectContext
from sendguard.model import Mail, Organisation
from tests.unit.detect.helpers import ORG, context

from .formats import Content

Label = tuple[str, str]


@dataclass(frozen=True)
class Case:
    """A labelled mail. `scope` = detector ids whose findings are judged on this case."""

    name: str
    group: str
    scope: frozenset[str]
    expected: frozenset[Label]
    mail: Mail
    recipients: tuple[str, ...] = ("customer@abc-trading.co.jp",)
    org: Organisation = ORG
    content: Content | None = None
    """For attachment cases: the content, so the MIME path can rebuild the real file."""
    fmt: str = ""
    subject: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def ctx(self) -> DetectContext:
        """The detection context of this case."""
        return context(self.recipients, self.org)


def labels(detector: str, *codes: str) -> frozenset[Label]:
    """{(detector, code), …}."""
    return frozenset((detector, c) for c in codes)
