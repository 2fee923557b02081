"""What an XLSX workbook's cells can render to, read from its raw XML before calamine runs.

`sheets.read_sheets` asks the detectors (`Context.cells_gate`) whether anything in a
workbook could produce a finding; when none could, calamine never runs and no table is
built. That question needs every text a cell can hold — shared strings, inline strings and
sheet names — and a proof that every other cell is a number. `unread` says False (read
the workbook as usual) whenever the raw parts hold anything it does not model: formulas,
formula strings, booleans, errors, ISO dates, custom number formats other than dates and
times, negative numbers with a date format, namespace prefixes, ``_xHHHH_`` escapes,
CDATA, strings other than text and rich-text runs, macro or dialog sheets, anything
calamine would refuse that it knows of (a part cut short, an ``&`` that is no reference, a
shared-string index past the end), or a sheet that calamine would cut at the row, cell or
text limits (the cut is a problem the verdict needs). calamine does not check end tag
names, and neither does this.

The texts are what `tables.TableBuilder` would render for those cells (NFKC); plain
numbers render as digits, at most `MAX_DIGITS` before the decimal point and `MAX_FRACTION`
after it; numbers with a
date or time format (built-in or made of date and time tokens) as dates, times or durations
(`CellDigest.dates`: calamine never writes a format's literal text, so a format only
decides between a number and a date).
"""

from __future__ import annotations

import functools
import operator
import re
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

from sendguard.model import CellDigest
from sendguard.parse.context import Context

MAX_DIGITS = 9
"""Integer digits a plain number cell may have; longer ones make the digest None."""
MAX_FRACTION = 6
"""Fraction digits a plain number cell may have: Python writes the float with no more (the
shortest form that reads back: 15 significant digits or fewer always do; below 1e-4 as
``1.234567e-05``). A longer fraction can render a run a detector reads without a label
(``0.0312345678``: a phone)."""
_NUMBER_WIDTH = 25
"""Characters a plain number renders to at most (``-1.2345678901234567e-100``)."""
_DATE_WIDTH = 31
"""Characters a date-formatted number renders to at most (``999999999 days, 23:59:59.999999``)."""
_HEAD = 65_536
"""Bytes of each sheet read first: the header rows that decide most workbooks."""
_INLINE = re.compile(rb"<is>([^<]*+(?:<(?!/is>)[^<]*+)*+)</is>")
_PLAIN_INLINES = re.compile(rb"<t>[^<\x00]*+</t>(?:\x00<t>[^<\x00]*+</t>)*+")
_SHARED = re.compile(rb"<si>(.*?)</si>", re.DOTALL)
_PHONETIC = re.compile(rb"<rPh\b.*?</rPh>", re.DOTALL)
_TEXT = re.compile(rb"<t(?: [^>]*)?>([^<]*)</t>")
_BAD_REFERENCE = re.compile(rb"&(?!(?:amp|lt|gt|quot|apos|#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6});)")
"""An ``&`` that is not an XML reference: calamine refuses the sheet (XmlError)."""
_RICH = re.compile(
    rb"(?:<t(?: [^<>]*)?>[^<]*</t>"
    rb"|<r>(?:<rPr>(?:<[^<>]*/>)*</rPr>)?<t(?: [^<>]*)?>[^<]*</t></r>"
    rb"|<rPh\b[^<>]*><t(?: [^<>]*)?>[^<]*</t></rPh>|<phoneticPr\b[^<>]*/>)*"
)
"""A string item as Excel writes it: text, runs with their (empty-element) properties,
phonetic runs. Anything else (a stray ``<``) may merge texts in calamine's reading."""
_SHARED_INDEX = re.compile(rb't="s"(?: s="[0-9]+")?><v>([0-9]+)</v>')
_REFERENCE = re.compile(r"&(amp|lt|gt|quot|apos|#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6});")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
_ESCAPE = re.compile(rb"_x[0-9A-Fa-f]{4}_|<!\[CDATA\[")
_QUOTED = re.compile(r'"[^"]*"|\\.|\[[^\]]*\]')
_PREFIXED = re.compile(rb":(?:c|v|is|si|t|r|rPh|row|sheetData|sheet)[\s>/]")
"""Possibly a prefixed SpreadsheetML element (``<x:c``); text may match too (conservative)."""
_NARROW_COLUMN = re.compile(rb'r="[A-Z][0-9]')
_ODD_ROW = re.compile(rb'<row(?=[\s>/])(?! r="[0-9]{1,7}")')
_SHEET_NAME = re.compile(rb'<sheet\b[^>]*?\bname="([^"]*)"')
_RELATION = re.compile(rb"<Relationship\b[^>]*>")
_TARGET = re.compile(rb'Target="([^"]*)"')
_XF = re.compile(rb"<xf\b[^>]*>")
_NUMFMT_ID = re.compile(rb'numFmtId="([0-9]+)"')
_CELL_XFS = re.compile(rb"<cellXfs\b.*?</cellXfs>", re.DOTALL)
_PLAIN_FORMATS = frozenset({*range(0, 14), *range(37, 45), 48, 49})
"""Built-in number formats that calamine renders as numbers (general, fixed, thousands,
percent, fractions, scientific, accounting, text): never dates or durations."""
_DATE_FORMATS = frozenset({*range(14, 23), *range(45, 48)})
"""Built-in date, time and duration formats."""
_NUMFMT = re.compile(rb"<numFmt\b[^>]*>")
_FORMAT_CODE = re.compile(rb'formatCode="([^"]*)"')
_DATE_CODE = re.compile(
    r'(?:\[\$-[0-9A-Za-z\-]{1,16}\]|\[(?:h+|m+|s+)\]|"[^"]*"|\\.|AM/PM|A/P|am/pm|a/p'
    r"|[yYmMdDhHsSgGeEbB/:.,\- 年月日時分秒])+(?:;@)?"
)
"""A custom format made of date and time tokens, separators, quoted or escaped literals, a
locale and a text section (``yyyy"年"m"月"d"日"``, ``[$-411]ggge.m.d;@``, ``[h]:mm``); no digit
placeholder (``0"日"``), no text format (``@``) nor colour or condition."""
_DATE_TOKEN = re.compile(r"[yYmMdDhHsSgGeEbB]")
_CELL_TYPES = frozenset({b"s", b"n", b"inlineStr"})
_SEPARATOR = "\x00"  # XML 1.0 cannot carry U+0000, so it cannot occur in a cell's text


