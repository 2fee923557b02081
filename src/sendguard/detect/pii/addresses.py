"""Street addresses written without a postal code: a prefecture, a real municipality (市区町村,
郡 + 町村, a designated city's ward), then a town and a block number (``10丁目8番16号``,
``3-2-1``, ``三丁目2番1号``).

The scan (`scan.read_span`, `scan._read_label_free`) stops at every prefecture name — one
more literal-first branch of its one-pass regex — and calls `address` there; everything
else is bounded look-ahead from that point (one dictionary probe by the next two
characters, one regex `match` limited to `_REACH` characters), so 1 MB of addresses stays
linear. The municipality must be on the list of Japanese local governments
(`municipalities.txt`, 総務省「全国地方公共団体コード」): an address naming a real
municipality is strong evidence, a made-up "○○市" after a prefecture is not reported.
The prefecture need not be the municipality's own (lists written by hand, and test data,
mix them up).
"""

from __future__ import annotations

import re
from importlib import resources

from sendguard.detect.pii.patterns import PREFECTURES


def _load() -> tuple[frozenset[str], frozenset[str]]:
    """(municipalities and wards, districts 郡) of the shipped list."""
    text = resources.files(__package__).joinpath("municipalities.txt").read_text("utf-8")
    places: set[str] = set()
    districts: set[str] = set()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        _, district, place = line.split("\t")
        places.add(place)
        if district:
            districts.add(district)
        if place.endswith("区") and "市" in place[:-1]:  # 札幌市北区: also 札幌市 itself
            places.add(place[: place.index("市") + 1])
    return frozenset(places), frozenset(districts)


MUNICIPALITIES, DISTRICTS = _load()
PREFECTURE_NAMES = frozenset(PREFECTURES.split("|"))


def _by_head(names: frozenset[str]) -> dict[str, tuple[str, ...]]:
    """Names by their first two characters, longest first: one dict probe rejects almost
    every position (a hostile text of prefecture names costs a slice and a lookup each)."""
    heads: dict[str, list[str]] = {}
    for name in names:
        heads.setdefault(name[:2], []).append(name)
    return {head: tuple(sorted(found, key=len, reverse=True)) for head, found in heads.items()}


_PLACES = _by_head(MUNICIPALITIES)
_DISTRICTS = _by_head(DISTRICTS)
_REACH = 40
"""Characters after the municipality in which the block number must start and end."""
# A town name (no digits, no separators) then a block number: 10丁目, 8番地, 16号, 3-2-1,
# 三丁目, 1の2, Hokkaido's 北1条. Lazy over a bounded class: at most 14 short trials per address.
_BLOCK = re.compile(
    r"[^\s\d,、。]{0,14}?(?:[0-9]{1,4}|[一二三四五六七八九十]{1,3}) ?"
    r"(?:丁目|番地|番|号|条|線|[-‐−の][0-9一二三四五六七八九十])"
)
_STREET_TAIL = re.compile(r"[0-9一二三四五六七八九十丁目番地号の\-‐−]{0,16}")
_POSTAL_BEFORE = re.compile(r"(?<![0-9\-])[0-9]{3}-[0-9]{4}[\s,、:\"']{0,4}\Z")
"""A postal code right before the prefecture: the address is already a `postal-address`
hit (`scan._classify`), counted once. (Not the end of a phone number: 090-1234-5678.)"""


def _skip_space(text: str, pos: int) -> int:
    return pos + 1 if text[pos : pos + 1] in (" ", "\u3000") else pos


def _longest(text: str, pos: int, names: dict[str, tuple[str, ...]]) -> int:
    """Length of the longest name of `names` starting at `pos` (0: none)."""
    for name in names.get(text[pos : pos + 2], ()):
        if text.startswith(name, pos):
            return len(name)
    return 0


def address(text: str, start: int, end: int) -> str | None:
    """The normalised address (``prefecture+municipality|street``) whose prefecture is
    ``text[start:end]``, or None when no real municipality and block number follow."""
    if _POSTAL_BEFORE.search(text, max(start - 13, 0), start):
        return None  # first: in a customer list nearly every address follows its postal code
    pos = _skip_space(text, end)
    district = _longest(text, pos, _DISTRICTS)
    if district:
        pos = _skip_space(text, pos + district)
    place = _longest(text, pos, _PLACES)
    if not place:
        return None
    head = text[start:end] + text[end : pos + place].replace(" ", "").replace("\u3000", "")
    pos = _skip_space(text, pos + place)
    block = _BLOCK.match(text, pos, min(pos + _REACH, len(text)))
    if block is None:
        return None
    tail = _STREET_TAIL.match(text, block.end())
    stop = tail.end() if tail else block.end()
    return f"{head}|{text[pos:stop].replace(' ', '')}"
