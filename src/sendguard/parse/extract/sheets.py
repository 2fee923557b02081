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
from collections.abc import Callable
from dataclasses import replace

import structlog
from python_calamine import CalamineError, CalamineWorkbook, PasswordError, SheetTypeEnum

from sendguard.model import CellDigest, Problem
from sendguard.parse.context import Blob, Context, Extracted, problem
from sendguard.parse.extract import cells, firstrows, zipsafe
from sendguard.parse.extract.tables import TableBuilder, cell_text

_log = structlog.get_logger(__name__)

# Cheap scans first (rare matches, literal prefixes); exact ones only when the cheap bound
# is over the limit, so a normal 50,000-row list costs a few tens of milliseconds here.
_ROW_ELEMENT = re.compile(rb'<(?:\w+:)?row r="([0-9]{1,7})"')
_BIG_ROW = re.compile(rb'r="[A-Z]{0,8}([0-9]{6,})')
_FIVE_DIGIT_ROW = re.compile(rb'r="[A-Z]{1,3}([0-9]{5})"')
_WIDE_COLUMN = re.compile(rb'r="([A-Z]{2,8})[0-9]')
_NARROW_COLUMN = re.compile(rb'r="([A-Z])[0-9]')
_ODS_REPEAT = re.compile(rb'number-(?:columns|rows)-repeated="([0-9]{4,})"')


def _column_number(letters: bytes) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + letter - 64
    return number


def _largest(pattern: re.Pattern[bytes], xml: bytes) -> int:
    return max((int(v) for v in set(pattern.findall(xml))), default=0)


def _widest(pattern: re.Pattern[bytes], xml: bytes) -> int:
    return max((_column_number(v) for v in set(pattern.findall(xml))), default=0)


def sheet_extent(xml: bytes, limit: int) -> tuple[int, int]:
    """Largest row and column a worksheet references, as far as *limit* needs to know.

    When rows are out of order the cheap row figure may be low, but only while even the
    worst case (99,999 rows x the columns seen) stays within *limit*; otherwise every
    reference is scanned and the figures are exact.

    calamine places cells by their own ``r`` attribute, so row elements alone are not
    enough. The cheap bound is the last row element plus any six-digit row anywhere; all
    rows and one-letter columns are only scanned when that bound would exceed *limit*.
    """
    last = _ROW_ELEMENT.match(xml, max(0, xml.rfind(b"<row r=")))
    rows = max(int(last.group(1)) if last else 0, _largest(_BIG_ROW, xml))
    cols = _widest(_WIDE_COLUMN, xml) or (26 if _NARROW_COLUMN.search(xml) else 0)
    if rows < 100_000 and 99_999 * cols > limit:
        # Rows may be out of order, and cells carry their own row: look at all of them.
        rows = max(rows, _largest(_ROW_ELEMENT, xml), _largest(_FIVE_DIGIT_ROW, xml))
    if cols == 26 and rows * cols > limit:
        cols = _widest(_NARROW_COLUMN, xml)
    return rows, cols


def _bound(xml: bytes, blob: Blob, limit: int) -> Problem | None:
    rows, cols = sheet_extent(xml, limit)
    if rows * cols > limit:
        return problem("limit", "sheet-size", blob, f"sheet spans {rows} x {cols} cells > {limit}")
    return None


def _dense_cells(
    archive: zipfile.ZipFile, blob: Blob, ctx: Context, sheets: list[tuple[str, bytes]]
) -> Problem | None:
    """Refuse sheets whose bounding box would make calamine allocate too many cells. With
    `Context.cells_gate`, each worksheet's name and XML go to `sheets` instead, bounded
    after the candidate-first digest (`_digested`), which proves most bounds on its way."""
    limit = ctx.limits.max_table_cells
    for info in archive.infolist():
        name = info.filename
        if (
            not (name.startswith("xl/worksheets/") and name.endswith(".xml"))
            and name != "content.xml"
        ):
            continue
        ctx.check_time()
        with archive.open(info) as handle:
            xml = handle.read(ctx.limits.max_member_bytes)  # sizes were vetted by check_package
        if name == "content.xml":
            if any(int(r) > limit for r in _ODS_REPEAT.findall(xml)):
                # The worksheets before it first, in the order they would have been bounded.
                earlier = (_bound(x, blob, limit) for _, x in sheets)
                return next((p for p in earlier if p), None) or problem(
                    "limit", "sheet-size", blob, "repeated cells over the cell limit"
                )
            continue
        if ctx.cells_gate is not None:  # bounded after the digest, which proves most bounds
            sheets.append((name, xml))
            continue
        issue = _bound(xml, blob, limit)
        if issue is not None:
            return issue
        if ctx.prefix_rows is not None:  # kept for the first rows
            sheets.append((name, xml))
    return None


