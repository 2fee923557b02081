"""Candidate-first for workbooks (`parse.extract.cells`, `Context.cells_gate`): the relay
does not read an XLSX's cells when no detector could find anything in what they can
render to. It must be a superset: with the gate, every workbook gives exactly the findings
it gives without it — every evaluation case as a real XLSX, random sheets mixing the shapes
the proof is about — and the gate must say "maybe" wherever its model ends."""

from __future__ import annotations

import datetime
import io
import random
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sendguard.detect.base import DetectContext
from sendguard.detect.pii import records
from sendguard.detect.pii.cells import cells_may_hold
from sendguard.detect.registry import Detectors, build, cells_gate, run_content
from sendguard.inspect import detect_context
from sendguard.model import CellDigest, Envelope, Finding
from sendguard.parse import parse_message
from sendguard.parse.context import Context
from sendguard.parse.extract import cells, sheets
from sendguard.parse.limits import ParseLimits
from sendguard.policy.load import load_policy
from tests.eval.evaluate import all_cases
from tests.support.attachments import Attachment, build_message, xlsx

from .numbers import luhn_complete, my_number

SHIPPED = Path(__file__).resolve().parents[3] / "policies"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
LIMITS = ParseLimits()
ENVELOPE = Envelope("yamada@example.co.jp", ("sato@customer.example",))


_BUILT: list[Detectors] = []
CTX: dict[int, DetectContext] = {}


def _shipped() -> Detectors:
    if not _BUILT:
        policy = load_policy(SHIPPED)
        _BUILT.append(build(policy.detector_settings, enabled=policy.enabled_detectors()))
    return _BUILT[0]


@pytest.fixture
def detectors() -> Detectors:
    return _shipped()


def _ctx() -> DetectContext:
    return detect_context(ENVELOPE, load_policy(SHIPPED).organisation)


def _findings(raw: bytes, detectors: Detectors, *, gated: bool) -> list[Finding]:
    gate = cells_gate(detectors) if gated else None
    mail = parse_message(raw, LIMITS, cells_gate=gate)
    return list(run_content(detectors, mail, CTX[0] if CTX else CTX.setdefault(0, _ctx())))


def _message(book: bytes) -> bytes:
    attachment = Attachment("台帳.xlsx", book, XLSX)
    return build_message(to=[("", "sato@customer.example")], attachments=[attachment])