def _format_ids(styles: bytes) -> tuple[frozenset[int], frozenset[int]]:
    """The custom format ids of the styles part: those made of date and time tokens, all."""
    dated: set[int] = set()
    custom: set[int] = set()
    for element in _NUMFMT.findall(styles):
        found, code = _NUMFMT_ID.search(element), _FORMAT_CODE.search(element)
        if found is None:
            continue
        custom.add(int(found.group(1)))
        if code is None:
            continue
        text = code.group(1).decode("utf-8", errors="replace")
        if "&" in text:
            text = _REFERENCE.sub(lambda m: _ENTITIES.get(m.group(1), "\ufffd"), text)
        if _DATE_CODE.fullmatch(text) and _DATE_TOKEN.search(_QUOTED.sub("", text)):
            dated.add(int(found.group(1)))
    return frozenset(dated), frozenset(custom)


def _styles(
    archive: zipfile.ZipFile, names: set[str], ctx: Context
) -> tuple[frozenset[bytes], frozenset[bytes]]:
    """Cell style indices whose number format renders a number as a number, and those whose
    format renders it as a date, time or duration."""
    if "xl/styles.xml" not in names:
        return frozenset({b"0"}), frozenset()
    styles = archive.read("xl/styles.xml")
    if len(styles) > ctx.limits.max_member_bytes:
        return frozenset(), frozenset()
    block = _CELL_XFS.search(styles)
    if block is None:
        return frozenset({b"0"}), frozenset()
    dated_ids, custom = _format_ids(styles)
    plain: set[bytes] = set()
    dated: set[bytes] = set()
    for index, xf in enumerate(_XF.findall(block.group())):
        found = _NUMFMT_ID.search(xf)
        number = 0 if found is None else int(found.group(1))
        if number in dated_ids or (number in _DATE_FORMATS and number not in custom):
            dated.add(str(index).encode())
        elif number in _PLAIN_FORMATS and number not in custom:
            plain.add(str(index).encode())
    return frozenset(plain), frozenset(dated)


