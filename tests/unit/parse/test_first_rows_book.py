"""`parse.extract.firstrows`: a one-sheet workbook cut before its first row numbered `bound`
for calamine to read its first rows only (the relay's row prefix). The cut must give the
first rows of reading the whole sheet — whatever order, spelling or placement the cell
references take — and refuse (keep the sheet whole) wherever that is not proven."""

from __future__ import annotations

import io
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sendguard.model import Table
from sendguard.parse.context import Blob, Context, Extracted
from sendguard.parse.extract import firstrows
from sendguard.parse.extract.sheets import read_sheets
from sendguard.parse.limits import ParseLimits
from tests.support.attachments import xlsx

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_HEAD = b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
_HEAD += b'<dimension ref="A1:C900"/><sheetData>'
_TAIL = b'</sheetData><pageMargins left="0.75" right="0.75" header="0.5" footer="0.5"/>'
_TAIL += b"</worksheet>"


def _book(sheet_xml: bytes) -> bytes:
    """A real workbook (openpyxl's parts) with this worksheet XML."""
    source = zipfile.ZipFile(io.BytesIO(xlsx({"S": [["a"]]})))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as book:
        for info in source.infolist():
            name = info.filename
            book.writestr(name, sheet_xml if name.endswith("sheet1.xml") else source.read(info))
    return out.getvalue()


def _cell(ref: str | None, value: str, quote: str = '"', eq: str = "=") -> bytes:
    at = "" if ref is None else f" r{eq}{quote}{ref}{quote}"
    return f'<c{at} t="inlineStr"><is><t>{value}</t></is></c>'.encode()


def _row(number: int | None, cells: bytes) -> bytes:
    at = b"" if number is None else b' r="%d"' % number
    return b"<row" + at + b">" + cells + b"</row>"


def _plain(rows: int, start: int = 1) -> bytes:
    return b"".join(
        _row(n, _cell(f"A{n}", f"n{n}") + _cell(f"C{n}", "090-1234-5678"))
        for n in range(start, start + rows)
    )


def _read(book: bytes, cap: int | None) -> Extracted:
    ctx = Context.start(ParseLimits())
    ctx.prefix_rows = cap
    return read_sheets(Blob(book, ("attachment 1",), XLSX, "b.xlsx"), ctx)


def _is_prefix(cut: Extracted, whole: Extracted) -> None:
    if not whole.tables:  # calamine refuses the sheet: the same refusal either way
        assert cut == whole
        return
    [table] = cut.tables or (Table("S", ()),)
    [full] = whole.tables
    assert table.rows == full.rows[: len(table.rows)]
    lines = cut.text.split("\n")
    assert lines == whole.text.split("\n")[: len(lines)]


def test_an_ordinary_sheet_is_cut_and_gives_the_first_rows() -> None:
    xml = _HEAD + _plain(150) + _TAIL
    cut = firstrows.cut_sheet(xml, 100)
    assert cut is not None and cut is not xml and b'r="100"' not in cut
    book = _book(xml)
    assert firstrows.first_rows_book(zipfile.ZipFile(io.BytesIO(book)), [], 100) is None
    first, whole = _read(book, 100), _read(book, None)
    assert first.cut and not whole.cut
    assert len(first.tables[0].rows) == 99  # rows 1..99: below the bound
    _is_prefix(first, whole)


def test_openpyxl_books_with_shared_strings_are_cut_alike() -> None:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for n in range(300):
        sheet.append([f"山田 {n}", f"090-1234-{n:04d}", n * 1.5, None, "東京都"])
    out = io.BytesIO()
    workbook.save(out)
    book = out.getvalue()
    archive = zipfile.ZipFile(io.BytesIO(book))
    sheets = [(n, archive.read(n)) for n in archive.namelist() if "worksheets/" in n]
    assert firstrows.first_rows_book(archive, sheets, 100) is not None
    first, whole = _read(book, 20), _read(book, None)
    assert first.cut and len(first.tables[0].rows) == 20
    _is_prefix(first, whole)