def _shared_strings_book(rows: Sequence[Sequence[object]]) -> bytes:
    """openpyxl's ordinary writer: shared strings, styles (the bench's files are inline)."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _unread(book: bytes, detectors: Detectors, limits: ParseLimits = LIMITS) -> bool:
    """What the gate decides for this workbook (True: its cells are not read)."""
    archive = zipfile.ZipFile(io.BytesIO(book))
    ctx = Context.start(limits)
    found: list[tuple[str, bytes]] = []
    for name in archive.namelist():
        if name.startswith("xl/worksheets/") and name.endswith(".xml"):
            found.append((name, archive.read(name)))
    limit = limits.max_table_cells
    extent = lambda xml: sheets.sheet_extent(xml, limit)  # noqa: E731
    return cells.unread(archive, found, ctx, cells_gate(detectors), extent)


def _value(cell: str) -> object:
    """Digit-only cells as numbers where a spreadsheet would keep them as numbers."""
    if cell.isdigit() and not cell.startswith("0") and len(cell) < 16:
        return int(cell)
    return cell


def test_every_evaluation_case_as_a_workbook_finds_the_same_with_and_without_the_gate(
    detectors: Detectors,
) -> None:
    skipped = 0
    cases = all_cases()
    for number, case in enumerate(cases):
        for part in case.mail.parts:
            if part.tables:
                rows = [[_value(c) for c in row] for t in part.tables for row in t.rows]
            else:
                rows = [[_value(line)] for line in part.text.splitlines()]
            if not rows:
                continue
            book = (xlsx if number % 2 else _shared_strings_book)({"Sheet1": rows})
            raw = _message(book)
            gated = _findings(raw, detectors, gated=True)
            assert gated == _findings(raw, detectors, gated=False), case.name
            skipped += _unread(book, detectors)
    assert skipped > len(cases) // 10, skipped  # the gate is taken on many


def _ledger(rows: int, extra: Sequence[object] = ()) -> list[list[object]]:
    rng = random.Random(5)
    sheet: list[list[object]] = [["伝票番号", "日付", "地域", "品目", "数量", "金額", "備考"]]
    for n in range(rows):
        sheet.append(
            [f"S{n:07d}", f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
             rng.choice(("関東", "北海道", "九州")), "ボルト M8", rng.randint(1, 500),
             rng.randint(100, 45_000_000), ""]
        )  # fmt: skip
    if extra:
        sheet[rows // 2] = [*sheet[rows // 2][:6], *extra]
    return sheet


def test_a_ledger_without_personal_data_is_decided_without_reading_its_cells(
    detectors: Detectors,
) -> None:
    book = xlsx({"売上明細": _ledger(2_000)})
    assert _unread(book, detectors)
    raw = _message(book)
    assert _findings(raw, detectors, gated=True) == _findings(raw, detectors, gated=False)
    mail = parse_message(raw, LIMITS, cells_gate=cells_gate(detectors))
    assert [p.text for p in mail.parts if p.is_attachment] == [""]


@pytest.mark.parametrize(
    "cell",
    [
        f"カード {luhn_complete('4', 16, random.Random(1))}",  # a label-free number of 16 digits
        f"個人番号 {my_number(random.Random(3))}",  # a label
        "sato@customer.example",  # an e-mail address
        "東京都千代田区丸の内1-1-1",  # a prefecture, then a municipality
        "100-0005",  # a postal code's shape
        "090 1234 5678",  # ten digits and more in one run
        "氏名",  # a header naming a person column
        "社外秘",  # a confidentiality marker
        9012345678,  # a number of 10 digits
    ],
)
def test_what_the_gate_must_call_maybe(cell: object, detectors: Detectors) -> None:
    book = xlsx({"売上明細": _ledger(300, [cell])})
    assert not _unread(book, detectors)
    raw = _message(book)
    assert _findings(raw, detectors, gated=True) == _findings(raw, detectors, gated=False)


@pytest.mark.parametrize("cell", [True, '=CONCATENATE("0","9")', 1.5e20])
def test_cells_outside_the_model_are_always_read(cell: object, detectors: Detectors) -> None:
    """Booleans, formulas and long numbers render in ways the model leaves out."""
    assert _unread(_shared_strings_book(_ledger(50)), detectors)  # the same book without
    assert not _unread(_shared_strings_book(_ledger(50, [cell])), detectors)


_DATE_FORMATS = (
    "yyyy/m/d", 'yyyy"年"m"月"d"日"', '[$-411]ggge"年"m"月"d"日"', "[$-411]ge.m.d;@",
    "m/d/yy h:mm", "h:mm AM/PM", "[h]:mm:ss", "yyyy-mm-dd hh:mm:ss", "mm:ss", "d-mmm-yy",
)  # fmt: skip
"""Custom date and time formats as Excel and LibreOffice write them (Japanese eras too)."""


def _formatted_book(
    rows: Sequence[Sequence[object]], formats: dict[int, str], header: Sequence[str] = ()
) -> bytes:
    """openpyxl's ordinary writer, column `i` of every row under number format `formats[i]`
    (an int: a built-in format id)."""
    import openpyxl
    from openpyxl.styles.numbers import BUILTIN_FORMATS

    book = openpyxl.Workbook()
    sheet = book.active
    if header:
        sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
        for column, code in formats.items():
            cell = sheet.cell(sheet.max_row, column + 1)
            cell.number_format = BUILTIN_FORMATS[code] if isinstance(code, int) else code
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _date_ledger(rows: int, header: Sequence[str]) -> bytes:
    """A sales ledger as offices keep it: a date column (every date and time format in
    turn, built-in ones by id), real date and time values, product names, amounts."""
    rng = random.Random(11)
    codes: list[int | str] = [*range(14, 23), 45, 46, 47, *_DATE_FORMATS]
    body = []
    for n in range(rows):
        day = datetime.datetime(2026, 1, 1) + datetime.timedelta(
            days=rng.randint(0, 400), seconds=rng.randint(0, 86_399)
        )
        when: object = (day, day.date(), day.time(), day - datetime.datetime(2026, 1, 1))[n % 4]
        amount = rng.randint(100, 4_000_000) / 8  # a short fraction in any writer
        body.append([f"S{n:07d}", when, "ボルト M8", rng.randint(1, 500), amount])
    return _formatted_book(body, {1: codes[rows % len(codes)]}, header)


@pytest.mark.parametrize(
    "header",
    [
        ("伝票番号", "日付", "品名", "数量", "金額"),
        ("伝票番号", "受注日", "商品名", "数量", "金額"),
        ("Order Number", "Date", "Item", "Qty", "Amount"),
    ],
)
@pytest.mark.parametrize("rows", [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53])
def test_ledgers_with_date_columns_and_product_headers_are_not_read(
    header: Sequence[str], rows: int, detectors: Detectors
) -> None:
    """Each built-in and custom date or time format (one per row count), under headers
    that name products and orders, not people: skipped, and nothing is found either way."""
    book = _date_ledger(rows, header)
    assert _unread(book, detectors)
    raw = _message(book)
    assert _findings(raw, detectors, gated=True) == _findings(raw, detectors, gated=False)


def test_date_cells_alone_find_nothing_whatever_their_value(detectors: Detectors) -> None:
    """Date-formatted numbers over the whole range the model admits (9 digits whole,
    fractions below 1,000,000): calamine's dates, times and durations hold nothing the
    detectors report without a label or a header (the proof's argument, `pii.cells`)."""
    rng = random.Random(13)
    values = [0, 1, 59, 60, 61, 2_958_465, 2_958_466, 999_999_999, 1e-05, 0.999999999]
    values += [rng.choice((rng.randint(0, 10**9 - 1), rng.random() * 10**rng.randint(0, 5)))
               for _ in range(400)]  # fmt: skip
    codes: list[int | str] = [*range(14, 23), 45, 46, 47, *_DATE_FORMATS]
    rows = [[value] * len(codes) for value in values]
    book = _formatted_book(rows, dict(enumerate(codes)))
    assert _unread(book, detectors)
    found = _findings(_message(book), detectors, gated=False)
    assert [f for f in found if "attachment 1" in f.where] == [], found


@pytest.mark.parametrize("code", [14, "yyyy/m/d", '[$-411]ggge"年"m"月"d"日"'])
def test_a_birth_date_column_is_still_read_and_found(code: int | str, detectors: Detectors) -> None:
    rows = [
        ["山田 太郎", datetime.date(1985, 4, 3), 3],
        ["佐藤 花子", datetime.date(1990, 1, 9), 1],
    ]
    book = _formatted_book(rows, {1: code}, ("氏名", "生年月日", "数量"))
    assert not _unread(book, detectors)
    raw = _message(book)
    found = _findings(raw, detectors, gated=True)
    assert found == _findings(raw, detectors, gated=False)
    assert any("birth" in f.message for f in found), found


@pytest.mark.parametrize(
    ("code", "value"),
    [
        ('0"日"', 3),  # literal text after a digit placeholder
        ('#,##0"円"', 1200),
        ('@"様"', 5),  # a text format with literal text
        ("[Red]yyyy/m/d", 46_000),  # a colour
        ("yyyy/m/d", -1),  # a negative date
    ],
)
def test_other_formats_and_negative_dates_are_always_read(
    code: str, value: int, detectors: Detectors
) -> None:
    book = _formatted_book([["S0000001", value]], {1: code})
    assert not _unread(book, detectors)
    assert _unread(_formatted_book([["S0000001", abs(value)]], {1: "yyyy/m/d"}), detectors)


def test_a_sheet_cut_at_the_text_limit_still_reports_the_cut(detectors: Detectors) -> None:
    limits = ParseLimits(max_part_text_chars=20_000)
    book = xlsx({"売上明細": _ledger(2_000)})
    assert not _unread(book, detectors, limits)
    mail = parse_message(_message(book), limits, cells_gate=cells_gate(detectors))
    assert any("text cut" in p.detail for p in mail.problems)


def test_a_detector_that_does_not_know_the_question_keeps_the_cells_read() -> None:
    class Unknown:
        reads_parts = True

        def cells_matter(self, digest: CellDigest) -> bool:
            return True

    gate = cells_gate(Detectors(content=(Unknown(),), network=()))  # type: ignore[arg-type]
    assert gate(CellDigest(texts=frozenset({"harmless"}), number_digits=9))


_PIECES = st.sampled_from(
    [
        "S0001234", "2026-04-01", "関東", "北海道", "東京都", "東京都港区芝公園4-2-8",
        "大阪府大阪市北区梅田1-1-1", "100-0005", "〒100-0005", "090-1234-5678", "0312345678",
        "03 1234 5678", "tanaka@example.jp", "個人番号", "伝票番号", "口座番号 1234567",
        "生年月日 1985年4月3日", "TEL", "Tel: 03-1234-5678", "氏名", "名", "山田 太郎",
        "佐藤花子様",
        "社外秘", "Confidential", "有効期限 12/28", "T1234567890123", "1234567", "12345678",
        "ボルト M8", "至急", "", " ", "\u3000", "－", "１２３４５６７８９０",
        luhn_complete("4", 16, random.Random(2)), my_number(random.Random(4)),
    ]
)  # fmt: skip
_CELLS = st.one_of(
    _PIECES,
    st.builds(lambda a, b: a + b, _PIECES, _PIECES),
    st.integers(min_value=-99_999_999, max_value=9_999_999_999),
    st.floats(min_value=-1e9, max_value=1e9, allow_nan=False),
    st.datetimes(min_value=datetime.datetime(1900, 3, 1)),
    st.dates(min_value=datetime.date(1900, 3, 1)),
    st.times(),
    st.timedeltas(min_value=datetime.timedelta(0), max_value=datetime.timedelta(days=10**6)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_CELLS, min_size=1, max_size=5), min_size=1, max_size=8))