def _referenced(match: re.Match[str]) -> str:
    """The character an XML reference stands for (ValueError: none XML allows)."""
    name = match.group(1)
    if not name.startswith("#"):
        return _ENTITIES[name]
    code = int(name[2:], 16) if name[1] in "xX" else int(name[1:])
    if (
        code in (0xFFFE, 0xFFFF)
        or 0xD800 <= code <= 0xDFFF
        or (code < 0x20 and code not in (9, 10, 13))
    ):
        raise ValueError("not an XML character")
    return chr(code)


def _texts(chunks: Sequence[bytes]) -> list[str] | None:
    """Unescape and NFKC-normalise raw XML texts in one pass over their join."""
    if not chunks:
        return []
    raw = b"\x00".join(chunks)
    if b"&" in raw and _BAD_REFERENCE.search(raw):  # U+0000 ends no reference: as per chunk
        return None
    try:
        joined = raw.decode("utf-8")
        if "&" in joined:
            joined = _REFERENCE.sub(_referenced, joined)
    except (UnicodeDecodeError, ValueError, OverflowError):
        return None
    if not joined.isascii():
        joined = unicodedata.normalize("NFKC", joined)
    texts = joined.split(_SEPARATOR)
    return texts if len(texts) == len(chunks) else None


def _rich(fragment: bytes) -> list[bytes] | None:
    """A rich-text string's visible text (its runs joined), then each phonetic run alone;
    None when the fragment is not made of those alone."""
    if not _RICH.fullmatch(fragment):
        return None
    phonetic = _PHONETIC.findall(fragment)
    visible = b"".join(_TEXT.findall(_PHONETIC.sub(b"", fragment)))
    return [visible, *(b"".join(_TEXT.findall(p)) for p in phonetic)]


def _worksheet_targets(archive: zipfile.ZipFile, names: set[str]) -> set[str] | None:
    """Package names of the worksheets the workbook lists (what calamine reads)."""
    if "xl/_rels/workbook.xml.rels" not in names:
        return None
    targets: set[str] = set()
    for relation in _RELATION.findall(archive.read("xl/_rels/workbook.xml.rels")):
        if b"sheet" not in relation.lower():
            continue  # styles, theme, shared strings …: every sheet type must be scanned
        target = _TARGET.search(relation)
        if target is None:
            return None
        path = target.group(1).decode("utf-8", errors="replace")
        targets.add(path.lstrip("/") if path.startswith("/") else "xl/" + path)
    return targets


_UNSIGNED = rb"(?:[0-9]{1,%d}(?:\.[0-9]{1,%d}|)|[0-9](?:\.[0-9]{1,%d}|)[eE]-0{0,2}%s)" % (
    MAX_DIGITS,
    MAX_FRACTION,
    MAX_FRACTION,
    rb"(?:[5-9]|[1-9][0-9]{1,2})",
)
"""A plain number's value as the model admits it (its sign apart)."""
_DATE_VALUE = rb"(?:[0-9]{1,%d}|[0-9]{1,6}\.[0-9]+|[0-9](?:\.[0-9]+|)[eE]-[0-9]{1,3})" % MAX_DIGITS
"""A date-formatted cell's value: below 1,000,000 (the year 4637) calamine always renders a
date or time, whatever the fraction; above, a number (then a whole one) or a duration."""


def _odd_cell(plain: frozenset[bytes], dated: frozenset[bytes]) -> re.Pattern[bytes]:
    """A cell element outside the model: no reference first, a type other than number,
    shared or inline string, a style with a custom format other than a date, a formula, or
    a value that is not a plain number of at most `MAX_DIGITS` integer and `MAX_FRACTION`
    fraction digits, or one such digit and fraction below 1e-4; under a date format, a
    date or time (not negative: its year could render with a leading zero) — one C-level pass over
    the cells; everything else a cell may hold is ignored by calamine."""
    kind = rb'(?: t="(?:n|s|inlineStr)")?'

    def cell(style: bytes, number: bytes) -> bytes:
        head = rb"(?:%s%s|%s%s)" % (style, kind, kind, style)
        return rb"%s(?:/>|>(?:<v>%s</v></c>|<is>|</c>))" % (head, number)

    styles = rb'(?: s="(?:%s)")?' % b"|".join(sorted(plain)) if plain else b""
    cells = [cell(styles, b"-?" + _UNSIGNED)]
    if dated:
        cells.append(cell(rb' s="(?:%s)"' % b"|".join(sorted(dated)), _DATE_VALUE))
    return re.compile(rb'<c(?=[\s>/])(?! r="[A-Z]{1,3}[0-9]{1,7}"(?:%s))' % b"|".join(cells))


