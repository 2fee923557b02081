"""Detector base classes: what every detector in `sendguard.detect` is, and what it sees.

Flow: parse builds a `Mail`; the pipeline builds one `DetectContext` from the envelope and
the policy's `Organisation`; `registry.run_content` hands both to every `ContentDetector` (in a
worker process, so detectors are plain picklable objects) and `registry.run_network` awaits
every `NetworkDetector` on the event loop. Detectors return `Finding`s and never decide.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

import pydantic

from sendguard.correspondence import HistorySnapshot
from sendguard.model import Address, CellDigest, Envelope, Finding, Mail, Organisation

_S = TypeVar("_S", bound=pydantic.BaseModel)


class DetectorSettings(pydantic.BaseModel):
    """Base of every detector's `Settings`: frozen; unknown keys are an error in policies."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True, slots=True)
class DetectContext:
    """Who sends to whom, as the relay validated it; the same for every detector of a message."""

    organisation: Organisation
    envelope: Envelope
    recipients: tuple[Address, ...]
    """Envelope recipients parsed with ``field="envelope"``; unparsable ones are omitted."""
    sender: Address | None
    """Envelope MAIL FROM parsed; None for the null sender or an unparsable one."""
    exhaustive: bool = False
    """Read content the slow reference way: every number one by one, tables as text. The
    default fast paths (label zones, tables by columns) give the same findings; tests
    compare the two."""
    learned: Mapping[str, int] = field(default_factory=dict)
    """Registrable domains the organisation has written to → how often (from the history;
    empty without one). `lookalike-domain` takes the frequent ones as targets."""
    history: HistorySnapshot | None = None
    """What the history knows of this sender and these recipients; set (after parsing) only
    for the history detectors. None: no history available, they report nothing."""
    memo: dict[tuple[str, int], tuple[object, object]] | None = None
    """Part-level results kept for one message (set by `inspect.parse_and_detect` for the
    early stop, which shows the detectors each part alone before the whole message): by
    (detector id, ``id(part)``), each holding the part itself so an id is never mistaken.
    None: nothing kept."""


class _Detector:
    """Shared construction: a detector is its class attributes plus one validated settings value."""

    id: ClassVar[str]
    description: ClassVar[str]
    Settings: ClassVar[type[pydantic.BaseModel]]
    codes: ClassVar[tuple[str, ...]]
    """Every finding code the detector can emit (policy rules are validated against them)."""

    def __init__(self, settings: pydantic.BaseModel | None = None) -> None:
        if settings is None:
            settings = self.Settings()
        if not isinstance(settings, self.Settings):
            raise TypeError(
                f"detector {self.id} takes {self.Settings.__name__}, not {type(settings).__name__}"
            )
        self.settings: pydantic.BaseModel = settings

    def settings_as(self, kind: type[_S]) -> _S:
        """The settings typed as the subclass's own model (checked, so no cast is needed)."""
        if not isinstance(self.settings, kind):
            raise TypeError(f"detector {self.id} settings are not {kind.__name__}")
        return self.settings

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}>"


class ContentDetector(_Detector, abc.ABC):
    """A detector that only reads the mail: pure CPU, picklable, runs in a worker process."""

    reads_parts: ClassVar[bool] = True
    """Reads parts' text or tables. False: the cells of a workbook can never matter to it."""

    @abc.abstractmethod
    def detect(self, mail: Mail, ctx: DetectContext) -> list[Finding]:
        """Findings for one message (empty when nothing was seen)."""

    def cells_matter(self, cells: CellDigest) -> bool:
        """Could a workbook whose cells render to no more than `cells` change this detector's
        findings? (`parse.extract.cells`: when no detector says yes, the cells are not read.)
        Must be a proof: the default, for detectors reading parts, is "yes"."""
        return self.reads_parts


class HistoryDetector(ContentDetector, abc.ABC):
    """A content detector that reads `DetectContext.history`: run in the relay process once
    the per-message history snapshot has been looked up (pure: no I/O of its own)."""


class NetworkDetector(_Detector, abc.ABC):
    """A detector that asks the network (DNS); runs on the event loop under a time budget."""

    @abc.abstractmethod
    async def detect(self, mail: Mail, ctx: DetectContext) -> list[Finding]:
        """Findings for one message (empty when nothing was seen)."""
