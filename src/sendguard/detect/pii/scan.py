"""The text scan of `personal-data`: one `patterns.SCAN` pass, then validation at each hit.

Numbers are validated by length, shape, check digit and — for the numbers that look like
anything else (My Number, licence, pension, bank account, passport, birth date, corporate
number) — a context label shortly before them. Japanese label positions are remembered
as the same pass meets them; English labels are looked up only for the numbers that need
them (`_Context`). Signature blocks of bodies are dropped at the end.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from typing import NamedTuple

from sendguard.detect.pii import checksums
from sendguard.detect.pii.addresses import PREFECTURE_NAMES, address
from sendguard.detect.pii.patterns import (
    ADDRESS_AFTER,
    ASCII_LABELS,
    DATE,
    DATE_RUN,
    EMAIL_DOMAIN,
    EMAIL_LOCAL,
    JAPANESE_LABELS,
    LABEL_FREE,
    PASSPORT,
    POSTAL_SHAPE,
    SCAN,
    SIGNATURE,
    SIGNATURE_SPAN,
    date_value,
    label_kind,
)
from sendguard.detect.spans import Spans

_DELETE_SEPARATORS = str.maketrans("", "", " -()")
_DIGITS = frozenset("0123456789")
_MOBILE = frozenset({"070", "080", "090", "050", "060", "020"})
_BUSINESS_PREFIXES = ("0120", "0800", "0570", "0990")
_GROUP = re.compile(r"[^ ]+")
_CARD_SHAPE = re.compile(r"\d+|\d{4}([ \-])\d+(?:\1\d+)*")
_LENGTHS = frozenset({7, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19})
"""Digit counts `_classify` can accept: other windows are not even joined."""
_REACH_MARGIN = 8
"""Characters past `window` that a label's zone also covers (passports look 2 back)."""
_MAX_GROUPS = 6
"""No number is written in more than 6 groups (+81 90 1234 5678): bounds the split search."""
_SIGNATURE_CODES = frozenset({"phone", "email-address", "postal-address"})


class Hit(NamedTuple):
    """One validated item: its finding code, its normalised value and where it starts."""

    code: str
    value: str
    pos: int
    strong: bool = False
    """Card with expiry or security-code context nearby (raises severity)."""


def _english_labels(text: str, start: int, end: int) -> list[tuple[int, int, str]]:
    """(start, end, kind) of English labels in ``text[start:end]`` on word boundaries."""
    return [
        (m.start(), m.end(), label_kind(m.group()))
        for m in ASCII_LABELS.finditer(text, max(start, 0), max(end, 0))
        if not text[m.start() - 1 : m.start()].isalnum()
        and not text[m.end() : m.end() + 1].isalnum()
    ]


class _Context:
    """Label positions by kind: Japanese ones recorded as the scan meets them; English ones
    indexed once for the whole text (by `ascii_index`) when a number first needs them."""

    __slots__ = ("_index", "_starts", "labels", "text", "window")

    def __init__(self, text: str, window: int) -> None:
        self.labels: dict[str, int] = {}
        self.text = text
        self.window = window
        self._index: tuple[list[int], list[str]] | None = None
        self._starts: list[int] = []

    def ascii_index(self) -> tuple[list[int], list[str]]:
        """(end positions, kinds) of every English label in the text, in order."""
        if self._index is None:
            found = _english_labels(self.text, 0, len(self.text))
            self._index = ([e for _, e, _ in found], [k for _, _, k in found])
            self._starts = [s for s, _, _ in found]
        return self._index

    def ascii_starts(self) -> list[int]:
        """Start positions of the labels of `ascii_index`."""
        self.ascii_index()
        return self._starts

    def english_between(self, kinds: tuple[str, ...], start: int, end: int) -> bool:
        """An English label of one of `kinds` ending within ``[start, end]``."""
        ends, labels = self.ascii_index()
        i = bisect_left(ends, start)
        while i < len(ends) and ends[i] <= end:
            if labels[i] in kinds:
                return True
            i += 1
        return False

    def near(self, kind: str, pos: int, window: int = 0, *, english: bool = True) -> bool:
        """A `kind` label ends at most `window` characters before `pos`."""
        window = window or self.window
        end = self.labels.get(kind)
        if end is not None and 0 <= pos - end <= window:
            return True
        return english and self.english_between((kind,), pos - window, pos)

    def ascii_around(self, kinds: tuple[str, ...], pos: int, span: int) -> bool:
        """An English label of one of `kinds` within `span` characters of `pos`."""
        return self.english_between(kinds, pos - span, pos + span)


