"""String tools of `lookalike-domain`: homoglyph skeletons, Japanese-IME kana renderings and
a deletion index for bounded Damerau-Levenshtein search.

The index is built once per target set (the organisation's domains plus the built-in
consumer list), so checking 1,000 recipient domains costs a few dictionary look-ups each
instead of 1,000 × targets edit-distance computations.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import MappingProxyType

# Letters that render like ASCII ones: Cyrillic and Greek look-alikes, digits for letters.
_CONFUSABLES = str.maketrans(
    "аеорсхуіјѕԁһӏԛԝьοαεικνρτυχ01ı",
    "aeopcxyijsdhlqwbOaeikvptuxoli",
)
_MULTI = (("rn", "m"), ("vv", "w"), ("cl", "d"))


def skeleton(text: str) -> str:
    """What a reader sees: ``rn`` → ``m``, ``0`` → ``o``, Cyrillic ``а`` → ``a`` …"""
    out = text.lower().translate(_CONFUSABLES).lower()
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
    if abs(len(a) - len(b)) > bound:
        return bound + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > bound:
            return bound + 1
        prev2, prev = prev, cur
    return prev[-1]


def deletion_index(items: Iterable[str], depth: int) -> dict[str, frozenset[str]]:
    """Deletion variant → the items it came from (the SymSpell index)."""
    index: dict[str, set[str]] = {}
    for item in items:
        for variant in deletions(item, depth):
            index.setdefault(variant, set()).add(item)
    return {k: frozenset(v) for k, v in index.items()}
