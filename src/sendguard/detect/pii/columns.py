"""Tables read as columns: what `scan.scan_text` finds in a sheet's or CSV's text, decided a
column at a time instead of a number at a time.

A spreadsheet or CSV part's text is its tables rendered one row per line, cells joined by
tabs (`parse.extract.tables.TableBuilder.render`). Its 26,000 or 80,000 rows hold the same
few kinds of cell over and over, so each column is proven to be of one shape by a single
C-level regex over the whole column: shapes that can never be personal data without a
context label (amounts, dates, order codes, names, addresses — `_INERT`), or shapes that
always are (mobile and landline phones, e-mail addresses, postal codes followed by an
address — `_PHONE`, `_EMAIL`, `_POSTAL`). The values of a proven column are its cells,
counted with `set` in C. Rows within reach of a context label (a 生年月日 or 口座 header, a
label in a cell) are read by the text scan itself. The result — distinct values per code,
evidence order, the record count of `records.text_records` — is the text scan's, exactly;
a column that fits no shape, or English labels anywhere, makes `scan_rendered` return
None and the caller scans the text as before (tests/unit/detect/test_fast_paths.py compares
both on every evaluation case and on generated tables).
"""

from __future__ import annotations

import operator
import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate, chain, zip_longest

from sendguard.detect.pii.addresses import address
from sendguard.detect.pii.patterns import (
    EMAIL_DOMAIN,
    JAPANESE_LABELS,
    LABELS,
    PREFECTURE,
    PREFECTURES,
)
from sendguard.detect.pii.records import BUSINESS_LINE, RECORD_CODES, person_line
from sendguard.detect.pii.scan import Hit, new_context, read_span, strengthen
from sendguard.model import Table

_SEVEN_DIGITS = re.compile(r"[0-9](?<![0-9]{2})(?:[ \-()]*+[0-9]){6}")
"""A run SCAN reads with 7 or more digits (`scan._number` drops shorter ones): a column
without one and without an "@" holds nothing the scan could report outside label zones.
(Runs are tried from their first digit only: the look-behind skips the digits after it.)"""
_LETTER = re.compile("[A-Za-z]")
_ASCII_WORDS = tuple(sorted({w for words in LABELS.values() for w in words if w.isascii()}))


def _lines_of(shape: str) -> re.Pattern[str]:
    """A whole column (cells joined by newlines) whose every cell is empty or `shape`."""
    return re.compile(rf"(?:{shape})?(?:\n(?:{shape})?)*")


def _lines_of_one(shape: str) -> re.Pattern[str]:
    """`_lines_of` for a shape whose first match at a position is its longest one (no
    alternative can end further on, so no other could end at the cell's end): possessive
    quantifiers drop the backtracking state of every cell, 3-5x faster on 80,000 cells.
    tests/unit/detect/test_fast_paths.py compares both forms on generated columns."""
    return re.compile(rf"(?:{shape})?+(?:\n(?:{shape})?+)*+")


# Inert: cells no label-free rule reports. Numbers of up to 9 digits without spaces (a
# postal code needs its hyphen and an address after it), dates and times (8 digits, or 10
# with a space: neither a phone nor a card), codes glued to letters (INV20240115001: never
# after T, TEL or FAX, which are not glue).
# Dates first: a date's first digits are a number too, but a number never starts a date
# (two separators), so the first alternative to match is the longest (`_lines_of_one`).
INERT_SHAPE = (
    r"(?:19|20)[0-9]{2}[-/.][0-9]{1,2}[-/.][0-9]{1,2}"
    r"(?: [0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?)?"
    r"|-?[0-9]{1,9}+(?:\.[0-9]{1,9}+)?"
    r"|(?![A-Za-z]*(?:[Tt][Ee][Ll]|[Ff][Aa][Xx])[0-9])[A-Za-z]{0,3}[A-SU-Za-z][0-9]{1,20}"
)
_INERT = _lines_of_one(INERT_SHAPE)
# Phones (`scan._phone`): mobile 11 digits from 070/080/090/050/060/020, landline 10 digits
# from 0 + a non-zero digit; never 0120/0800/0570/0990 (businesses). Hyphens anywhere.
PHONE_SHAPE = (
    r"(?!0-?1-?2-?0|0-?8-?0-?0|0-?5-?7-?0|0-?9-?9-?0)"
    r"(?:(?:0[5-9]0|020)(?:-?[0-9]){8}|0-?[1-9](?:-?[0-9]){8})"
)
_LOCAL = r"[A-Za-z0-9_%+\-][A-Za-z0-9._%+\-]{0,63}"
EMAIL_SHAPE = rf"{_LOCAL}@(?:{EMAIL_DOMAIN.pattern})"
POSTAL_SHAPE = r"[0-9]{3}-[0-9]{4}"
# The 11-digit branch can only match where the 10-digit one cannot end at the cell's end;
# the e-mail domain's first match is its longest (more labels before the top-level one).
_PHONE = _lines_of_one(PHONE_SHAPE)
_EMAIL = _lines_of_one(EMAIL_SHAPE)
_POSTAL = _lines_of_one(POSTAL_SHAPE)
_ADDRESSED = re.compile(
    rf"^[0-9]{{3}}-[0-9]{{4}}\t(?=[\s,、:\"']{{0,3}}(?:{PREFECTURES})[^\s,、\d]{{1,12}}?[市区町村郡])",
    re.MULTILINE,
)
"""A postal code whose next cell starts with a prefecture and a municipality: exactly where
`ADDRESS_AFTER` matches after it in the rendered row (the tab is one of its separators)."""
_POSTAL_FOLLOWED = re.compile(r"^[0-9]{3}-[0-9]{4}\t[^\t\n]", re.MULTILINE)


