"""The relay's fast paths of `personal-data` give exactly what the exhaustive reading gives.

`scan_text` reads numbers only within label zones plus the label-free ones; sheet and CSV
tables are read by columns (`pii.columns`). The relay and `policy explain` run these fast
paths; `DetectContext.exhaustive` runs the plain reference ones (every number read one by
one, tables as text). These tests prove the two agree on every evaluation case, on
generated tables and texts, and that the fast paths are taken.
"""

from __future__ import annotations

import dataclasses
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from sendguard.detect.personal_data import PersonalData
from sendguard.detect.pii import columns
from sendguard.detect.pii.scan import scan_text
from sendguard.detect.texts import nfkc
from sendguard.model import Mail, Part, Table
from tests.eval.evaluate import all_cases

from .helpers import context
from .numbers import luhn_complete, my_number

CTX = context(["a@abc.co.jp"])
EXHAUSTIVE = dataclasses.replace(CTX, exhaustive=True)


def _findings(mail: Mail, *, exhaustive: bool) -> list[object]:
    return list(PersonalData().detect(mail, EXHAUSTIVE if exhaustive else CTX))


def test_fast_and_exhaustive_paths_agree_on_every_evaluation_case() -> None:
    """Every case of tests/eval: the same findings (codes, counts, evidence, where), so the
    same action under any policy."""
    detector = PersonalData()
    for case in all_cases():
        ctx = case.ctx()
        fast = detector.detect(case.mail, ctx)
        slow = detector.detect(case.mail, dataclasses.replace(ctx, exhaustive=True))
        assert fast == slow, case.name


def test_zoned_scan_equals_the_exhaustive_scan_on_evaluation_texts() -> None:
    """Hit for hit (code, value, position, strength), bodies and attachments."""
    for case in all_cases():
        texts = [case.mail.subject] + [p.text for p in case.mail.parts]
        for text in filter(None, texts):
            for body in (True, False):
                normal = nfkc(text)
                assert scan_text(normal, body=body) == scan_text(
                    normal, body=body, exhaustive=True
                ), case.name


_PIECES = (
    "0", "1", "3", "7", "9", "090", "1234", "5678", "-", " ", "(", ")", "\t", "\n", "@", "a",
    "T", "TEL", "x.jp", "個人番号", "口座", "生年月日", "〒", "東京都", "千代田区", "カード番号",
    "有効期限", "シリアル", "passport", "DOB", "account no", "CVV", "--\n", "+81", "旅券",
    "基礎年金番号", "法人番号", "1985-04-03", "TK1234567", "4111111111111111", "150-0001",
    "山武郡", "横芝光町", "大阪府", "大阪市北区", "梅田", "10丁目", "8番", "三丁目", "3-2-1",
    "株式会社", "\u3000",
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=60), st.booleans())
def test_zoned_scan_equals_the_exhaustive_scan_on_generated_texts(
    pieces: list[str], body: bool
) -> None:
    """Labels, numbers, separators and cells in any order: the same hits."""
    text = "".join(pieces)
    assert scan_text(text, body=body) == scan_text(text, body=body, exhaustive=True)


def _customer_rows(count: int, rng: random.Random) -> list[tuple[str, ...]]:
    head = (
        "会員番号",
        "氏名",
        "郵便番号",
        "住所",
        "電話番号",
        "携帯",
        "メール",
        "生年月日",
        "金額",
    )
    rows = [head]
    for n in range(count):
        rows.append(
            (
                str(100000 + n),
                rng.choice(("山田 太郎", "佐藤 花子", "田中 一郎")),
                f"{rng.randint(100, 999)}-{rng.randint(0, 9999):04d}",
                rng.choice(("東京都千代田区1-2-3", "大阪府大阪市北区4-5", "福岡県福岡市博多区6")),
                f"03-{rng.randint(1000, 9999)}-{rng.randint(0, 9999):04d}",
                f"090{rng.randint(0, 99999999):08d}" if n % 7 else "",
                f"user{n}@example{n % 9}.co.jp",
                f"19{rng.randint(40, 99)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                str(rng.randint(1000, 99999999)),
            )
        )
    return rows


def _sheet_part(tables: list[Table]) -> Part:
    lines: list[str] = []
    for table in tables:
        if table.name:
            lines.append(table.name)
        lines.extend("\t".join(row) for row in table.rows)
    return Part(
        ("attachment 1",),
        "application/octet-stream",
        "text/csv",
        filename="顧客.csv",
        text="\n".join(lines),
        tables=tuple(tables),
        is_attachment=True,
    )