def new_context(text: str, window: int, *, english: bool = True) -> _Context:
    """A scan context for `read_span`; ``english=False`` when the caller has made sure the
    text holds no English label (no index is then built)."""
    ctx = _Context(text, window)
    if not english:
        ctx._index = ([], [])
    return ctx


def _phone(digits: str) -> bool:
    if digits.startswith(_BUSINESS_PREFIXES):
        return False  # toll-free and navigation numbers belong to businesses
    if len(digits) == 11:
        return digits[:3] in _MOBILE
    return len(digits) == 10 and digits[0] == "0" and digits[1] != "0"


def _classify(text: str, run: str, digits: str, start: int, ctx: _Context) -> Hit | None:
    n = len(digits)
    near = ctx.near
    if n == 12:
        if near("mynumber", start) and checksums.my_number_ok(digits):
            return Hit("my-number", digits, start)
        if near("licence", start) and checksums.licence_ok(digits):
            return Hit("drivers-licence", digits, start)
        return None
    if n == 13:
        if (near("corporate", start) or text[start - 1 : start] == "T") and (
            checksums.corporate_number_ok(digits)
        ):
            return Hit("corporate-number", digits, start)
        # 13-digit Visa numbers are no longer issued; without a label they are JAN codes.
        if not near("card", start) or not checksums.luhn_ok(digits):
            return None
    if 13 <= n <= 19:
        if near("code", start) and not near("card", start):
            return None  # シリアル番号 / 注文番号: a code that happens to pass Luhn
        if _card_shape(run) and checksums.card_issuer(digits) and checksums.luhn_ok(digits):
            return Hit("credit-card", digits, start)
        return None
    if n == 10 and near("pension", start, english=False):
        return Hit("pension-number", digits, start)
    if n in (10, 11):
        if _phone(digits):  # checked before the English labels: phones are common
            return Hit("phone", digits, start)
        return Hit("pension-number", digits, start) if n == 10 and near("pension", start) else None
    if n == 7:
        if (POSTAL_SHAPE.match(run) or near("postal", start, 3)) and ADDRESS_AFTER.match(
            text, start + len(run)
        ):
            return Hit("postal-address", digits, start)
        if near("bank", start):
            return Hit("bank-account", digits, start)
    return None


def _card_shape(run: str) -> bool:
    """Card numbers are written plain or in groups of 4 (4-6-5 for Amex) with one kind of
    separator; ``363  08053879305`` (a building number, then a phone in the next column)
    is two numbers, whatever Luhn says."""
    return _CARD_SHAPE.fullmatch(run) is not None


def _glued(text: str, start: int, end: int) -> bool:
    """Digits stuck to ASCII letters are product or order codes (``INV20240115001``)."""
    before = text[start - 1 : start]
    after = text[end : end + 1]
    if after.isascii() and after.isalpha():
        return True
    if before.isascii() and before.isalpha():
        return before != "T" and text[max(start - 3, 0) : start].upper() not in ("TEL", "FAX")
    return False


def _number(text: str, found: str, start: int, ctx: _Context) -> list[Hit]:
    run = found.rstrip(" -(")
    digits = run.translate(_DELETE_SEPARATORS)
    if len(digits) < 7:
        return []
    end = start + len(run)
    if _glued(text, start, end):
        return _passport(text, run, start, ctx)
    if text[start - 1 : start] == "+" and digits.startswith("81"):
        local = "0" + digits[2:]  # +81 90-1234-5678 → 09012345678
        return [Hit("phone", local, start)] if _phone(local) else []
    if len(digits) == 8:
        date = DATE_RUN.fullmatch(run)  # 1985-04-03 after "DOB:" (Japanese labels: _label)
        if date is None or not ctx.near("birth", start):
            return []
        return [Hit("birth-date", date_value(date), start)]
    hit = _classify(text, run, digits, start, ctx)
    if hit is not None:
        return [hit]
    if " " not in run:
        return []
    return _split(text, run, start, ctx)