@dataclass
class ColumnScan:
    """What the text scan would have found in the rendered tables."""

    values: dict[str, dict[str, None]] = field(default_factory=dict)
    """Per code the distinct values; the first `keep` of each in the scan's order."""
    strong: bool = False
    records: int = 0
    """`records.text_records` of the text scan's hits."""


@dataclass
class _Layout:
    """Where each table's rows are in the rendered text."""

    starts: list[int]
    """Start offset of every line of the text."""
    first_lines: list[int]
    """Line number of each table's first row."""
    name_lines: list[int]
    """Lines holding a table's name."""


@dataclass
class _Proof:
    """A column whose every non-empty cell is a hit of `code` (outside label zones)."""

    code: str
    table: int
    column: int
    values: list[str]
    """One value per non-empty cell, in row order."""
    flags: int
    """Byte `r` is 1 when row `r` has a value (`_flags`)."""


def _layout(text: str, tables: Sequence[Table]) -> _Layout | None:
    """The line layout when `text` is exactly the rendering of `tables`, else None."""
    lines = text.split("\n")
    index = 0
    first_lines: list[int] = []
    name_lines: list[int] = []
    for table in tables:
        if table.name:
            if index >= len(lines) or lines[index] != table.name:
                return None
            name_lines.append(index)
            index += 1
        first_lines.append(index)
        end = index + len(table.rows)
        if end > len(lines) or not all(
            map(operator.eq, lines[index:end], map("\t".join, table.rows))
        ):
            return None
        index = end
    if index != len(lines) and not (index == 0 and text == ""):
        return None
    # Line i starts after the i previous lines and their newlines.
    starts = list(map(operator.add, accumulate(map(len, lines), initial=0), range(len(lines))))
    return _Layout(starts, first_lines, name_lines)


def _english_free(texts: Sequence[str]) -> bool:
    """No English label spelling (in any case) in any of `texts`."""
    for text in texts:
        if _LETTER.search(text) is None:
            continue
        lowered = text.lower()
        if any(word in lowered for word in _ASCII_WORDS):
            return False
    return True


def _flags(cells: Sequence[str]) -> int:
    """Rows with a non-empty cell, one byte (0 or 1) per row, as an int for bit arithmetic."""
    return int.from_bytes(bytes(map(bool, cells)), "little")


def _cells(text: str) -> list[str]:
    """The non-empty cells of a column text (one C-level split; proven cells hold no
    newline)."""
    return list(filter(None, text.split("\n")))


