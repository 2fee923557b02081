"""Merged, sorted character spans with a logarithmic membership test.

Used where a detector drops hits inside regions (signature blocks, disclaimer paragraphs,
exclusion phrases): a hostile text with thousands of regions and thousands of hits must
cost n·log n, not n².
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable


class Spans:
    """Half-open ``[start, end)`` regions, merged when they overlap."""

    __slots__ = ("_ends", "_starts")

    def __init__(self, spans: Iterable[tuple[int, int]]) -> None:
        merged: list[list[int]] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        self._starts = [s for s, _ in merged]
        self._ends = [e for _, e in merged]

    def __bool__(self) -> bool:
        return bool(self._starts)

    def covers(self, pos: int) -> bool:
        """True when `pos` lies inside a region."""
        i = bisect_right(self._starts, pos) - 1
        return i >= 0 and pos < self._ends[i]

    def overlaps(self, start: int, end: int) -> bool:
        """True when ``[start, end)`` shares a character with a region."""
        i = bisect_right(self._starts, end - 1) - 1
        return i >= 0 and self._ends[i] > start
