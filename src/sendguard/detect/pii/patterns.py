"""Compiled patterns of the `personal-data` scan: one combined pass finds digit runs, ``@``
signs and Japanese context labels; everything else is checked only around those hits.

Python's `re` skips ahead in C to the first characters of an alternation when every branch
starts with a literal, so the whole scan stays one C-level loop over the text. Profiling
showed two things that break it: a class such as ``[0-9]`` or ``[Aa]`` at a branch start
(no first-character set at all: 10 MB/s) and ASCII labels (every letter of every e-mail
address in a list starts a trial: 17 → 38 MB/s on a dense list). So digits get one branch
each, and ASCII labels (``CVV``, ``passport`` …) are looked for only in the few characters
before a number that needs context (`ASCII_LABELS`).
"""

from __future__ import annotations

import re
from types import MappingProxyType

# Label text → context kind. Japanese forms are matched literally in the scan (NFKC text),
# ASCII forms case-insensitively around candidates. Longer labels first so 基礎年金番号 wins
# over 年金番号.
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
        # Numbers that are codes, not cards (license keys are 4-4-4-4 and pass Luhn 1 in 10).
        "code": (
            "シリアル", "ライセンス", "プロダクトキー", "管理番号", "伝票番号", "注文番号",
            "受注番号", "問い合わせ番号", "追跡番号", "製造番号", "型番", "品番", "商品コード",
            "serial", "license key", "product key", "order no", "tracking",
        ),
    }
)  # fmt: skip

_LABEL_KIND = MappingProxyType({word: kind for kind, words in LABELS.items() for word in words})


def label_kind(text: str) -> str:
    """The context kind of a matched label."""
    return _LABEL_KIND[text.lower()]


def _alternation(words: list[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


PREFECTURES = (
    "北海道|東京都|大阪府|京都府|青森県|岩手県|宮城県|秋田県|山形県|福島県|茨城県|栃木県|"
    "群馬県|埼玉県|千葉県|神奈川県|新潟県|富山県|石川県|福井県|山梨県|長野県|岐阜県|静岡県|"
    "愛知県|三重県|滋賀県|兵庫県|奈良県|和歌山県|鳥取県|島根県|岡山県|広島県|山口県|徳島県|"
    "香川県|愛媛県|高知県|福岡県|佐賀県|長崎県|熊本県|大分県|宮崎県|鹿児島県|沖縄県"
)
# One pass over the text, every branch starting with a literal character:
# - a digit and ≥ 6 more digits, spaces, hyphens or parentheses (phone "03(1234)5678",
#   card "4111 1111 1111 1111"); Python trims and counts the digits (≥ 7);
# - an "@" (the e-mail address is grown around it in Python);
# - a Japanese context label;
# - a prefecture name (a street address may follow: `addresses.address`).
SCAN = re.compile(
    "|".join(rf"{d}[0-9 \-()]{{6,}}" for d in "0123456789")
    + "|@|"
    + _alternation([w for w in _LABEL_KIND if not w.isascii()])
    + "|"
    + PREFECTURES
)
JAPANESE_LABELS = re.compile(_alternation([w for w in _LABEL_KIND if not w.isascii()]))
"""The label branch of `SCAN` alone: the same matches, found without stopping at numbers."""
ASCII_LABELS = re.compile(
    _alternation(
        [
            spelling
            for w in _LABEL_KIND
            if w.isascii()
            for spelling in {w, w.capitalize(), w.title(), w.upper()}
        ]
    )
)
"""English labels (lower, Capitalised, Title, UPPER literals: IGNORECASE would lose the
first-character skip); word boundaries are checked by the caller."""

EMAIL_LOCAL = re.compile(r"[A-Za-z0-9._%+\-]{1,64}\Z")
EMAIL_DOMAIN = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9\-]{0,62}(?:\.[A-Za-z0-9\-]{1,63})*\.[A-Za-z]{2,24}"
)
POSTAL_SHAPE = re.compile(r"\d{3}-\d{4}\Z")

PREFECTURE = re.compile(PREFECTURES)
"""Prefecture names alone (`columns` reads the rows holding one with the text scan)."""
_PREFECTURE_FIRST = "".join(sorted({name[0] for name in PREFECTURES.split("|")}))
# Numbers that can be personal data with no context label near them (`scan.scan_text`
# looks at every other number only inside a label's reach): runs of 10+ digits (phones,
# cards, +81 forms, T + corporate numbers) and shorter runs followed by a prefecture (postal
# codes before an address); plus every "@". Each branch is one of SCAN's number matches,
# from the run's first digit to its end, so Python sees exactly the runs SCAN would give it;
# and every prefecture name (street addresses need no label either).
LABEL_FREE = re.compile(
    "|".join(
        rf"{d}(?<!\d{d})(?:(?:[ \-()]*+\d){{9}}[0-9 \-()]*+"
        rf"|[0-9 \-()]{{6,}}+(?=[\s,、:\"']{{0,4}}[{_PREFECTURE_FIRST}]))"
        for d in "0123456789"
    )
    + "|@|"
    + PREFECTURES
)
"""(A run's first digit is never right after a digit: the look-behind only saves the
attempts in the middle of runs. The prefecture is checked by its first character here and
exactly by `ADDRESS_AFTER` in Python.)"""

# After a postal code: optional separators, a prefecture, then a municipality (市区町村郡).
ADDRESS_AFTER = re.compile(rf"[\s,、:\"']{{0,4}}(?:{PREFECTURES})[^\s,、\d]{{1,12}}?[市区町村郡]")

DATE = re.compile(
    r"(?P<y>(?:19|20)\d{2}|(?:明治|大正|昭和|平成|令和|[MTSHR])\s?\d{1,2})\s?[年/.\-]\s?"
    r"(?P<m>0?[1-9]|1[0-2])\s?[月/.\-]\s?(?P<d>0?[1-9]|[12]\d|3[01])日?"
)


def date_value(match: re.Match[str]) -> str:
    """One spelling per date (``1985-4-3``, ``昭和60-4-3``) so a date counts once."""
    return f"{match['y'].replace(' ', '')}-{int(match['m'])}-{int(match['d'])}"


DATE_RUN = re.compile(
    r"(?P<y>(?:19|20)\d{2})[\- ](?P<m>0?[1-9]|1[0-2])[\- ](?P<d>0?[1-9]|[12]\d|3[01])"
)
DATE_CELL = re.compile(rf"\s*{DATE.pattern}\s*\Z")
PASSPORT = re.compile(r"(?<![A-Za-z])[A-Z]{2}\d{7}(?!\d)")

# A signature starts at a separator line ("--", "-----", "━━━", "*****"), also in quotes.
SIGNATURE = re.compile(r"^[ \t>]*(?:--|[-=_*━─~]{4,})[ \t]*$", re.MULTILINE)
SIGNATURE_SPAN = 500
"""Characters after a separator line treated as a signature block."""
