"""Shared table building for CSV/TSV, sheets, DOCX and HTML tables.

Every reader that finds rows and cells funnels them through `TableBuilder`, so the row and
cell limits, NFKC normalisation, trailing-empty trimming and the text rendering (one row
per line, cells joined by tabs) are the same for every format.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, islice, repeat

from sendguard.model import Problem, Table
from sendguard.parse.context import Blob, Context, problem

_CHECK_EVERY = 2048
# Spreadsheet numbers arrive as floats: "100000.0" → "100000". Done with str.replace on
# the joined table (C speed), so a text cell ending in ".0" loses it too (harmless).
_WHOLE_FLOAT_ENDS = ((".0\x1f", "\x1f"), (".0\x1e", "\x1e"))


def cell_text(value: object) -> str:
    """A cell value as NFKC text; floats that are whole numbers lose their ``.0``."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        value = int(value)
    text = value if isinstance(value, str) else str(value)
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


def _split_rows(lines: list[str]) -> list[tuple[str, ...]]:
    """Rows joined by U+001F, one per line: cells with trailing empty ones dropped, a row
    of empty cells as ``()`` — one C-level rstrip and split per row, no Python per cell."""
    stripped = map(str.rstrip, lines, repeat("\x1f"))
    return [tuple(row.split("\x1f")) if row else () for row in stripped]


def _trimmed(row: list[str]) -> tuple[str, ...]:
    end = len(row)
    while end and not row[end - 1]:
        end -= 1
    return tuple(row[:end])


def row_cells(row: Iterable[object]) -> list[str]:
    """One row's cells as NFKC text, trailing empty cells dropped.

    The hot loop of every sheet: type dispatch is inlined and NFKC runs once per row
    (joined by U+001F, which NFKC leaves alone), not once per cell.
    """
    cells: list[str] = []
    append = cells.append
    for value in row:
        if isinstance(value, str):
            append(value)
        elif isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
            append(str(int(value)))
        elif value is None:
            append("")
        else:
            append(str(value))
    while cells and not cells[-1]:
        cells.pop()
    joined = "\x1f".join(cells)
    if joined.isascii():
        return cells
    return unicodedata.normalize("NFKC", joined).split("\x1f")


@dataclass(slots=True)
class TableBuilder:
    """Collects tables for one blob under the per-part row and cell limits."""

    blob: Blob
    ctx: Context
    tables: list[Table] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    cells: int = 0

    def add(self, name: str, rows: Iterable[Iterable[object]]) -> None:
        """Read *rows* (any iterable of cell values) into one table, within the limits."""
        limits = self.ctx.limits
        kept: list[tuple[str, ...]] = []
        truncated = False
        for count, row in enumerate(rows):
            if count % _CHECK_EVERY == 0:
                self.ctx.check_time()
            cells = tuple(row_cells(row))
            self.cells += len(cells)
            if len(kept) >= limits.max_table_rows or self.cells > limits.max_table_cells:
                truncated = True
                break
            kept.append(cells)
        self._finish(name, kept, truncated)

    def add_matrix(self, name: str, rows: Sequence[Sequence[object]]) -> None:
        """Fast path for a fully loaded sheet: one join, one NFKC, one split for the table.

        Cells are joined with U+001F and rows with U+001E (NFKC leaves both alone), so the
        per-cell work happens in C; a cell that itself contains those controls can only
        shift its own row's columns.
        """
        limits = self.ctx.limits
        truncated = len(rows) > limits.max_table_rows
        self.ctx.check_time()
        join = "\x1f".join
        text = "\x1e".join([join(map(str, row)) for row in rows[: limits.max_table_rows]])
        for whole, bare in _WHOLE_FLOAT_ENDS:
            text = text.replace(whole, bare)
        text = text.removesuffix(".0")
        if not text.isascii():
            text = unicodedata.normalize("NFKC", text)
        self.ctx.check_time()
        self._keep(name, _split_rows(text.split("\x1e")), truncated)

    def add_strings(self, name: str, rows: Iterable[list[str]], *, normalized: bool) -> None:
        """Fast path for rows of strings (CSV), with the same table as `add` would build:
        `normalized` (the whole source is NFKC already) keeps the cells as they are, else one
        join, one NFKC and one split, as `add_matrix` does for sheets."""
        limits = self.ctx.limits
        self.ctx.check_time()
        taken = list(islice(rows, limits.max_table_rows + 1))
        if normalized:
            self._add_normalized(name, taken)
            return
        head = taken[: limits.max_table_rows]
        text = "\x1e".join(map("\x1f".join, head))
        separators = sum(map(len, head)) - len(head) + head.count([])
        if text.count("\x1f") != separators or text.count("\x1e") != max(len(head) - 1, 0):
            self.add(name, taken)  # a cell holds U+001E or U+001F: cell by cell
            return
        truncated = len(taken) > limits.max_table_rows
        del taken, head
        if not text.isascii():
            text = unicodedata.normalize("NFKC", text)
        self.ctx.check_time()
        lines = text.split("\x1e") if text or separators else []
        self._keep(name, _split_rows(lines), truncated)

    def _add_normalized(self, name: str, taken: list[list[str]]) -> None:
        limits = self.ctx.limits
        truncated = len(taken) > limits.max_table_rows
        kept = [
            tuple(row) if not row or row[-1] else _trimmed(row)
            for row in taken[: limits.max_table_rows]
        ]
        del taken
        self._keep(name, kept, truncated)

    def _keep(self, name: str, kept: list[tuple[str, ...]], truncated: bool) -> None:
        """Rows up to the part's cell limit (the row that crosses it is dropped, its cells
        counted), as a row-by-row loop would keep them, with C-level sums."""
        limits = self.ctx.limits
        totals = list(accumulate(map(len, kept), initial=self.cells))
        if totals[-1] > limits.max_table_cells:
            over = bisect_right(totals, limits.max_table_cells) - 1  # rows that fit
            del kept[over:]
            truncated = True
            self.cells = totals[over + 1]
        else:
            self.cells = totals[-1]
        self._finish(name, kept, truncated)

    def _finish(self, name: str, kept: list[tuple[str, ...]], truncated: bool) -> None:
        while kept and not kept[-1]:
            kept.pop()
        if truncated:
            detail = f"table {name!r} cut at {len(kept)} rows"
            self.problems.append(problem("limit", "table-size", self.blob, detail))
        self.tables.append(Table(name=name, rows=tuple(kept), truncated=truncated))

    def render(self) -> str:
        """All tables as text: a name line, then one line per row with tab-separated cells."""
        lines: list[str] = []
        for table in self.tables:
            if table.name:
                lines.append(table.name)
            lines.extend("\t".join(row) for row in table.rows)
        return "\n".join(lines)
