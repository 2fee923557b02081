"""Compiled patterns of the `personal-data` scan: one combined pass finds digit runs, ``@``
signs and context labels; everything else is checked only around those hits.

Python's `re` skips quickly to the first characters of an alternation when each branch
starts with a literal or a class, so the whole scan stays one C-level loop over the text;
short numbers (amounts, dates) fail inside the regex and never reach Python.
"""

from __future__ import annotations

import re
from types import MappingProxyType


def _cased(word: str) -> tuple[str, ...]:
    """ASCII label spellings as separate literals (lower, Title, UPPER): IGNORECASE or
    ``[Aa]`` classes would stop `re` from skipping ahead on the first character."""
    return tuple(sorted({word, word.title(), word.upper()})) if word.isascii() else (word,)


# Label text → context kind. Japanese forms are matched literally (NFKC text), ASCII forms
# case-insensitively. Longer labels first so 基礎年金番号 wins over 年金番号.
LABELS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        "mynumber": ("個人番号", "マイナンバー", "my number", "mynumber"),
        "card": (
            "クレジットカード", "カード番号", "クレジット", "card number", "credit card", "card no",
        ),
        "expiry": ("有効期限", "有効期間", "expiry", "expiration", "valid thru", "exp"),
        "cvv": ("セキュリティコード", "cvv2", "cvv", "cvc", "security code"),
        "birth": ("生年月日", "誕生日", "date of birth", "birthday", "birth date", "dob"),
        "bank": ("口座番号", "口座", "支店", "普通預金", "当座預金", "普通", "当座", "account no"),
        "passport": ("旅券番号", "旅券", "パスポート", "passport"),
        "licence": (
            "運転免許", "免許証", "免許番号", "driver's license", "driver license", "licence",
        ),
        "pension": ("基礎年金番号", "年金番号", "年金手帳", "pension"),
        "corporate": ("法人番号", "登録番号", "corporate number"),
        "postal": ("〒", "郵便番号"),
    }
)  # fmt: skip

_LABEL_KIND = {word: kind for kind, words in LABELS.items() for word in words}


def label_kind(text: str) -> str:
    """The context kind of a matched label."""
    return _LABEL_KIND[text.lower()]


_LABEL_ALT = "|".join(
    re.escape(spelling)
    for word in sorted(_LABEL_KIND, key=len, reverse=True)
    for spelling in _cased(word)
)

# One pass over the text. Every branch starts with a literal character, so `re` compiles a
# first-character set and skips everything else in C (about 160 MB/s on Japanese prose):
# - a digit run of ≥ 7 digits with single spaces, hyphens or parentheses inside (phone
#   "03(1234)5678", card "4111 1111 1111 1111"), one branch per leading digit;
# - an "@" (the e-mail address is grown around it in Python);
# - a context label (the kind is looked up from the matched text).
SCAN = re.compile(
    "|".join(rf"{d}(?:[ \-()]{{0,2}}[0-9]){{6,}}" for d in "0123456789") + "|@|" + _LABEL_ALT
)

EMAIL_LOCAL = re.compile(r"[A-Za-z0-9._%+\-]{1,64}\Z")
EMAIL_DOMAIN = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9\-]{0,62}(?:\.[A-Za-z0-9\-]{1,63})*\.[A-Za-z]{2,24}"
)
POSTAL_SHAPE = re.compile(r"\d{3}-\d{4}\Z")

PREFECTURES = (
    "北海道|東京都|大阪府|京都府|青森県|岩手県|宮城県|秋田県|山形県|福島県|茨城県|栃木県|"
    "群馬県|埼玉県|千葉県|神奈川県|新潟県|富山県|石川県|福井県|山梨県|長野県|岐阜県|静岡県|"
    "愛知県|三重県|滋賀県|兵庫県|奈良県|和歌山県|鳥取県|島根県|岡山県|広島県|山口県|徳島県|"
    "香川県|愛媛県|高知県|福岡県|佐賀県|長崎県|熊本県|大分県|宮崎県|鹿児島県|沖縄県"
)
# After a postal code: optional separators, a prefecture, then a municipality (市区町村郡).
ADDRESS_AFTER = re.compile(rf"[\s,、:\"']{{0,4}}(?:{PREFECTURES})[^\s,、\d]{{1,12}}?[市区町村郡]")

DATE = re.compile(
    r"(?P<y>(?:19|20)\d{2}|(?:明治|大正|昭和|平成|令和|[MTSHR])\s?\d{1,2})\s?[年/.\-]\s?"
    r"(?P<m>0?[1-9]|1[0-2])\s?[月/.\-]\s?(?P<d>0?[1-9]|[12]\d|3[01])日?"
)


def date_value(match: re.Match[str]) -> str:
    """One spelling per date (``1985-4-3``, ``昭和60-4-3``) so a date counts once."""
    return f"{match['y'].replace(' ', '')}-{int(match['m'])}-{int(match['d'])}"


DATE_CELL = re.compile(rf"\s*{DATE.pattern}\s*\Z")
PASSPORT = re.compile(r"(?<![A-Za-z])[A-Z]{2}\d{7}(?!\d)")

# A signature starts at a separator line ("--", "-----", "━━━", "*****"), also in quotes.
SIGNATURE = re.compile(r"^[ \t>]*(?:--|[-=_*━─~]{4,})[ \t]*$", re.MULTILINE)
SIGNATURE_SPAN = 500
"""Characters after a separator line treated as a signature block."""
