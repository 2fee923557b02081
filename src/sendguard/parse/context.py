"""Per-message state of one `parse_message` call: limits, deadline, parts and problems so far.

Created fresh for every message and passed down to every reader in `sendguard.parse.extract`
(nothing lives at module level, so worker processes can run many messages in a row).
`Blob` is what a reader is given; `Extracted` is what it hands back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sendguard.model import CellDigest, Part, Problem, ProblemKind, Table
from sendguard.parse.limits import ParseLimits


class BudgetExceeded(Exception):
    """Raised inside the parser when the time budget is spent; caught by `parse_message`."""


class StopScan(Exception):
    """Raised inside the parser when `Context.stop` says the rest cannot change the verdict."""


@dataclass(frozen=True, slots=True)
class Blob:
    """Bytes to read, with where they came from."""

    data: bytes
    path: tuple[str, ...]
    declared_type: str = "application/octet-stream"
    filename: str = ""
    is_attachment: bool = True
    archive_depth: int = 0
    mime_depth: int = 0
    charset: str = ""
    """Declared charset of a text part ("" when none or not text)."""

    @property
    def label(self) -> str:
        """The path as a person reads it."""
        return " › ".join(self.path)


@dataclass(frozen=True, slots=True)
class Extracted:
    """What a reader found in one blob."""

    text: str = ""
    tables: tuple[Table, ...] = ()
    encrypted: bool = False
    problems: tuple[Problem, ...] = ()
    cut: bool = False
    """Rows after `Context.row_cap` were not read: the tables are their first rows and the
    text the lines those render to (a prefix of what reading every row gives)."""
    rest: Callable[[], Extracted] | None = field(default=None, compare=False, repr=False)
    """With `cut`: the whole reading, reusing what the prefix's reading already did (the
    decoded text, the vetted package); None: read the blob again."""


@dataclass(slots=True)
class Context:
    """Mutable accumulator for one message; never shared between messages."""

    limits: ParseLimits
    deadline: float
    parts: list[Part] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    expanded: int = 0
    expanded_reported: bool = False
    files: int = 0
    """Files (parts and archive members) read so far, against `max_files`."""
    bomb: bool = False
    """Set when a decompression bomb was seen: archives stop opening further members."""
    stop: Callable[[tuple[Part, ...]], bool] | None = None
    """The relay's early stop (`policy.ceiling`): asked about the parts read since it was
    last asked, whenever more leaves remain; True ends the walk (`StopScan`)."""
    asked: int = 0
    """Parts already shown to `stop`."""
    stopped: bool = False
    """`stop` ended the walk."""
    cells_gate: Callable[[CellDigest], bool] | None = None
    """Candidate-first for workbooks (set by `inspect`, not on the exhaustive path): asked
    with what a workbook's cells can render to; False (no detector could find anything
    there) means the cells are not read at all. None: always read them."""
    row_cap: int | None = None
    """The relay (with `stop`): a table reader may read a part's tables only to their first
    `row_cap` rows, and `extract` asks `stop` whether that prefix already reaches the
    ceiling; if not, the part is read again in full. None: every row is read."""
    prefix_rows: int | None = None
    """Rows the table reader running now may stop after: `row_cap` while `extract` reads a
    part's prefix, else None (every other reader, e.g. legacy XLS through `office`, reads
    every row)."""
    rows_cut: bool = False
    """A part kept to its first `row_cap` rows ended the walk (`StopScan`)."""

    @classmethod
    def start(cls, limits: ParseLimits) -> Context:
        """A fresh context whose deadline is the time budget from now."""
        return cls(limits=limits, deadline=time.monotonic() + limits.time_budget_seconds)

    def check_time(self) -> None:
        """Raise `BudgetExceeded` once the deadline has passed."""
        if time.monotonic() > self.deadline:
            raise BudgetExceeded

    def maybe_stop(self) -> None:
        """Ask `stop` about the parts added since the last question; raise `StopScan` when
        the verdict can no longer change."""
        if self.stop is None or len(self.parts) == self.asked:
            return
        new = tuple(self.parts[self.asked :])
        self.asked = len(self.parts)
        if self.stop(new):
            raise StopScan

    def remaining(self) -> float:
        """Seconds left in the budget (never negative)."""
        return max(0.0, self.deadline - time.monotonic())

    def add(self, kind: ProblemKind, code: str, where: str, detail: str = "") -> Problem:
        """Record a message-level problem and return it."""
        problem = Problem(kind, code, where, detail)
        self.problems.append(problem)
        return problem

    def charge(self, size: int, where: str) -> bool:
        """Count *size* expanded bytes; False (and one problem) once the total is over."""
        self.expanded += size
        if self.expanded <= self.limits.max_expanded_bytes:
            return True
        if not self.expanded_reported:
            self.expanded_reported = True
            detail = f"expanded bytes > limit {self.limits.max_expanded_bytes}"
            self.add("limit", "expanded-size", where, detail)
        return False

    def remaining_expansion(self) -> int:
        """Bytes that may still be expanded for this message."""
        return max(0, self.limits.max_expanded_bytes - self.expanded)


def problem(kind: ProblemKind, code: str, blob: Blob, detail: str = "") -> Problem:
    """A problem located at *blob*."""
    return Problem(kind, code, blob.label, detail)
