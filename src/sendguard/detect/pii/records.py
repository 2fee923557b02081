"""Customer-list judgement of `personal-data`: how many person records a table or a text
block holds, so that one phone number in a signature is never "a list".

Tables: a header row (within the first rows) naming at least two personal fields, one of
them identifying or contact data (氏名, フリガナ, 住所, 電話番号, メール, 生年月日 …);
records = data rows with at least two filled cells. Columns whose header is a context label
(個人番号, 口座番号, 生年月日 …) are also scanned cell by cell, since the label is far away from
the values in the rendered text. Text: lines holding two or more kinds of personal item (a
line starting with a person's name, `person_line`, adds one kind), or the second most
frequent kind of item when each record spans several lines.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from itertools import zip_longest

from sendguard.detect.pii import checksums
from sendguard.detect.pii.patterns import DATE_CELL, PASSPORT, date_value
from sendguard.detect.pii.scan import Hit
from sendguard.model import Table

_HEADER_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern, re.IGNORECASE))
    for kind, pattern in (
        ("mynumber", r"個人番号|マイナンバー|my ?number"),
        (
            "business",
            r"店舗|支店|営業所|拠点|事業所|会社名|法人名|施設|部署|store|branch|office|company",
        ),
        ("kana", r"フリガナ|ふりがな|カナ|kana"),
        ("name", r"氏名|名前|姓|^名$|担当者|name"),
        ("postal", r"郵便番号|〒|zip|postal"),
        ("address", r"住所|所在地|address"),
        ("phone", r"電話|携帯|tel|phone|mobile|fax"),
        ("email", r"メール|mail"),
        ("birth", r"生年月日|誕生日|birth"),
        ("card", r"カード番号|クレジット|card"),
        ("bank", r"口座"),
        ("passport", r"旅券|パスポート|passport"),
        ("licence", r"免許"),
        ("pension", r"年金"),
        ("gender", r"性別|gender"),
        ("age", r"年齢|^age$"),
        ("customer", r"顧客|会員|お客様|customer|member"),
    )
)
_PIECES = [piece for _, pattern in _HEADER_KINDS for piece in pattern.pattern.split("|")]
HEADER_TEXT = re.compile(
    "|".join(
        [p for p in _PIECES if "^" not in p]
        + [rf"{w}(?<![^\s,]{w})(?![^\s,])" for w in (p.strip("^$") for p in _PIECES if "^" in p)]
    ),
    re.IGNORECASE,
)
"""A text holding something `_kind` could match (`pii.cells`: none, no table records): an
unanchored spelling anywhere (searched as `_kind` searches, no piece spans a newline), a
whole-cell one (``名``, ``age``) between the bounds of a table cell or of a piece
`text_tables` splits a line into (white space, commas). Every branch starts with a literal,
so `re` skips ahead in C to its first characters."""
_PERSON = frozenset(
    {"name", "kana", "birth", "mynumber", "card", "bank", "passport", "licence", "pension",
     "gender", "age", "customer"}
)  # fmt: skip
_CONTACT = frozenset({"address", "postal", "phone", "email"})
BUSINESS_LINE = re.compile(
    r"店|営業所|本社|事業所|支社|工場|センター|拠点|会社|\(株\)|\(有\)|事務所|病院|医院"
    r"|クリニック|役所|役場|学校"
)
"""A text line about a shop, office or company (渋谷店 〒… TEL …, 株式会社… 東京都…) is
business data, not a person."""
_HEADER_ROWS = 5
_DELETE_SEPARATORS = str.maketrans("", "", " -()/")


@dataclass(frozen=True, slots=True)
class TableReading:
    """What one table holds: person records, personal columns, and items found in cells."""

    records: int
    columns: tuple[str, ...]
    hits: tuple[Hit, ...]


def _kind(cell: str) -> str:
    for kind, pattern in _HEADER_KINDS:
        if pattern.search(cell):
            return kind
    return ""


def _header(table: Table) -> tuple[int, list[str]] | None:
    for index, row in enumerate(table.rows[:_HEADER_ROWS]):
        kinds = [_kind(cell) if len(cell) <= 30 else "" for cell in row]
        if _personal(set(kinds) - {""}):
            return index, kinds
    return None


def _personal(present: set[str]) -> bool:
    """Header kinds that make a list of people: a person field plus another personal one, or
    two contact fields when no column names a shop, branch or company (店舗名, 住所, 電話)."""
    person, contact = present & _PERSON, present & _CONTACT
    if person:
        return len(person | contact) >= 2
    return "business" not in present and len(contact) >= 2


def _cell_hit(kind: str, cell: str, row: int) -> Hit | None:
    """Validate a cell of a column whose header supplies the context."""
    if kind == "birth":
        date = DATE_CELL.match(cell)
        return Hit("birth-date", date_value(date), row) if date else None
    if kind == "passport":
        found = PASSPORT.search(cell)
        return Hit("passport", found.group(), row) if found else None
    digits = cell.translate(_DELETE_SEPARATORS)
    if not digits.isdigit():
        return None
    if kind == "mynumber" and checksums.my_number_ok(digits):
        return Hit("my-number", digits, row)
    if kind == "licence" and checksums.licence_ok(digits):
        return Hit("drivers-licence", digits, row)
    if kind == "pension" and len(digits) == 10:
        return Hit("pension-number", digits, row)
    if kind == "bank" and 6 <= len(digits) <= 8:
        return Hit("bank-account", digits, row)
    return None


_CELL_KINDS = frozenset({"birth", "passport", "mynumber", "licence", "pension", "bank"})


def read_table(table: Table) -> TableReading:
    """Records and context-column items of one table (no header → no records)."""
    header = _header(table)
    if header is None:
        return TableReading(0, (), ())
    index, kinds = header
    data = table.rows[index + 1 :]
    # Column-wise (C-level maps and big-int bit arithmetic, one byte per row): a 50,000-row
    # sheet is nine columns, not 450,000 cells visited in Python.
    columns = list(zip_longest(*data, fillvalue=""))
    one = two = 0
    for column in columns:
        filled = int.from_bytes(bytes(map(bool, map(str.strip, column))), "little")
        two |= one & filled
        one |= filled
    records = two.bit_count()
    head = table.rows[index]
    names = tuple(head[i] for i, kind in enumerate(kinds) if kind and kind != "customer")
    hits: list[Hit] = []
    for col, kind in enumerate(kinds):
        if kind not in _CELL_KINDS or col >= len(columns):
            continue
        # Each distinct cell once, in the order of first appearance: the same values in the
        # same order as cell by cell (a hit's value depends on the cell alone).
        for number, cell in enumerate(dict.fromkeys(columns[col])):
            if cell:
                hit = _cell_hit(kind, cell.strip(), number)
                if hit is not None:
                    hits.append(hit)
    return TableReading(records, names, tuple(hits))


_HEADER_HINT = re.compile(
    "氏名|名前|フリガナ|電話|住所|メール|個人番号|マイナンバー|生年月日|顧客|会員"
)
_SPACES = re.compile(r"\s{2,}")
_MAX_HEADER = 400
"""Longest line considered as a header row (characters)."""
_MAX_TEXT_TABLES = 100
"""Header-like lines read per text; a hostile text of 50,000 tiny "tables" stops here."""


def _splitter(line: str) -> str | None:
    """The separator a header line uses: tab, comma, or None for runs of 2+ spaces (PDF)."""
    if "\t" in line:
        return "\t"
    return "," if "," in line else None


def _cells(line: str, sep: str | None) -> tuple[str, ...]:
    # str.split for tabs and commas runs in C; the regex only for space-aligned text.
    cells = line.split(sep) if sep else _SPACES.split(line.strip())
    return tuple(c.strip() for c in cells) if sep != "\t" else tuple(cells)


def _lines_from(text: str, pos: int) -> Iterator[tuple[str, int]]:
    """(line, position after it) from `pos` on, lazily: a block stops at its first non-row."""
    while pos <= len(text):
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        yield text[pos:end], end + 1
        pos = end + 1


def text_tables(text: str) -> list[Table]:
    """Tables written as text (a sheet pasted into a body, a PDF): a header line naming
    personal fields, then the lines below it split the same way (tabs, commas, 2+ spaces).
    Only lines holding a header word are examined, so prose costs one regex pass."""
    tables: list[Table] = []
    consumed = 0
    for hint in _HEADER_HINT.finditer(text):
        if len(tables) >= _MAX_TEXT_TABLES:
            break
        if hint.start() < consumed:
            continue
        start = text.rfind("\n", consumed, hint.start()) + 1 or consumed
        line, consumed = next(_lines_from(text, start))
        if len(line) > _MAX_HEADER or not ("\t" in line or "," in line or "  " in line):
            continue  # prose mentioning 電話 or メール: no columns, no header
        sep = _splitter(line)
        head = _cells(line, sep)
        if len(head) < 2 or _header(Table("", (head,))) is None:
            continue
        rows = [head]
        for line, after in _lines_from(text, consumed):
            row = _cells(line, sep)
            if len(row) < 2:
                break
            rows.append(row)
            consumed = after
        tables.append(Table("", tuple(rows)))
    return tables


RECORD_CODES = frozenset(
    {"phone", "email-address", "postal-address", "birth-date", "my-number", "credit-card",
     "bank-account", "passport", "drivers-licence", "pension-number"}
)  # fmt: skip


def _surnames() -> frozenset[str]:
    text = resources.files(__package__).joinpath("surnames.txt").read_text("utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


SURNAMES = _surnames()
"""Japanese surnames (IPADIC 人名,姓; source and licence in the file's header)."""
_LINE_PREFIX = re.compile(r"[>\s]*(?:[0-9]{1,4}[.)、:]?\s*)?")
_GIVEN = re.compile(r" ?[\u4e00-\u9fff々ヶぁ-んァ-ヶー]{1,4}(?:様|さん)?(?=[\t ,、]|\Z)")


def person_line(line: str) -> bool:
    """A line that starts with a person's name (``山田 健一``, ``> 3. 佐藤花子様``): a known
    surname, then a given name and a separator. A weak signal: it counts as one kind of
    personal item on a line that already holds a validated one."""
    start = _LINE_PREFIX.match(line)
    pos = start.end() if start else 0
    for length in (4, 3, 2, 1):
        if line[pos : pos + length] in SURNAMES and _GIVEN.match(line, pos + length):
            return True
    return False


def text_records(text: str, hits: list[Hit], minimum: int) -> int:
    """Person records in a text block, 0 when there are clearly fewer than `minimum`: lines
    holding two kinds of item, or the second most frequent kind when each record spans
    several lines. Lines about shops and offices do not count."""
    personal = [h for h in hits if h.code in RECORD_CODES]
    if len(personal) < minimum:
        return 0
    by_line: dict[int, list[Hit]] = {}
    line, last = 0, 0
    for hit in sorted(personal, key=lambda h: h.pos):  # one left-to-right newline count
        line += text.count("\n", last, hit.pos)
        last = hit.pos
        by_line.setdefault(line, []).append(hit)
    kept = [
        hits for hits in by_line.values() if not BUSINESS_LINE.search(_line_at(text, hits[0].pos))
    ]
    by_code = Counter(h.code for hits in kept for h in hits)
    second = sorted(by_code.values(), reverse=True)[1] if len(by_code) > 1 else 0
    lines = sum(
        1
        for hits in kept
        if len({h.code for h in hits}) >= 2 or person_line(_line_at(text, hits[0].pos))
    )
    return max(lines, second)


def _line_at(text: str, pos: int) -> str:
    end = text.find("\n", pos)
    return text[text.rfind("\n", 0, pos) + 1 : len(text) if end < 0 else end]