def _below(count: int) -> bytes:
    """A pattern for the whole numbers 0 … count - 1 written without leading zeros
    (count >= 1): a shared-string index that calamine finds."""
    top = str(count - 1)
    shorter = [b"[0-9]"] + [rb"[1-9][0-9]{%d}" % (n - 1) for n in range(2, len(top))]
    same = [top.encode()]
    for at, digit in enumerate(top):
        low = 1 if at == 0 and len(top) > 1 else 0
        if int(digit) > low:
            rest = len(top) - at - 1
            same.append(
                rb"%s[%d-%d]%s" % (top[:at].encode(), low, int(digit) - 1, rb"[0-9]" * rest)
            )
    return b"(?:%s)" % b"|".join((shorter if len(top) > 1 else []) + same)


_REF = rb'<c r="[A-Z][0-9]{1,5}"'
"""A cell's own reference: one letter (26 columns, as `sheets.sheet_extent` counts them), a
row below 100,000."""
_ROW_TAG = rb'</row>|<row r="[0-9]{1,5}"(?: [A-Za-z][\w:.\-]*+(?<!r)="[^"<>\s/]*+")*+/?>'
"""A row element: its number first, then attributes whose name does not end in ``r`` (no
second ``r="`` for `sheets.sheet_extent`) and whose value holds no white space, ``/`` or
``>`` (no prefixed element for `_PREFIXED`)."""
_INLINE_TEXT = re.compile(rb'<is><t(?: xml:space="preserve")?>([^<]*+)</t></is>')
"""An inline string of one text element, as every writer but a rich-text one writes it."""
_OUTSIDE = re.compile(
    rb'<c(?=[\s>/])|<row(?=[\s>/])|<is>|<v>|t="s"|r="[A-Z]{0,8}[0-9]{6}|r="[A-Z]{2}|'
    + _PREFIXED.pattern
)
"""Before and after the sheet data: anything the checks would look at there (a cell, a row,
a value, a big row or a wide column for `sheet_extent`, a prefixed element) sends the sheet
to the check-by-check path."""


@functools.lru_cache(maxsize=64)
def _structure(
    plain: frozenset[bytes], dated: frozenset[bytes], shared_count: int
) -> re.Pattern[bytes]:
    """The sheet data, when every row and cell is one the model admits (`_odd_cell`,
    `_ODD_ROW`) in the shapes Excel, LibreOffice, openpyxl and XlsxWriter write: no white
    space between elements, a style before a type, a number under a plain or a date
    format, a shared-string index calamine finds (`_below`), an inline string of one
    text element (`_INLINE_TEXT`). One ``fullmatch``: no object per cell."""

    def typed(value: bytes) -> bytes:
        kinds = [rb' t="inlineStr"><is><t(?: xml:space="preserve"|)>[^<]*+</t></is></c>']
        if shared_count:
            index = _below(min(shared_count, 10**MAX_DIGITS))
            kinds.append(rb' t="s"><v>%s</v></c>' % index)
        kinds.append(rb'(?: t="n"|)><v>%s</v></c>' % value)
        kinds.append(rb'(?: t="(?:n|s|inlineStr)"|)(?:/>|></c>)')
        return b"(?:%s)" % b"|".join(kinds)

    styled = []
    if dated:
        styled.append(rb' s="(?:%s)"%s' % (b"|".join(sorted(dated)), typed(_DATE_VALUE)))
    plain_style = rb'(?: s="(?:%s)"|)' % b"|".join(sorted(plain)) if plain else b""
    styled.append(plain_style + typed(b"-?" + _UNSIGNED))
    cell = rb"%s(?:%s)" % (_REF, b"|".join(styled))
    # ``(?:x|)``, not ``(?:x)?``: the same matches, but sre runs an optional group as a
    # repeat with its own bookkeeping (20 % of this pass on the ledger); a branch is cheaper.
    return re.compile(rb"(?:%s|%s)*+" % (cell, _ROW_TAG))