def test_random_sheets_find_the_same_with_and_without_the_gate(
    rows: list[list[object]],
) -> None:
    detectors = _shipped()
    book = xlsx({"Sheet1": rows})
    raw = _message(book)
    assert _findings(raw, detectors, gated=True) == _findings(raw, detectors, gated=False)


def _edited(book: bytes, old: bytes, new: bytes) -> bytes:
    """`book` with its first sheet's XML edited (a hostile or broken file)."""
    source = zipfile.ZipFile(io.BytesIO(book))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                assert old in data
                data = data.replace(old, new, 1)
            target.writestr(info.filename, data)
    return out.getvalue()


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"</worksheet>", b""),  # cut short
        (b"<t>abc", b"<t>a&bogus;c"),  # not a reference
        (b"<t>abc", b"<t>a&c"),  # a bare ampersand
        (b"<t>abc", b"<t>a<c"),  # a stray tag: calamine joins texts across it
        (b'<c r="A2" t="n"><v>1</v>', b'<c r="A2" t="s"><v>7</v>'),  # past the strings
    ],
)
def test_what_calamine_refuses_or_reads_oddly_is_read_as_before(
    old: bytes, new: bytes, detectors: Detectors
) -> None:
    book = _edited(xlsx({"S": [["abc", "def"], [1, 2]]}), old, new)
    assert not _unread(book, detectors)
    raw = _message(book)
    assert _findings(raw, detectors, gated=True) == _findings(raw, detectors, gated=False)