def _digested(
    archive: zipfile.ZipFile,
    blob: Blob,
    ctx: Context,
    gate: Callable[[CellDigest], bool],
    sheets: list[tuple[str, bytes]],
) -> Extracted | None:
    """With `Context.cells_gate`: an empty reading when the digest shows that no detector
    could find anything in the cells, a problem when a sheet is over the cell limit, None
    when calamine must read the workbook."""
    limit = ctx.limits.max_table_cells
    skip = cells.unread(archive, sheets, ctx, gate, lambda xml: sheet_extent(xml, limit))
    if skip:
        _log.debug("sheet_cells_not_read")
        return Extracted()
    for _, xml in sheets:
        ctx.check_time()
        issue = _bound(xml, blob, limit)
        if issue is not None:
            return Extracted(problems=(issue,))
    return None


def read_sheets(blob: Blob, ctx: Context) -> Extracted:
    """Every sheet (hidden ones too) of an XLSX/XLSM/ODS file as tables, header row kept.

    With `Context.cells_gate` (the relay), the workbook's raw parts are digested first
    (`cells.unread`); when no detector could find anything in them, no table is built."""
    archive, issue = zipsafe.open_zip(blob, ctx)
    if archive is None:
        return Extracted(problems=(issue,) if issue else ())
    sheets: list[tuple[str, bytes]] = []
    issue = zipsafe.check_package(archive, blob, ctx) or _dense_cells(archive, blob, ctx, sheets)
    if issue is not None:
        return Extracted(problems=(issue,))
    if ctx.cells_gate is not None and sheets:
        done = _digested(archive, blob, ctx, ctx.cells_gate, sheets)
        if done is not None:
            sheets.clear()
            return done
    if ctx.prefix_rows is not None and sheets:
        return _read_first_rows(archive, blob, ctx, sheets)
    sheets.clear()  # calamine inflates the sheets again; hold one copy at a time
    return _going_on(read_workbook(blob, ctx), blob, ctx)


def _going_on(result: Extracted, blob: Blob, ctx: Context) -> Extracted:
    """A prefix whose whole reading skips the package checks already passed."""
    return replace(result, rest=lambda: read_workbook(blob, ctx)) if result.cut else result


def _read_first_rows(
    archive: zipfile.ZipFile, blob: Blob, ctx: Context, sheets: list[tuple[str, bytes]]
) -> Extracted:
    """The relay's row prefix of a one-sheet workbook: calamine reads the sheet cut before
    its first row numbered `bound_for(prefix_rows)` (`firstrows`), else the whole book."""
    assert ctx.prefix_rows is not None
    bound = firstrows.bound_for(ctx.prefix_rows)
    book = firstrows.first_rows_book(archive, sheets, bound)
    sheets.clear()
    if book is not None:
        result = read_workbook(replace(blob, data=book), ctx, rows_below=bound - 1)
        if all(p.kind == "limit" for p in result.problems):
            return _going_on(result, blob, ctx)  # the whole reading: the sender's own book
        # calamine refused the rebuilt book: read the sender's own (and report on it).
    return _going_on(read_workbook(blob, ctx), blob, ctx)


def read_workbook(blob: Blob, ctx: Context, rows_below: int | None = None) -> Extracted:
    """Read an already vetted workbook (XLSX, XLSM, ODS or BIFF XLS) with calamine.

    `rows_below` (a book of one sheet cut by `firstrows`): only the sheet's first
    `rows_below` rows are the whole sheet's; the result is a prefix (`Extracted.cut`)."""
    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(blob.data))
    except PasswordError:
        return Extracted(encrypted=True, problems=(problem("encrypted", "encrypted-office", blob),))
    except CalamineError as exc:
        return Extracted(problems=(problem("malformed", "bad-sheet", blob, type(exc).__name__),))
    builder = TableBuilder(blob, ctx)
    left = ctx.prefix_rows  # the relay's row prefix: rows still to read (None: all of them)
    cut = False
    try:
        for meta in workbook.sheets_metadata:
            if meta.typ not in (SheetTypeEnum.WorkSheet, SheetTypeEnum.DialogSheet):
                continue
            if left is not None and left <= 0:
                cut = True  # the prefix is complete; this sheet and the rest are not read
                break
            ctx.check_time()
            sheet = workbook.get_sheet_by_name(meta.name)
            nrows = ctx.limits.max_table_rows + 1
            rows = sheet.to_python(
                skip_empty_area=False, nrows=nrows if left is None else min(nrows, left + 1)
            )
            if left is not None:
                cut = len(rows) > left  # the first rows of what reading all of them gives
                rows = rows[:left]
                left -= len(rows)
            if rows_below is not None:
                cut, rows = True, rows[:rows_below]
            builder.add_matrix(cell_text(meta.name), rows)
    except PasswordError:
        return Extracted(encrypted=True, problems=(problem("encrypted", "encrypted-office", blob),))
    except CalamineError as exc:
        builder.problems.append(problem("malformed", "bad-sheet", blob, type(exc).__name__))
    finally:
        workbook.close()
    return Extracted(
        text=builder.render(),
        tables=tuple(builder.tables),
        problems=tuple(builder.problems),
        cut=cut,
    )