def _prove(column: list[str], text: str, after: list[str] | None) -> tuple[str, list[str]] | bool:
    """True when the column is inert, (code, values) when every cell is a hit, False when
    it has no proof."""
    if _INERT.fullmatch(text) or ("@" not in text and _SEVEN_DIGITS.search(text) is None):
        return True
    if _PHONE.fullmatch(text):
        return "phone", _cells(text.replace("-", ""))
    if _EMAIL.fullmatch(text):
        if _SEVEN_DIGITS.search(text):
            return False  # a long digit run inside an address could be a number of its own
        return "email-address", _cells(text.lower())
    if _POSTAL.fullmatch(text) and after is not None:
        pairs = "\n".join(map("\t".join, zip(column, after, strict=True)))
        filled = sum(map(bool, column))
        if len(_POSTAL_FOLLOWED.findall(pairs)) != filled:
            return False  # an empty cell after a postal code: the address may be further on
        if len(_ADDRESSED.findall(pairs)) != filled:
            return False
        return "postal-address", _cells(text.replace("-", ""))
    return False


def scan_rendered(
    text: str, tables: Sequence[Table], *, window: int, keep: int, minimum: int
) -> ColumnScan | None:
    """The text scan's findings in `text` (the rendering of `tables`, an attachment), column
    by column; None when the layout or a column cannot be proven (scan the text instead)."""
    if not tables:
        return None
    layout = _layout(text, tables)
    if layout is None:
        return None
    zone_lines = _zone_lines(text, layout, window)
    # English labels are not indexed here: none may appear anywhere, zone rows included.
    if not _english_free([_lines_text(text, layout, zone_lines)]):
        return None
    proofs: list[_Proof] = []
    names = [t.name for t in tables]
    for number, table in enumerate(tables):
        first = layout.first_lines[number]
        columns = [list(c) for c in zip_longest(*table.rows, fillvalue="")]
        for line in zone_lines:
            if 0 <= line - first < len(table.rows):
                for column in columns:
                    column[line - first] = ""  # read by the text scan
        texts = ["\n".join(c) for c in columns]
        if not _english_free([*texts, *names]):
            return None
        for index, column in enumerate(columns):
            after = columns[index + 1] if index + 1 < len(columns) else None
            proof = _prove(column, texts[index], after)
            if proof is False:
                return None
            if isinstance(proof, tuple):
                code, values = proof
                proofs.append(_Proof(code, number, index, values, _flags(column)))
    return _assemble(text, layout, zone_lines, proofs, window, keep, minimum)


def _zone_lines(text: str, layout: _Layout, window: int) -> set[int]:
    """Lines a Japanese label can reach, rows with a street address, and the table-name
    lines: read by the text scan."""
    reach = window + 8
    starts = layout.starts
    lines: set[int] = set(layout.name_lines)
    for match in JAPANESE_LABELS.finditer(text):
        first = bisect_right(starts, match.start()) - 1
        last = bisect_right(starts, min(match.end() + reach, len(text))) - 1
        lines.update(range(first, last + 1))
    # Rows holding a street address without a postal code (`addresses.address`, which the
    # text scan reports wherever it is): read by the text scan too. Addresses after a postal
    # code stay with the `_POSTAL` proof (`address` gives None for them).
    for match in PREFECTURE.finditer(text):
        if address(text, match.start(), match.end()) is not None:
            lines.add(bisect_right(starts, match.start()) - 1)
    return lines


def _lines_text(text: str, layout: _Layout, lines: set[int]) -> str:
    """The text of the given lines (the zone rows, whose cells the columns leave blank)."""
    starts = layout.starts
    return "\n".join(
        text[starts[line] : starts[line + 1] if line + 1 < len(starts) else len(text)]
        for line in sorted(lines)
    )


def _runs(lines: list[int]) -> list[tuple[int, int]]:
    """Consecutive line numbers as (first, last) runs."""
    runs: list[tuple[int, int]] = []
    for line in lines:
        if runs and line == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], line)
        else:
            runs.append((line, line))
    return runs


def _assemble(
    text: str,
    layout: _Layout,
    zone_lines: set[int],
    proofs: list[_Proof],
    window: int,
    keep: int,
    minimum: int,
) -> ColumnScan:
    # Zone lines are read exactly, run by run: every Japanese label is inside one, so the
    # scan context meets each label as the whole-text scan would.
    ctx = new_context(text, window, english=False)
    starts = layout.starts
    exact: list[tuple[int, int, Hit]] = []  # (line where its run starts, order, hit)
    severity: list[int] = []
    for first, last in _runs(sorted(zone_lines)):
        stop = starts[last + 1] if last + 1 < len(starts) else len(text)
        found: list[Hit] = []
        read_span(text, starts[first], stop, ctx, found, severity)
        exact.extend((first, len(exact) + n, hit) for n, hit in enumerate(found))
    hits = [
        (line, order, strengthen(h, severity, ctx) if h.code == "credit-card" else h)
        for line, order, h in exact
    ]
    result = ColumnScan(strong=any(h.strong for _, _, h in hits))
    _values(result, hits, proofs, layout, keep)
    result.records = _records(text, layout, [h for _, _, h in hits], proofs, minimum)
    return result


