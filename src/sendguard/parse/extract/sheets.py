"""Spreadsheets: XLSX, XLSM and ODS (and legacy XLS from `office`) through python-calamine.

Dispatched from `sendguard.parse.extract.extract`. calamine (Rust) reads a 50,000-row
sheet several times faster than openpyxl and never expands XML entities, but it builds a
dense cell range: a 5 KB file with cells in A1 and XFD1048576 asks for 512 GiB and aborts
the process. So before calamine runs, the package passes `zipsafe.check_package` (sizes,
ratios, DTDs) and `_dense_cells` bounds the range from the cell references themselves.
Hidden sheets are read too: customer lists hide there.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import IO

from python_calamine import CalamineError, CalamineWorkbook, PasswordError, SheetTypeEnum

from sendguard.model import Problem
from sendguard.parse.context import Blob, Context, Extracted, problem
from sendguard.parse.extract import zipsafe
from sendguard.parse.extract.tables import TableBuilder, cell_text

_COLUMN_REF = re.compile(rb'\br="([A-Z]{1,3})[0-9]')
_ROW_REF = re.compile(rb'\br="[A-Z]{0,3}([0-9]{1,7})"')
_ODS_REPEAT = re.compile(rb'number-(?:columns|rows)-repeated="([0-9]{4,})"')
_CHUNK = 1 << 20
_OVERLAP = 32


def _column_number(letters: bytes) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + letter - 64
    return number


def _scan(handle: IO[bytes]) -> tuple[int, int]:
    """Largest row and column referenced in a worksheet XML stream (chunked, bounded)."""
    rows = cols = 0
    tail = b""
    while chunk := handle.read(_CHUNK):
        window = tail + chunk
        letters = set(_COLUMN_REF.findall(window))
        if letters:
            cols = max(cols, *(_column_number(c) for c in letters))
        # Row numbers as text: the longest, then the largest, is the maximum.
        numbers = set(_ROW_REF.findall(window))
        if numbers:
            rows = max(rows, int(max(numbers, key=lambda n: (len(n), n))))
        tail = window[-_OVERLAP:]
    return rows, cols


def _dense_cells(archive: zipfile.ZipFile, blob: Blob, ctx: Context) -> Problem | None:
    """Refuse sheets whose bounding box would make calamine allocate too many cells."""
    limit = ctx.limits.max_table_cells
    for info in archive.infolist():
        name = info.filename
        if name.startswith("xl/worksheets/") and name.endswith(".xml"):
            ctx.check_time()
            with archive.open(info) as handle:
                rows, cols = _scan(handle)
            if rows * cols > limit:
                detail = f"sheet spans {rows} x {cols} cells > {limit}"
                return problem("limit", "sheet-size", blob, detail)
        elif name == "content.xml":
            with archive.open(info) as handle:
                repeats = _ODS_REPEAT.findall(handle.read(ctx.limits.max_member_bytes))
            if any(int(r) > limit for r in repeats):
                return problem("limit", "sheet-size", blob, "repeated cells over the cell limit")
    return None


def read_sheets(blob: Blob, ctx: Context) -> Extracted:
    """Every sheet (hidden ones too) of an XLSX/XLSM/ODS file as tables, header row kept."""
    archive, issue = zipsafe.open_zip(blob, ctx)
    if archive is None:
        return Extracted(problems=(issue,) if issue else ())
    issue = zipsafe.check_package(archive, blob, ctx) or _dense_cells(archive, blob, ctx)
    if issue is not None:
        return Extracted(problems=(issue,))
    return read_workbook(blob, ctx)


def read_workbook(blob: Blob, ctx: Context) -> Extracted:
    """Read an already vetted workbook (XLSX, XLSM, ODS or BIFF XLS) with calamine."""
    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(blob.data))
    except PasswordError:
        return Extracted(encrypted=True, problems=(problem("encrypted", "encrypted-office", blob),))
    except CalamineError as exc:
        return Extracted(problems=(problem("malformed", "bad-sheet", blob, type(exc).__name__),))
    builder = TableBuilder(blob, ctx)
    try:
        for meta in workbook.sheets_metadata:
            if meta.typ not in (SheetTypeEnum.WorkSheet, SheetTypeEnum.DialogSheet):
                continue
            ctx.check_time()
            sheet = workbook.get_sheet_by_name(meta.name)
            builder.add(cell_text(meta.name), sheet.iter_rows())
    except PasswordError:
        return Extracted(encrypted=True, problems=(problem("encrypted", "encrypted-office", blob),))
    except CalamineError as exc:
        builder.problems.append(problem("malformed", "bad-sheet", blob, type(exc).__name__))
    finally:
        workbook.close()
    return Extracted(
        text=builder.render(), tables=tuple(builder.tables), problems=tuple(builder.problems)
    )