@pytest.mark.parametrize(
    "later",
    [
        _row(150, _cell("A5", "moved back")),  # a cell of an early row written late
        _row(150, _cell("A0050", "leading zero")),
        _row(150, _cell("a150", "lower case")),
        _row(150, _cell("$A$150", "absolute")),
        _row(150, _cell("A5", "single quotes", quote="'")),
        _row(150, _cell("A5", "spaces", eq=" = ")),
        _row(150, _cell("A5", "space before", eq=" =")),
        _row(150, b'<c t="inlineStr"r="A5"><is><t>glued</t></is></c>'),
        _row(150, b'<c\tr="A5" t="inlineStr"><is><t>tab</t></is></c>'),
        _row(150, b'<c\nr="A5" t="inlineStr"><is><t>newline</t></is></c>'),
        b'<row r="5">' + _cell(None, "row moved back") + b"</row>",
    ],
)
def test_a_reference_after_the_cut_that_may_land_below_it_keeps_the_sheet_whole(
    later: bytes,
) -> None:
    xml = _HEAD + _plain(120) + later + _TAIL
    assert firstrows.cut_sheet(xml, 100) is None
    book = _book(xml)
    first, whole = _read(book, 20), _read(book, None)
    _is_prefix(first, whole)  # read whole by calamine, then its first rows


def test_rows_without_numbers_before_the_cut_keep_the_sheet_whole() -> None:
    xml = _HEAD + _plain(10) + _row(None, _cell(None, "x")) + _plain(120, start=12) + _TAIL
    assert firstrows.cut_sheet(xml, 100) is None


def test_a_sheet_below_the_bound_is_not_rebuilt() -> None:
    xml = _HEAD + _plain(50) + _TAIL
    assert firstrows.cut_sheet(xml, 100) is xml


def test_two_sheets_are_never_rebuilt() -> None:
    rows = [[f"n{n}", "090-1234-5678"] for n in range(150)]
    book = xlsx({"A": rows, "B": rows})
    archive = zipfile.ZipFile(io.BytesIO(book))
    sheets = [(n, archive.read(n)) for n in archive.namelist() if "worksheets/" in n]
    assert firstrows.first_rows_book(archive, sheets, 100) is None
    first, whole = _read(book, 20), _read(book, None)
    assert first.tables[0].rows == whole.tables[0].rows[:20] and len(first.tables) == 1


_REFS = st.one_of(
    st.none(),
    st.tuples(st.sampled_from(["A", "B", "C", "a", "$A$", "AA"]), st.integers(1, 260)).map(
        lambda t: f"{t[0]}{t[1]}"
    ),
    st.sampled_from(["A05", "B0120", "C1", "A099", "A100", "B101", ""]),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(1, 260)),
            st.lists(
                st.tuples(_REFS, st.sampled_from(['"', "'"]), st.sampled_from(["=", " = "])),
                max_size=3,
            ),
        ),
        max_size=40,
    ),
    st.integers(1, 150),
    st.booleans(),
)
def test_any_sheet_read_first_rows_is_a_prefix_of_the_whole(
    rows: list[tuple[int | None, list[tuple[str | None, str, str]]]], cap: int, first: bool
) -> None:
    """Rows and cells in any order, with or without numbers, in any spelling calamine
    takes: what the relay reads first is the start of the whole reading."""
    body = b"".join(
        _row(number, b"".join(_cell(ref, f"v{i}", q, eq) for i, (ref, q, eq) in enumerate(cells)))
        for number, cells in rows
    )
    # Long ordinary rows, so that a cut is possible at all; the odd ones before or after.
    book = _book(_HEAD + (body + _plain(120) if first else _plain(120) + body) + _TAIL)
    whole = _read(book, None)
    if whole.problems:
        return  # calamine refuses this spelling: the relay reads it whole and reports the same
    _is_prefix(_read(book, cap), whole)


def test_cells_after_the_cut_further_left_or_up_do_not_shift_the_first_rows() -> None:
    """The whole sheet's range starts at column A only because of a cell after the cut:
    calamine places rows from A1 either way (`skip_empty_area=False`)."""
    kept = b"".join(_row(n, _cell(f"C{n}", f"c{n}")) for n in range(3, 130))
    later = _row(150, _cell("A150", "left")) + _row(151, _cell("B1500", "far"))
    xml = _HEAD + kept + later + _TAIL
    assert firstrows.cut_sheet(xml, 100) is not None
    book = _book(xml)
    first, whole = _read(book, 20), _read(book, None)
    assert first.cut and first.tables[0].rows[2] == ("", "", "c3")
    _is_prefix(first, whole)