def _values(
    result: ColumnScan,
    hits: list[tuple[int, int, Hit]],
    proofs: list[_Proof],
    layout: _Layout,
    keep: int,
) -> None:
    """Distinct values per code, the first `keep` of each in the text scan's order: lines
    in order, within a line the scan's own order (zone lines) or column order (proofs)."""
    firsts: dict[str, list[tuple[int, int, str]]] = {}
    for line, order, hit in hits:
        firsts.setdefault(hit.code, []).append((line, order, hit.value))
    for proof in proofs:
        taken: dict[str, None] = {}
        first_line = layout.first_lines[proof.table]
        cells = proof.flags.to_bytes((proof.flags.bit_length() + 7) // 8, "little")
        values = iter(proof.values)
        for row, flag in enumerate(cells):
            if len(taken) >= keep:
                break
            if flag:
                value = next(values)
                if value not in taken:
                    taken[value] = None
                    entry = (first_line + row, proof.column, value)
                    firsts.setdefault(proof.code, []).append(entry)
    for code, found in firsts.items():
        ordered = result.values.setdefault(code, {})
        for _, _, value in sorted(found):
            if len(ordered) >= keep:
                break
            ordered.setdefault(value, None)
    for proof in proofs:  # one hashing pass: the evidence first, then every value
        ordered = result.values[proof.code]
        result.values[proof.code] = dict.fromkeys(chain(ordered, proof.values))
    for _, _, hit in hits:
        result.values[hit.code].setdefault(hit.value, None)


def _records(
    text: str, layout: _Layout, hits: list[Hit], proofs: list[_Proof], minimum: int
) -> int:
    """`records.text_records(text, hits of the text scan, minimum)`, from line bitmaps."""
    personal = [h for h in hits if h.code in RECORD_CODES]
    if len(personal) + sum(len(p.values) for p in proofs) < minimum:
        return 0
    starts = layout.starts
    business = bytearray(len(starts))
    for match in BUSINESS_LINE.finditer(text):
        business[bisect_right(starts, match.start()) - 1] = 1
    every = int.from_bytes(b"\x01" * len(starts), "little")
    kept = every ^ int.from_bytes(business, "little")
    by_code: dict[str, int] = {}
    masks: dict[str, int] = {}
    for proof in proofs:
        mask = proof.flags << (8 * layout.first_lines[proof.table])
        masks[proof.code] = masks.get(proof.code, 0) | mask
        by_code[proof.code] = by_code.get(proof.code, 0) + (mask & kept).bit_count()
    codes = list(masks.values())
    two = 0
    for i, first in enumerate(codes):
        for second in codes[i + 1 :]:
            two |= first & second
    one = 0
    for mask in codes:
        one |= mask
    lines = (two & kept).bit_count() + _named(text, starts, one & kept & ~two)
    by_line: dict[int, set[str]] = {}
    for hit in personal:
        line = bisect_right(starts, hit.pos) - 1
        if not business[line]:
            by_line.setdefault(line, set()).add(hit.code)
            by_code[hit.code] = by_code.get(hit.code, 0) + 1
    lines += sum(
        1
        for line, found in by_line.items()
        if len(found) >= 2 or person_line(_line(text, starts, line))
    )
    counts = sorted((n for n in by_code.values() if n), reverse=True)
    second_most = counts[1] if len(counts) > 1 else 0
    return max(lines, second_most)


def _line(text: str, starts: list[int], line: int) -> str:
    end = starts[line + 1] - 1 if line + 1 < len(starts) else len(text)
    return text[starts[line] : end]


def _named(text: str, starts: list[int], candidates: int) -> int:
    """Rows (one byte each in `candidates`) with one kind of item that start with a name
    (`records.person_line`): the record count of the text scan for such lines."""
    flags = candidates.to_bytes((candidates.bit_length() + 7) // 8, "little")
    found = 0
    row = flags.find(1)
    while row >= 0:
        found += person_line(_line(text, starts, row))
        row = flags.find(1, row + 1)
    return found
