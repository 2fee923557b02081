"""String tools of `lookalike-domain`: homoglyph skeletons (Unicode TR39 confusables), Japanese-IME
kana renderings, and a deletion index for bounded Damerau-Levenshtein search (the distance
itself is rapidfuzz's optimal string alignment).

The index is built once per target set (the organisation's domains plus the built-in
consumer list), so checking 1,000 recipient domains costs a few dictionary look-ups each
instead of 1,000 × targets edit-distance computations.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from importlib.resources import files
from types import MappingProxyType

from rapidfuzz.distance import OSA


def _tr39() -> dict[str, str]:
    """confusables.txt: every character Unicode TR39 confuses with ASCII letters or digits.

    Generated from the `confusable-homoglyphs` package (tests/support/confusables.py; a test
    fails when the package's data moves on) rather than imported from it at run time:
    importing it costs every relay and pool process ~70 ms and ~7 MB for a 20 KB table.
    """
    table: dict[str, str] = {}
    for line in files(__package__).joinpath("confusables.txt").read_text("utf-8").splitlines():
        if line and not line.startswith("#"):
            point, reading = line.split("\t")
            table[chr(int(point[2:], 16))] = reading
    return table


# Look-alikes TR39 maps to other non-ASCII prototypes (Greek ε → ꞓ, τ → ᴛ, ...) or, for the
# palochka, to ``i``, but which read as these ASCII letters in the fonts mail clients use.
_BEYOND_TR39 = {"ь": "b", "ε": "e", "κ": "k", "τ": "t", "χ": "x", "ӏ": "l"}
_CONFUSABLES = str.maketrans(_tr39() | _BEYOND_TR39)
# Letter pairs read as one letter: TR39 has only rn/m; vv and cl are as easy to misread.
_MULTI = (("rn", "m"), ("vv", "w"), ("cl", "d"))


def skeleton(text: str) -> str:
    """What a reader sees: ``rn`` → ``m``, ``0`` → ``o``, Cyrillic ``а`` → ``a`` …"""
    out = text.lower().translate(_CONFUSABLES)
    for many, one in _MULTI:
        out = out.replace(many, one)
    return out


def mixed_script(text: str) -> bool:
    """Letters outside ASCII mixed with ASCII letters in one name (``gmаil`` with Cyrillic а)."""
    has_ascii = any("a" <= c <= "z" for c in text)
    return has_ascii and any(ord(c) > 0x7F and c.isalpha() and not is_kana(c) for c in text)


def is_kana(char: str) -> bool:
    """Hiragana, katakana or the prolonged sound mark."""
    return "\u3040" <= char <= "\u30ff"


# Romaji → hiragana as a Japanese IME converts while typing (the common subset).
_ROWS = (
    ("", "あ い う え お"), ("k", "か き く け こ"), ("s", "さ し す せ そ"),
    ("t", "た ち つ て と"), ("n", "な に ぬ ね の"), ("h", "は ひ ふ へ ほ"),
    ("m", "ま み む め も"), ("r", "ら り る れ ろ"), ("g", "が ぎ ぐ げ ご"),
    ("z", "ざ じ ず ぜ ぞ"), ("d", "だ ぢ づ で ど"), ("b", "ば び ぶ べ ぼ"),
    ("p", "ぱ ぴ ぷ ぺ ぽ"), ("c", "か し く せ こ"), ("f", "ふぁ ふぃ ふ ふぇ ふぉ"),
    ("l", "ぁ ぃ ぅ ぇ ぉ"), ("x", "ぁ ぃ ぅ ぇ ぉ"), ("j", "じゃ じ じゅ じぇ じょ"),
    ("v", "ゔぁ ゔぃ ゔ ゔぇ ゔぉ"), ("y", "や い ゆ いぇ よ"), ("w", "わ うぃ う うぇ を"),
)  # fmt: skip
_EXTRA = (
    ("nn", "ん"), ("shi", "し"), ("chi", "ち"), ("tsu", "つ"), ("sha", "しゃ"), ("shu", "しゅ"),
    ("sho", "しょ"), ("cha", "ちゃ"), ("chu", "ちゅ"), ("cho", "ちょ"), ("kya", "きゃ"),
    ("kyu", "きゅ"), ("kyo", "きょ"), ("-", "ー"),
)  # fmt: skip
_ROMAJI: MappingProxyType[str, str] = MappingProxyType(
    {
        row + vowel: kana
        for row, kanas in _ROWS
        for vowel, kana in zip("aiueo", kanas.split(), strict=True)
    }
    | dict(_EXTRA)
)
_VOWELS = frozenset("aiueo")


def kana_form(text: str) -> str:
    """The text as an IME in kana mode would have produced it (``gmail`` → ``gまいl``);
    kana already present is kept (katakana folded to hiragana), so a half-switched entry
    and a fully kana-typed one both meet the target's rendering."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if "\u30a1" <= c <= "\u30f6":
            out.append(chr(ord(c) - 0x60))
            i += 1
            continue
        nxt = text[i + 1 : i + 2]
        if c == nxt and c.isascii() and c.isalpha() and c not in _VOWELS and c != "n":
            out.append("っ")
            i += 1
            continue
        if c == "n" and nxt and nxt not in _VOWELS and nxt not in "yn":
            out.append("ん")
            i += 1
            continue
        for size in (3, 2, 1):
            kana = _ROMAJI.get(text[i : i + size])
            if kana is not None:
                out.append(kana)
                i += size
                break
        else:
            out.append(c)
            i += 1
    return "".join(out)


def deletions(text: str, depth: int) -> Iterator[str]:
    """`text` and every string made by deleting up to `depth` characters from it."""
    seen = {text}
    frontier = {text}
    yield text
    for _ in range(depth):
        nxt: set[str] = set()
        for item in frontier:
            for i in range(len(item)):
                variant = item[:i] + item[i + 1 :]
                if variant not in seen:
                    seen.add(variant)
                    nxt.add(variant)
                    yield variant
        frontier = nxt


def distance(a: str, b: str, bound: int) -> int:
    """Optimal-string-alignment distance (edits + adjacent swaps), or bound+1 if larger."""
    return int(OSA.distance(a, b, score_cutoff=bound))


def deletion_index(items: Iterable[str], depth: int) -> dict[str, frozenset[str]]:
    """Deletion variant → the items it came from (the SymSpell index)."""
    index: dict[str, set[str]] = {}
    for item in items:
        for variant in deletions(item, depth):
            index.setdefault(variant, set()).add(item)
    return {k: frozenset(v) for k, v in index.items()}