def _passport(text: str, run: str, start: int, ctx: _Context) -> list[Hit]:
    """``TK1234567`` after an English "Passport" label (Japanese labels: see _label)."""
    letters = text[max(start - 2, 0) : start]
    shaped = len(run) == 7 and run.isdigit() and letters.isascii() and letters.isupper()
    if shaped and letters.isalpha() and ctx.near("passport", start - 2):
        return [Hit("passport", letters + run, start - 2)]
    return []


def _split(text: str, run: str, start: int, ctx: _Context) -> list[Hit]:
    """Several numbers separated by spaces (``03-1234-5678 090-1234-5678``, PDF columns): try
    the longest valid run of consecutive space-separated groups, left to right."""
    groups = [(m.start() + start, m.group()) for m in _GROUP.finditer(run)]
    counts = [0]
    for _, group in groups:  # digits before each group, so a window's count is a subtraction
        counts.append(counts[-1] + len(group.translate(_DELETE_SEPARATORS)))
    hits: list[Hit] = []
    i = 0
    while i < len(groups):
        i = _longest_at(text, groups, counts, i, ctx, hits)
    return hits


def _longest_at(
    text: str,
    groups: list[tuple[int, str]],
    counts: list[int],
    i: int,
    ctx: _Context,
    hits: list[Hit],
) -> int:
    """Add the longest valid number starting at group `i`; return the next group index."""
    for j in range(min(len(groups), i + _MAX_GROUPS), i, -1):
        n = counts[j] - counts[i]
        if n < 7:
            break  # shorter windows from here have even fewer digits
        if n not in _LENGTHS or (i == 0 and j == len(groups)):
            continue  # impossible length, or the whole run (already tried)
        sub = " ".join(g for _, g in groups[i:j])
        hit = _classify(text, sub, sub.translate(_DELETE_SEPARATORS), groups[i][0], ctx)
        if hit is not None:
            hits.append(hit)
            return j
    return i + 1


def _email(text: str, at: int) -> Hit | None:
    local = EMAIL_LOCAL.search(text, max(at - 64, 0), at)
    domain = EMAIL_DOMAIN.match(text, at + 1)
    if local is None or domain is None or local.group().startswith("."):
        return None
    return Hit("email-address", f"{local.group()}@{domain.group()}".lower(), local.start())


def _address(text: str, start: int, end: int, hits: list[Hit]) -> None:
    value = address(text, start, end)
    if value is not None:
        hits.append(Hit("postal-address", value, start))


def _label(text: str, kind: str, end: int, ctx: _Context) -> Hit | None:
    ctx.labels[kind] = end
    if kind == "birth":
        date = DATE.search(text, end, end + ctx.window)
        if date is not None:
            return Hit("birth-date", date_value(date), date.start())
    elif kind == "passport":
        number = PASSPORT.search(text, end, end + ctx.window)
        if number is not None:
            return Hit("passport", number.group(), number.start())
    return None


def scan_text(text: str, *, body: bool, window: int = 40, exhaustive: bool = False) -> list[Hit]:
    """Every personal-data item in `text` (NFKC), in order; signatures skipped in bodies.

    Most numbers can only be personal data with a context label shortly before them (a My
    Number, a bank account, a birth date …). So the scan first finds the labels (two C-level
    passes) and reads every match of `SCAN` only within a label's reach (its zone); between
    zones it reads only the numbers that need no label (`LABEL_FREE`) and "@" signs. The
    result is the same list as reading every match (``exhaustive=True``, kept for tests and
    as the reference): a number outside every zone has no label near it by construction.
    """
    ctx = _Context(text, window)
    hits: list[Hit] = []
    severity_labels: list[int] = []
    if exhaustive:
        read_span(text, 0, len(text), ctx, hits, severity_labels)
    else:
        _read_zoned(text, ctx, hits, severity_labels)
    if body:
        hits = _drop_signatures(text, hits)
    return [strengthen(h, severity_labels, ctx) if h.code == "credit-card" else h for h in hits]