def _both(tables: list[Table]) -> tuple[list[object], list[object], bool]:
    part = _sheet_part(tables)
    fast = _findings(Mail(parts=(part,)), exhaustive=False)
    slow = _findings(Mail(parts=(part,)), exhaustive=True)
    taken = columns.scan_rendered(part.text, part.tables, window=40, keep=3, minimum=5)
    return fast, slow, taken is not None


def test_customer_sheet_read_by_columns_equals_the_text_scan() -> None:
    """Phones (mobile and landline), postal codes before addresses, e-mail addresses,
    birth dates, two phone columns per row, empty cells, two sheets with names."""
    rng = random.Random(12)
    tables = [
        Table("顧客", tuple(_customer_rows(400, rng))),
        Table("追加", tuple(_customer_rows(30, rng))),
    ]
    fast, slow, taken = _both(tables)
    assert taken, "the column path was not taken"
    assert fast == slow
    codes = {f.code: f.count for f in fast}  # type: ignore[attr-defined]
    # The second sheet repeats user0..user29: counts are distinct values.
    assert codes["customer-list"] == 430 and codes["email-address"] == 400


def test_labels_in_cells_are_read_exactly() -> None:
    """A label in a data cell (口座, 個人番号, カード番号 + 有効期限) reaches the cells after it."""
    rng = random.Random(3)
    rows = _customer_rows(50, rng)
    rows[20] = (*rows[20][:8], "口座 1234567")
    rows[30] = (*rows[30][:8], f"個人番号 {my_number(rng)}")
    rows[40] = (*rows[40][:7], "カード番号", f"{luhn_complete('4111', 16, rng)} 有効期限")
    fast, slow, taken = _both([Table("", tuple(rows))])
    assert taken
    assert fast == slow
    codes = {f.code: f for f in fast}  # type: ignore[attr-defined]
    assert {"bank-account", "my-number", "credit-card"} <= set(codes)
    assert codes["credit-card"].severity == "critical"


def test_a_postal_code_without_an_address_next_to_it_is_not_proven() -> None:
    """An empty cell after a postal code: the address may be further on, so the text scan
    decides (and both paths agree)."""
    rows = [("氏名", "郵便番号", "備考", "住所"), *[("山田", "150-0001", "", "東京都渋谷区1")] * 6]
    fast, slow, taken = _both([Table("", tuple(rows))])
    assert not taken
    assert fast == slow


def test_an_english_label_anywhere_falls_back_to_the_text_scan() -> None:
    """English labels are not indexed by the column path: such a table is read as text."""
    rows = [("name", "note", "value"), *[("a", "DOB", "1985-04-03")] * 6]
    fast, slow, taken = _both([Table("", tuple(rows))])
    assert not taken
    assert fast == slow
    assert any(f.code == "birth-date" for f in fast)  # type: ignore[attr-defined]


def test_an_english_label_in_a_header_zone_falls_back_too() -> None:
    """'account no' in a header row that a Japanese label already makes a zone: the row is
    read by the text scan, so its English label must send the table to the text scan."""
    rows = [("氏名", "生年月日", "account no"), *[("山田", "1985-04-03", "1234567")] * 6]
    fast, slow, taken = _both([Table("", tuple(rows))])
    assert not taken
    assert fast == slow
    assert any(f.code == "bank-account" for f in fast)  # type: ignore[attr-defined]