def _fast_sheet(
    xml: bytes, structure: re.Pattern[bytes], odd_cell: re.Pattern[bytes]
) -> tuple[Counter[bytes], int] | Literal[False] | None:
    """One worksheet's inline texts (each raw text and how many cells hold it) and its
    columns as `sheets.sheet_extent` counts them (26 or 0): the sheet data in one pass of
    `_structure` and one of `_INLINE_TEXT`, the little before and after it by `_OUTSIDE`.
    None when anything is in a shape it does not know (then each check runs on its own:
    `_checked_sheet`); False when it stops at a row or cell that `_ODD_ROW` or `odd_cell`
    refuses (a totals row's formula: the checks would refuse the sheet too). What it
    accepts, the checks accept too, with the same texts, and there `sheet_extent` finds
    fewer than 100,000 rows and 26 columns or none."""
    start, end = xml.find(b"<sheetData>"), xml.rfind(b"</sheetData>")
    if start < 0 or end < start:
        return None
    start += len(b"<sheetData>")
    head, inside, tail = xml[:start], xml[start:end], xml[end:]
    if _OUTSIDE.search(head) or _OUTSIDE.search(tail):
        return None
    matched = structure.match(inside)  # `(?:…)*+` always matches, perhaps empty
    stop = start + (matched.end() if matched else 0)
    if stop != end:
        return False if _ODD_ROW.match(xml, stop) or odd_cell.match(xml, stop) else None
    texts = Counter(_INLINE_TEXT.findall(inside))
    joined = b"\x00".join(texts)
    if b'r="' in joined or _ESCAPE.search(joined) or _PREFIXED.search(joined):
        return None  # what `sheet_extent`, `_inline_texts` or `_PREFIXED` would see
    narrow = b'<c r="' in inside or any(_NARROW_COLUMN.search(p) for p in (head, tail))
    return texts, 26 if narrow else 0


def _unmodelled(xml: bytes) -> bool:
    """Prefixed SpreadsheetML elements, ``_xHHHH_`` escapes or CDATA."""
    return _PREFIXED.search(xml) is not None or _ESCAPE.search(xml) is not None


def _inline_texts(xml: bytes) -> Counter[bytes] | None:
    """Each inline string's raw text and how many cells hold it (None: escapes or CDATA)."""
    fragments = Counter(_INLINE.findall(xml))
    joined = b"\x00".join(fragments)
    if _ESCAPE.search(joined):
        return None
    if not fragments or _PLAIN_INLINES.fullmatch(joined):  # each one <t>text</t>
        texts = joined[3:-4].split(b"</t>\x00<t>") if fragments else []
        return Counter(dict(zip(texts, fragments.values(), strict=True)))
    found: Counter[bytes] = Counter()
    for fragment, count in fragments.items():
        runs = _rich(fragment)
        if runs is None:
            return None
        for text in runs:
            found[text] += count
    return found


class _Reader:
    """The digest of one workbook, built a part at a time so that the gate can answer early
    (its answer only grows with more texts: a text that matters matters in any superset)."""

    def __init__(self, gate: Callable[[CellDigest], bool], *, dates: bool) -> None:
        self.gate = gate
        self.dates = dates
        self.texts: dict[bytes, str] = {}
        """Each raw text read so far → its rendering."""

    def matters(self, chunks: Iterable[bytes]) -> bool | None:
        """Add raw texts; True when the gate says the texts so far matter, None when they
        cannot be decoded."""
        new = list(set(chunks) - self.texts.keys())
        texts = _texts(new)
        if texts is None:
            return None
        self.texts.update(zip(new, texts, strict=True))
        known = frozenset(self.texts.values())
        cells = CellDigest(texts=known, number_digits=MAX_DIGITS, dates=self.dates)
        return self.gate(cells)


def _checked_sheet(
    xml: bytes, odd_cell: re.Pattern[bytes], shared_count: int
) -> Counter[bytes] | None:
    """One worksheet's inline texts by a pass per check (any shape `_fast_sheet` does not
    know); None when a cell is outside the model."""
    if _ODD_ROW.search(xml) or odd_cell.search(xml) or _PREFIXED.search(xml):
        return None
    if b't="s"' in xml and max(map(int, _SHARED_INDEX.findall(xml)), default=-1) >= (shared_count):
        return None  # a reference past the shared strings: calamine's error
    return _inline_texts(xml)


