"""Shared table building for CSV/TSV, sheets, DOCX and HTML tables.

Every reader that finds rows and cells funnels them through `TableBuilder`, so the row and
cell limits, NFKC normalisation, trailing-empty trimming and the text rendering (one row
per line, cells joined by tabs) are the same for every format.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from sendguard.model import Problem, Table
from sendguard.parse.context import Blob, Context, problem

_CHECK_EVERY = 2048


def cell_text(value: object) -> str:
    """A cell value as NFKC text; floats that are whole numbers lose their ``.0``."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        value = int(value)
    text = value if isinstance(value, str) else str(value)
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


def _trim(cells: list[str]) -> tuple[str, ...]:
    end = len(cells)
    while end and not cells[end - 1]:
        end -= 1
    return tuple(cells[:end])


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
            cells = _trim([cell_text(v) for v in row])
            self.cells += len(cells)
            if len(kept) >= limits.max_table_rows or self.cells > limits.max_table_cells:
                truncated = True
                break
            kept.append(cells)
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