def test_a_long_fraction_is_read_since_it_renders_a_run_of_digits(detectors: Detectors) -> None:
    """``0.0312345678`` renders a run of ten digits after the point: a phone number."""
    book = _shared_strings_book([["数量"], [0.0312345678]])
    assert not _unread(book, detectors)
    raw = _message(book)
    found = _findings(raw, detectors, gated=True)
    assert found == _findings(raw, detectors, gated=False)
    assert any(f.code == "phone" for f in found), found


_HEADER_PIECES = [p.strip("^$").replace(" ?", " ") for p in records._PIECES]
_HEADER_TEXTS = st.lists(
    st.one_of(
        st.sampled_from([*_HEADER_PIECES, *(p.upper() for p in _HEADER_PIECES), "My Number"]),
        st.sampled_from([" ", ",", "\t", "\n", "品", "目", "A", "É", "　", "İ", "ı", "ſ", "K"]),
        st.sampled_from(sorted({c for p in _HEADER_PIECES for c in p})),
    ),
    max_size=6,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(_HEADER_TEXTS)
def test_the_proof_sees_every_header_the_detector_could_see(text: str) -> None:
    """`records.HEADER_TEXT` finds something in every text whose cell, or any piece
    `text_tables` could split it into, `records._kind` names (a superset, case as the
    detector folds it)."""
    pieces = [text, *(p.strip() for p in re.split(r"[\s,]+", text))]
    if any(records._kind(piece) for piece in pieces):
        assert records.HEADER_TEXT.search(text), text
        assert cells_may_hold(CellDigest(frozenset({text}), 9), text), text


@pytest.mark.parametrize("cell", ["品名", "商品名", "品目", "Order Number", "受注日", "名称"])
def test_product_and_order_headers_are_no_personal_header(cell: str) -> None:
    assert not records._kind(cell)
    assert not records.HEADER_TEXT.search(cell)
