"""A workbook cut to its first rows, for the relay's row prefix (`Context.prefix_rows`).

python-calamine reads a whole worksheet before it hands out a single row (~0.4 s for the
50,000-row customer list, most of that file's reading). When the relay only needs the first
rows, each worksheet's XML is cut before its first row numbered `bound` or more and the
workbook rebuilt (stored, no compression) for calamine to read: ~20 ms.

The cut is only made when it provably gives calamine's first `bound - 1` rows of the whole
sheet. calamine places a cell by its own ``r`` reference (a row element's ``r`` for a cell
without one, the next row for a row without one: positions only move forward), so rows
below `bound` are complete in the cut when every reference after it names a row of at least
`bound` (cells before the cut that name a row of `bound` or more land in rows the reader
never takes: it keeps `bound - 1` rows). That is checked on the raw bytes, with C-level
searches only: every row element before the cut carries a row number below `bound`, and
after the cut (to the end of
``sheetData``) attributes are written ``name="…"`` with one space before the name (no tab,
line break, single quote or space around ``=``), every ``r="`` follows a space and holds a
reference in capital letters to a row of `bound` or more (``bound`` a power of ten, so "at
least as many digits, no leading zero"). Anything else keeps the worksheet whole.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Sequence
from functools import lru_cache

_ROW_TAG = re.compile(rb"<((?:\w+:)?)row[\s>/]")
_ROW_NUMBER = re.compile(rb'\sr="([1-9][0-9]{0,6})"')
_SHEET_DATA = re.compile(rb"<((?:\w+:)?)sheetData[\s>]")
_WORKSHEET = re.compile(rb"<((?:\w+:)?)worksheet[\s>]")


def bound_for(rows: int) -> int:
    """The smallest power of ten (at least 10) not below `rows`: the cut keeps rows below it."""
    bound = 10
    while bound < rows:
        bound *= 10
    return bound


@lru_cache(maxsize=8)
def _unsafe_r(digits: int) -> re.Pattern[bytes]:
    """An ``r="`` not after a space, or not a reference to a row with ≥ `digits` digits."""
    return re.compile(rb'r="(?:(?<! r=")|(?![A-Z]{0,3}[1-9][0-9]{%d,6}"))' % (digits - 1))


def cut_sheet(xml: bytes, bound: int) -> bytes | None:
    """The worksheet without its rows numbered `bound` or more, the same XML when it has
    none, or None when the cut cannot be proven to keep calamine's rows below `bound`."""
    start = _SHEET_DATA.search(xml)
    root = _WORKSHEET.search(xml)
    if start is None or root is None:
        return xml if start is None else None
    cut = -1
    for row in _ROW_TAG.finditer(xml, start.end()):
        end = xml.find(b">", row.end() - 1)
        number = _ROW_NUMBER.search(xml, row.start(), end + 1)
        if end < 0 or number is None:
            return None  # a row without its number: where it lands is not read here
        if int(number.group(1)) >= bound:
            cut = row.start()
            break
    if cut < 0:
        return xml
    close = xml.rfind(b"sheetData>")
    close = close if close > cut else len(xml)
    # Searched in place (no copy of the ~30 MB that follows): one byte first (memchr).
    if any(xml.find(byte, cut, close) >= 0 for byte in (b"'", b"\t", b"\n", b"\r")):
        return None
    if xml.count(b"=", cut, close) != xml.count(b'="', cut, close):
        return None  # some "=" not directly followed by '"'
    if xml.find(b" =", cut, close) >= 0 or _unsafe_r(len(str(bound))).search(xml, cut, close):
        return None
    data, sheet = start.group(1), root.group(1)
    return xml[:cut] + b"</" + data + b"sheetData></" + sheet + b"worksheet>"


_SHEET_PARTS = re.compile(r"xl/(?:worksheets|dialogsheets|macrosheets|chartsheets)/[^/]+\.xml")


def first_rows_book(
    archive: zipfile.ZipFile, sheets: Sequence[tuple[str, bytes]], bound: int
) -> bytes | None:
    """The workbook with its one worksheet (name, XML) cut by `cut_sheet`, stored; None
    when it is not cut or cannot be, or the workbook has any other sheet (which sheet comes
    first is then the workbook's order, not read here: the reader would have to stop right
    after the cut one)."""
    parts = [i.filename for i in archive.infolist() if _SHEET_PARTS.fullmatch(i.filename)]
    if len(sheets) != 1 or len(parts) != 1 or parts[0] != sheets[0][0]:
        return None
    name, xml = sheets[0]
    cut = cut_sheet(xml, bound)
    if cut is None or cut is xml:
        return None
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as book:
        for info in archive.infolist():
            body = cut if info.filename == name else archive.read(info)
            book.writestr(info.filename, body)
    return out.getvalue()