def test_sales_ledger_is_inert_by_columns() -> None:
    """Order codes, dates, amounts up to 8 digits, regions: proven inert, nothing found."""
    rng = random.Random(5)
    rows = [("伝票番号", "日付", "地域", "品目", "数量", "金額")]
    for n in range(500):
        rows.append(
            (
                f"S{n:07d}",
                f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                rng.choice(("関東", "北海道", "東北")),
                "ボルト M8",
                str(rng.randint(1, 500)),
                str(rng.randint(100, 45_000_000)),
            )
        )
    fast, slow, taken = _both([Table("売上", tuple(rows))])
    assert taken
    assert fast == slow == []


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(("", "090-1234-5678", "0312345678", "0120-123-456", "080-0123-4567")),
            st.sampled_from(("", "150-0001", "1500001", "12345678")),
            st.sampled_from(
                ("", "東京都千代田区1", "渋谷店", "a", "〒", "東京都千代田区丸の内3-2-1", "福井県")
            ),
            st.sampled_from(("", "x@y.jp", "0901234567@a.jp", ".a@b.jp", "口座", "T1234567890123")),
            st.sampled_from(("", "1985-04-03", "2026-01-01 00:00:00", "INV20240115001", "-5")),
            st.sampled_from(("", "山田 健一", "佐藤花子様", "営業部")),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_generated_tables_agree(rows: list[tuple[str, ...]]) -> None:
    """Any mix of shapes, business lines, labels and empty cells: fast == exhaustive."""
    head = ("電話番号", "郵便番号", "住所", "メール", "生年月日", "備考")
    fast, slow, _ = _both([Table("", (head, *rows))])
    assert fast == slow
    names_first = [(r[5], *r[:5]) for r in rows]  # a name at the start of each row
    fast, slow, _ = _both([Table("", (("備考", *head[:5]), *names_first))])
    assert fast == slow
    english = ("電話番号", "郵便番号", "account no", "DOB", "生年月日", "備考")
    fast, slow, _ = _both([Table("", (english, *rows))])
    assert fast == slow


_MARKER_PIECES = (
    "社外秘", "部外", "秘", "CONF", "conf", "İ", "ı", "dential", "DENTIAL", "Internal", " ",
    "-", "only", "ONLY", "Strictly", "PRİVATE", "private", "機密保持", "誤送信", "\n\n", "x",
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_MARKER_PIECES), max_size=30))
def test_marker_shortcut_never_hides_a_marker(pieces: list[str]) -> None:
    """The substring pre-check of confidential-marker skips only texts the case-insensitive
    pattern finds nothing in (İ, ı and other case folds included)."""
    from sendguard.detect.confidential_marker import ConfidentialMarker

    shortcut = ConfidentialMarker()
    substrings = ConfidentialMarker()
    substrings._needle_search = None  # one substring search per needle, on text.lower()
    plain = ConfidentialMarker()
    plain._needles = None
    text = nfkc("".join(pieces))
    assert shortcut._needle_search is not None
    assert shortcut._may_hold_marker(text) == substrings._may_hold_marker(text)
    assert shortcut._count(text) == plain._count(text)


def test_inspect_sync_gives_the_same_verdict_both_ways() -> None:
    """The shipped policy on a customer-list XLSX and CSV: same findings, same action."""
    from pathlib import Path

    from sendguard.inspect import inspect_sync
    from sendguard.model import Envelope
    from sendguard.parse import ParseLimits
    from sendguard.policy.load import load_policy
    from tests.support.attachments import Attachment, build_message, xlsx

    rows = _customer_rows(300, random.Random(9))
    files = [
        Attachment("顧客.xlsx", xlsx({"顧客": rows})),
        Attachment("顧客.csv", "\r\n".join(",".join(r) for r in rows).encode("cp932")),
    ]
    policy = load_policy(Path(__file__).resolve().parents[3] / "policies")
    envelope = Envelope(mail_from="yamada@example.co.jp", rcpt_tos=("sato@customer.example",))
    for attachment in files:
        raw = build_message(attachments=[attachment])
        fast = inspect_sync(envelope, raw, policy, ParseLimits(), offline=True)
        slow = inspect_sync(envelope, raw, policy, ParseLimits(), offline=True, exhaustive=True)
        assert fast.findings == slow.findings
        assert fast.verdict.action == slow.verdict.action
        assert fast.verdict.action.label == "hold"


_CELL_PIECES = (
    "0", "1", "2", "5", "9", "090", "020", "0120", "03", "-", "--", "1234", "5678", "@", ".",
    "a", "Z", "_", "co", "jp", "example", "x1", "150-0001", ".com", "\n", "2026", "19", "-01",
    "/", ".5", " ", " 12:00", ":30", ".123", "INV", "TEL", "T", "fax", "12345678901",
)  # fmt: skip


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(_CELL_PIECES), max_size=24))
def test_possessive_column_shapes_match_the_backtracking_ones(pieces: list[str]) -> None:
    """Inert cells, phones, e-mail addresses and postal codes: the possessive column
    patterns accept exactly the columns the plain backtracking ones accept."""
    column = "".join(pieces)
    shapes = (columns.INERT_SHAPE, columns.PHONE_SHAPE, columns.EMAIL_SHAPE, columns.POSTAL_SHAPE)
    for shape in shapes:
        fast = columns._lines_of_one(shape).fullmatch(column) is not None
        assert fast == (columns._lines_of(shape).fullmatch(column) is not None), (shape, column)