def unread(
    archive: zipfile.ZipFile,
    sheets: Sequence[tuple[str, bytes]],
    ctx: Context,
    gate: Callable[[CellDigest], bool],
    extent: Callable[[bytes], tuple[int, int]],
) -> bool:
    """True when the workbook's cells need not be read: they hold nothing outside the
    model (see the module doc) and `gate` says nothing in them matters. `sheets`: each
    worksheet's name in the package and its XML; `extent`: a sheet's row and column bounds
    (`sheets.sheet_extent`), asked only where the fast pass did not prove them. False too
    when a sheet's bounds are over the cell limit (`sheets` then reports it)."""
    names = set(archive.namelist())
    limits = ctx.limits
    if (
        "xl/workbook.xml" not in names
        or limits.max_table_rows < 99_999
        or any(n.startswith(("xl/macrosheets/", "xl/dialogsheets/")) for n in names)
    ):
        return False
    targets = _worksheet_targets(archive, names)
    if targets is None or not targets <= {name for name, _ in sheets}:
        return False
    workbook = archive.read("xl/workbook.xml")
    sheet_names = _SHEET_NAME.findall(workbook)
    if (
        len(sheet_names) != len(targets)
        or not workbook.rstrip().endswith(b"</workbook>")
        or _unmodelled(workbook)
    ):
        return False
    shared: set[bytes] = set()
    shared_count = 0
    if "xl/sharedStrings.xml" in names:
        xml = archive.read("xl/sharedStrings.xml")
        if not xml.rstrip().endswith(b"</sst>") or _unmodelled(xml):
            return False
        items = _SHARED.findall(xml)
        shared_count = len(items)
        for fragment in set(items):
            runs = _rich(fragment)
            if runs is None:
                return False
            shared.update(runs)
    plain, dated = _styles(archive, names, ctx)
    reader = _Reader(gate, dates=bool(dated))
    # First what decides most workbooks that matter: names, shared strings, header rows.
    heads = (_inline_texts(xml[:_HEAD]) or () for name, xml in sheets if name in targets)
    if reader.matters([*sheet_names, *shared, *(t for head in heads for t in head)]) is not False:
        return False
    limit = limits.max_table_cells
    # The fast pass counts 26 columns and proves fewer than 100,000 rows, as `extent` would.
    fast = limit >= 99_999 * 26
    cells = values = separators = 0
    inline: Counter[bytes] = Counter()
    for name, xml in sheets:
        ctx.check_time()
        if name not in targets:
            rows, cols = extent(xml)
            if rows * cols > limit:
                return False
            continue
        if not xml.rstrip().endswith(b"</worksheet>"):  # cut short: calamine's XmlError
            return False
        odd_cell = _odd_cell(plain, dated)
        structure = _structure(plain, dated, shared_count)
        found = _fast_sheet(xml, structure, odd_cell) if fast else None
        if found is False:
            return False
        if found is None:
            rows, cols = extent(xml)
            if rows >= 100_000 or rows * cols > limit:
                return False  # below 100,000 rows the bound of `sheet_extent` is a true one
            checked = _checked_sheet(xml, odd_cell, shared_count)
            if checked is None:
                return False
        else:
            checked, cols = found
        cells += 99_999 * cols
        inline.update(checked)
        values += xml.count(b"<v>")
        separators += len(xml) // 10 + 99_999  # a cell is 10 bytes or more; a row each
    if cells > limit or reader.matters(inline) is not False:
        return False
    # The rendered text stays within the text limit (a cut is a problem the verdict needs):
    # every inline string as often as it occurs, every value (a number or a shared-string
    # reference) at the widest a number renders or the longest shared string.
    texts = reader.texts
    longest = max((len(texts[s]) for s in shared), default=0)
    width = _DATE_WIDTH if dated else _NUMBER_WIDTH
    length = values * max(width, longest) + separators
    lengths: Iterable[int] = map(len, map(texts.__getitem__, inline))  # C-level: 26,000 texts
    inline_length: int = sum(map(operator.mul, lengths, inline.values()))
    length += inline_length
    return length + sum(len(texts[n]) + 1 for n in sheet_names) <= limits.max_part_text_chars