def read_span(
    text: str, start: int, stop: int, ctx: _Context, hits: list[Hit], severity: list[int] | None
) -> int:
    """Read every `SCAN` match that starts in ``[start, stop)``; return where the last ended.
    `severity` collects expiry/CVV label positions (None: the caller already has them)."""
    end = start
    for match in SCAN.finditer(text, start):
        if match.start() >= stop:
            break
        end = match.end()
        found = match.group()
        first = found[0]
        if first in _DIGITS:
            hits.extend(_number(text, found, match.start(), ctx))
        elif first == "@":
            hit = _email(text, match.start())
            if hit is not None:
                hits.append(hit)
        elif found in PREFECTURE_NAMES:
            _address(text, match.start(), end, hits)
        else:
            kind = label_kind(found)
            if severity is not None and kind in ("expiry", "cvv"):
                severity.append(match.start())
            hit = _label(text, kind, match.end(), ctx)
            if hit is not None:
                hits.append(hit)
    return end


def _zones(text: str, ctx: _Context, severity: list[int]) -> list[tuple[int, int]]:
    """Merged ``[start, end)`` spans from each label to `window` (+ a margin) past its end."""
    reach = ctx.window + _REACH_MARGIN
    spans: list[tuple[int, int]] = []
    for match in JAPANESE_LABELS.finditer(text):
        if label_kind(match.group()) in ("expiry", "cvv"):
            severity.append(match.start())
        spans.append((match.start(), match.end() + reach))
    ends, _ = ctx.ascii_index()
    spans.extend((start, end + reach) for start, end in zip(ctx.ascii_starts(), ends, strict=True))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _read_zoned(text: str, ctx: _Context, hits: list[Hit], severity: list[int]) -> None:
    """Label-free numbers between zones, every match inside them, in text order.

    Zones start at labels, which no `SCAN` match spans, so both passes start on a match
    boundary; a zone's last number may run past its end, and the next gap starts after it.
    """
    pos = 0
    for zone_start, zone_end in _zones(text, ctx, severity):
        start = max(zone_start, pos)
        _read_label_free(text, pos, start, ctx, hits)
        pos = max(read_span(text, start, zone_end, ctx, hits, None), zone_end)
    _read_label_free(text, pos, len(text), ctx, hits)


def _read_label_free(text: str, start: int, stop: int, ctx: _Context, hits: list[Hit]) -> None:
    for match in LABEL_FREE.finditer(text, start):
        if match.start() >= stop:
            break
        found = match.group()
        if found == "@":
            hit = _email(text, match.start())
            if hit is not None:
                hits.append(hit)
        elif found in PREFECTURE_NAMES:
            _address(text, match.start(), match.end(), hits)
        else:
            hits.extend(_number(text, found, match.start(), ctx))


def strengthen(hit: Hit, labels: list[int], ctx: _Context) -> Hit:
    i = bisect_left(labels, hit.pos - 80)  # labels are in text order
    if (i < len(labels) and labels[i] <= hit.pos + 80) or ctx.ascii_around(
        ("expiry", "cvv"), hit.pos, 80
    ):
        return hit._replace(strong=True)
    return hit


def _drop_signatures(text: str, hits: list[Hit]) -> list[Hit]:
    """A sender's own phone, address and e-mail in a signature block are not personal data
    being sent out; neither are the quoted signatures of earlier mails in a thread."""
    spans = Spans((m.end(), m.end() + SIGNATURE_SPAN) for m in SIGNATURE.finditer(text))
    if not spans:
        return hits
    return [h for h in hits if h.code not in _SIGNATURE_CODES or not spans.covers(h.pos)]
