"""The one-pass sheet digest (`cells._fast_sheet`) and the cheaper proofs behind the ledger's
100 ms target must say exactly what the passes before them said.

- `_fast_sheet` accepts a worksheet only where the check-by-check path (`_checked_sheet`:
  the passes as they were) accepts it too, with the same texts and counts, and where
  `sheets.sheet_extent` finds fewer than 100,000 rows and the columns it returns: random
  and hostile sheets (escapes, CDATA, rich text, prefixes, odd attribute orders, formulas,
  booleans, errors, formula strings, big and wide references, junk between elements);
  on the shapes writers produce it must be taken (else it is dead code).
- `pii.cells._LONG_RUN` and `_POSTAL` find the same as the patterns they replace, and
  `cells._texts` refuses the same bad references as per text.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from sendguard.detect.pii import cells as pii_cells
from sendguard.parse.extract import cells, sheets
from sendguard.parse.limits import ParseLimits
from tests.support.attachments import xlsx

PLAIN, DATED, SHARED = frozenset({b"0"}), frozenset({b"1"}), 3
STRUCTURE = cells._structure(PLAIN, DATED, SHARED)
ODD_CELL = cells._odd_cell(PLAIN, DATED)
LIMIT = ParseLimits().max_table_cells
HEAD = (
    b'<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml'
    b'/2006/main"><dimension ref="A1:H9"/><sheetViews><sheetView workbookViewId="0"/>'
    b'</sheetViews><sheetFormatPr defaultRowHeight="15"/><cols><col min="1" max="2"/></cols>'
)
TAIL = b'<pageMargins left="0.7" right="0.7" header="0.3" footer="0.3"/></worksheet>'

_VALID = [
    '<c r="{r}" t="inlineStr"><is><t>abc</t></is></c>',
    '<c r="{r}" t="inlineStr"><is><t>&#20253;&#31080; M8</t></is></c>',
    '<c r="{r}" t="inlineStr"><is><t xml:space="preserve"> a b </t></is></c>',
    '<c r="{r}" s="1" t="inlineStr"><is><t>x&amp;y</t></is></c>',
    '<c r="{r}" t="inlineStr"><is><t></t></is></c>',
    '<c r="{r}" t="inlineStr"><is><t>S0001234</t></is></c>',
    '<c r="{r}" t="inlineStr"><is><t>090-1234-5678</t></is></c>',
    '<c r="{r}" t="n"><v>123</v></c>',
    '<c r="{r}"><v>-1.5</v></c>',
    '<c r="{r}" s="0"><v>1.234567</v></c>',
    '<c r="{r}" s="0" t="n"><v>999999999</v></c>',
    '<c r="{r}"><v>1.5e-05</v></c>',
    '<c r="{r}" s="1"><v>46000.5</v></c>',
    '<c r="{r}" s="1" t="n"><v>0.354166666666667</v></c>',
    '<c r="{r}" t="s"><v>0</v></c>',
    '<c r="{r}" s="0" t="s"><v>2</v></c>',
    '<c r="{r}" s="1" t="s"><v>1</v></c>',
    '<c r="{r}"/>',
    '<c r="{r}" s="1"/>',
    '<c r="{r}" t="inlineStr"></c>',
    '<c r="{r}" s="0" t="s"></c>',
]
_ODD = [
    '<c r="{r}" t="str"><f>A1</f><v>x</v></c>',
    '<c r="{r}"><f>1+1</f><v>2</v></c>',
    '<c r="{r}" t="b"><v>1</v></c>',
    '<c r="{r}" t="e"><v>#N/A</v></c>',
    '<c r="{r}" t="d"><v>2020-01-01</v></c>',
    '<c r="{r}" t="n" s="0"><v>5</v></c>',
    '<c r="{r}" s="2"><v>5</v></c>',
    '<c r="{r}" s="1"><v>-1</v></c>',
    '<c r="{r}"><v>1234567890</v></c>',
    '<c r="{r}"><v>0.0312345678</v></c>',
    '<c r="{r}"><v>1.5E-3</v></c>',
    '<c r="{r}" t="s"><v>3</v></c>',
    '<c r="{r}" t="s"><v>01</v></c>',
    '<c r="{r}" t="inlineStr"><is><r><t>a</t></r><r><t>b</t></r></is></c>',
    '<c r="{r}" t="inlineStr"><is><t>a</t><rPh sb="0" eb="1"><t>ア</t></rPh></is></c>',
    '<c r="{r}" t="inlineStr"><is><t><![CDATA[x]]></t></is></c>',
    '<c r="{r}" t="inlineStr"><is><t>_x0041_</t></is></c>',
    '<c r="{r}" t="inlineStr"><is><t>r="AB12"</t></is></c>',
    '<c r="{r}" t="inlineStr"><is><t>x r="A1234567" y</t></is></c>',
    '<c r="{r}" t="inlineStr"><is><t>a:c b</t></is></c>',
    '<c r="{r}" t="inlineStr"><is><t>a</t></is><v>090-1234-5678</v></c>',
    '<c r="{r}" t="inlineStr"><is><t>a</t></is>',
    '<x:c r="{r}"><x:v>1</x:v></x:c>',
    '<c  r="{r}"><v>1</v></c>',
    "<c r='{r}'><v>1</v></c>",
    '<c r="{r}" ><v>1</v></c>',
    "<c><v>1</v></c>",
    '<c r="{r}"><v> 1</v></c>',
]
_REFS = ["A{n}", "H{n}", "Z{n}", "AB{n}", "XFD{n}"]
_ROWS = [
    '<row r="{n}">',
    '<row r="{n}" spans="1:8" x14ac:dyDescent="0.25">',
    '<row r="{n}" customFormat="false" ht="12.8" hidden="false" outlineLevel="0">',
]
_ODD_ROWS = ['<row r="{n}" spr="1234567">', "<row>", '<row r="1234567">', '<row  r="{n}">']
_JUNK = ["\n  ", "<extLst/>", "<!-- c -->", "<![CDATA[x]]>", "</t></is></c>", "<t>", "<is>"]
_HEADS = [HEAD, HEAD + b'<c r="A1"><v>1</v></c>', HEAD.replace(b"H9", b'H9" r="A1234567')]
_TAILS = [TAIL, b'<hyperlinks><hyperlink ref="A1" r:id="rId1"/></hyperlinks>' + TAIL,
          b'<foo r="AB1"/>' + TAIL, b"<is><t>x</t></is>" + TAIL]  # fmt: skip


@st.composite
def _sheet(draw: st.DrawFn, *, odd: bool) -> bytes:
    """A worksheet of rows and cells in `_VALID` shapes, or (`odd`) any mix of those, odd
    shapes, rows, references and junk."""
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        n = draw(
            st.sampled_from([1, 2, 9, 99_999, 100_000, 26_001]) if odd else st.integers(1, 99_999)
        )
        tag = draw(st.sampled_from(_ROWS + _ODD_ROWS if odd else _ROWS)).format(n=n)
        row = [tag]
        for _ in range(draw(st.integers(0, 5))):
            shape = draw(st.sampled_from(_VALID + _ODD if odd else _VALID))
            ref = draw(st.sampled_from(_REFS if odd else _REFS[:3])).format(n=n)
            row.append(shape.format(r=ref))
        row.append("</row>" if draw(st.booleans()) or not odd else "")
        rows.append(row)
    if odd and rows and draw(st.booleans()):
        row = draw(st.sampled_from(rows))
        row.insert(draw(st.integers(0, len(row))), draw(st.sampled_from(_JUNK)))
    inside = "".join("".join(r) for r in rows).encode()
    head = draw(st.sampled_from(_HEADS)) if odd else HEAD
    tail = draw(st.sampled_from(_TAILS)) if odd else TAIL
    return head + b"<sheetData>" + inside + b"</sheetData>" + tail


def _agrees(xml: bytes) -> bool:
    """True when the fast pass took the sheet (and said what the passes before it say)."""
    fast = cells._fast_sheet(xml, STRUCTURE, ODD_CELL)
    if fast is False:  # stopped at a row or cell the checks refuse
        assert cells._checked_sheet(xml, ODD_CELL, SHARED) is None
    if not fast:
        return False
    texts, cols = fast
    assert cells._checked_sheet(xml, ODD_CELL, SHARED) == texts
    assert cells._inline_texts(xml) == texts
    rows, extent_cols = sheets.sheet_extent(xml, LIMIT)
    assert rows < 100_000
    assert extent_cols == cols
    return True


@settings(max_examples=1500, deadline=None)
@given(_sheet(odd=True))
def test_what_the_fast_pass_accepts_every_check_accepts_with_the_same_texts(xml: bytes) -> None:
    _agrees(xml)


@settings(max_examples=300, deadline=None)
@given(_sheet(odd=False))
def test_the_shapes_writers_write_take_the_fast_pass(xml: bytes) -> None:
    assert _agrees(xml)


def test_each_odd_shape_leaves_the_fast_pass() -> None:
    """Each shape outside `_VALID`, alone in a sheet, goes to the checks one by one."""
    for shape in _ODD:
        cell = shape.format(r="B2").encode()
        xml = HEAD + b'<sheetData><row r="2">' + cell + b"</row></sheetData>" + TAIL
        assert not cells._fast_sheet(xml, STRUCTURE, ODD_CELL), shape
    for row in _ODD_ROWS:
        xml = HEAD + b"<sheetData>" + row.format(n=2).encode() + b"</row></sheetData>" + TAIL
        assert not cells._fast_sheet(xml, STRUCTURE, ODD_CELL), row
    for head in _HEADS[1:]:
        xml = head + b"<sheetData></sheetData>" + TAIL
        assert cells._fast_sheet(xml, STRUCTURE, ODD_CELL) is None
    for tail in _TAILS[1:]:
        taken = _agrees(HEAD + b"<sheetData></sheetData>" + tail)
        assert taken == (b"hyperlink" in tail)


def test_a_totals_row_formula_is_refused_where_the_pass_stops() -> None:
    rows = "".join(f'<row r="{n}"><c r="A{n}"><v>{n}</v></c></row>' for n in range(1, 50))
    total = '<row r="50"><c r="A50"><f>SUM(A1:A49)</f><v>1225</v></c></row>'
    xml = HEAD + f"<sheetData>{rows}{total}</sheetData>".encode() + TAIL
    assert cells._fast_sheet(xml, STRUCTURE, ODD_CELL) is False
    assert cells._checked_sheet(xml, ODD_CELL, SHARED) is None
    xml = xml.replace(b"<f>SUM(A1:A49)</f>", b"")
    assert cells._fast_sheet(xml, STRUCTURE, ODD_CELL) == (Counter(), 26)


def test_writers_files_take_the_fast_pass() -> None:
    """openpyxl's write-only (inline strings, the bench's ledgers) and ordinary writer
    (shared strings, styles with a date format)."""
    import datetime

    rows = [
        ["伝票番号", "日付", "数量"],
        *[[f"S{n:07d}", datetime.date(2026, 4, 1), n] for n in range(50)],
    ]
    book = zipfile.ZipFile(io.BytesIO(xlsx({"S": rows})))
    xml = book.read("xl/worksheets/sheet1.xml")
    from sendguard.parse.context import Context

    names = set(book.namelist())
    plain, dated = cells._styles(book, names, Context.start(ParseLimits()))
    assert dated
    odd_cell = cells._odd_cell(plain, dated)
    found = cells._fast_sheet(xml, cells._structure(plain, dated, 0), odd_cell)
    assert found
    assert found[0][b"S0000049"] == 1
    assert cells._checked_sheet(xml, cells._odd_cell(plain, dated), 0) == found[0]

    import xlsxwriter  # python-pptx's dependency: Excel's own shapes, shared strings

    out = io.BytesIO()
    workbook = xlsxwriter.Workbook(out, {"in_memory": True})
    sheet = workbook.add_worksheet()
    date = workbook.add_format({"num_format": "yyyy/m/d"})
    for n, (code, day, number) in enumerate(rows):
        sheet.write(n, 0, code)
        sheet.write(n, 1, day, date) if n else sheet.write(n, 1, day)
        sheet.write(n, 2, number)
    workbook.close()
    book = zipfile.ZipFile(out)
    xml = book.read("xl/worksheets/sheet1.xml")
    plain, dated = cells._styles(book, set(book.namelist()), Context.start(ParseLimits()))
    assert dated
    count = len(re.findall(rb"<si>", book.read("xl/sharedStrings.xml")))
    odd_cell = cells._odd_cell(plain, dated)
    found = cells._fast_sheet(xml, cells._structure(plain, dated, count), odd_cell)
    assert found
    assert found == (cells._checked_sheet(xml, cells._odd_cell(plain, dated), count), 26)
    assert cells._fast_sheet(xml, cells._structure(plain, dated, count - 1), odd_cell) is None


@settings(max_examples=500, deadline=None)
@given(st.integers(1, 10**9), st.integers(0, 10**9 + 5))
def test_below_matches_exactly_the_indices_below_the_count(count: int, index: int) -> None:
    pattern = re.compile(cells._below(count))
    assert bool(pattern.fullmatch(str(index).encode())) == (index < count)
    assert not pattern.fullmatch(b"0" + str(index).encode())
    assert pattern.fullmatch(str(count - 1).encode())
    assert not pattern.fullmatch(str(count).encode())


_DIGITS = st.text(alphabet="0123456789 -()a\n１", max_size=40)


@settings(max_examples=2000, deadline=None)
@given(_DIGITS)
def test_the_run_and_postal_patterns_find_what_they_replace(text: str) -> None:
    long_run = re.compile(r"[0-9](?:[ \-()]*+[0-9]){9}")
    postal = re.compile(r"[0-9]{3}-[0-9]{4}")
    assert bool(pii_cells._LONG_RUN.search(text)) == bool(long_run.search(text))
    assert bool(pii_cells._POSTAL.search(text)) == bool(postal.search(text))


def _texts_per_chunk(chunks: list[bytes]) -> list[str] | None:
    """`cells._texts` as it was: the bad-reference search on each text alone."""
    if any(cells._BAD_REFERENCE.search(chunk) for chunk in chunks if b"&" in chunk):
        return None
    return cells._texts(chunks) if chunks else []


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.text(alphabet="&#x;amplt0129AFz", max_size=12).map(str.encode), max_size=5))
def test_bad_references_are_refused_as_per_text(chunks: list[bytes]) -> None:
    assert cells._texts(chunks) == _texts_per_chunk(chunks)


def _read(book: bytes, *, gated: bool) -> tuple[object, ...]:
    from sendguard.parse.context import Blob, Context

    ctx = Context.start(ParseLimits())
    ctx.cells_gate = (lambda digest: False) if gated else None
    found = sheets.read_sheets(Blob(book, ("attachment 1",), "application/octet-stream"), ctx)
    return tuple((p.code, p.detail) for p in found.problems)


def test_the_bomb_bound_after_the_digest_reports_what_it_reported_before() -> None:
    """With the gate the bound runs after the digest: a sheet over the cell limit (its own
    cell far out, or a second sheet the workbook does not list) gives the same problem."""
    book = xlsx({"S": [["abc", 1], [2, 3]]})
    far = _book_with(book, b'<c r="B2" t="n"><v>3</v></c>', b'<c r="XFD99999"><v>3</v></c>')
    assert _read(far, gated=True) == _read(far, gated=False) != ()
    assert _read(book, gated=True) == ()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(book)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info.filename))
        target.writestr("xl/worksheets/sheet9.xml", zipfile.ZipFile(io.BytesIO(far)).read(
            "xl/worksheets/sheet1.xml"))  # fmt: skip
    assert _read(out.getvalue(), gated=True) == _read(out.getvalue(), gated=False) != ()


def _book_with(book: bytes, old: bytes, new: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(book)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                assert old in data
                data = data.replace(old, new)
            target.writestr(info.filename, data)
    return out.getvalue()
