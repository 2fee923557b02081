"""`personal-data`'s candidate-first proof for workbooks: can cells that render to no more
than a `CellDigest` produce any finding? (`parse.extract.cells` reads the digest from the
raw XLSX parts; when no detector says yes, no table is built.)

The proof follows the scan (`scan`, `records`, `columns`) and must stay a superset of it:

- Every number that needs a context label — My Number, licence, pension, bank account,
  passport, birth date, corporate number, postal code without its shape — needs a label
  text (`LABELS`, Japanese literally, English in any case; not the code, expiry and CVV
  labels, which only take a card away or raise its severity) or a header naming a
  personal column (`records`); so does every table record and every cell-by-cell check.
  Without any, only the label-free items remain (`patterns.LABEL_FREE`):
- "@" (e-mail addresses);
- a prefecture followed, in the same cell line, by a municipality (`addresses.address`
  reads from the prefecture on; a tab or newline ends it);
- a run the scan reads with 10 or more digits (phones, cards, +81 forms, T + corporate
  numbers); shorter runs only as postal codes in their ``123-4567`` shape before an address.
- Plain number cells (`CellDigest.number_digits`) render as digits with no leading zero,
  at most 6 after a point, so up to 9 digits they are none of these; text records need
  such hits.
- Date, time and duration cells (`CellDigest.dates`) render as ``YYYY-MM-DD`` (year
  1899-9999), ``YYYY-MM-DD HH:MM:SS[.ffffff]``, ``HH:MM:SS[.ffffff]`` or ``N day[s],
  H:MM:SS[.ffffff]`` (N of at most `number_digits` digits). Their runs as `scan` reads
  them: the date's 8 digits (a birth date only after a birth label: `scan._number`); the
  date and hour, 10 digits starting with 1-9 (no phone: `scan._phone` wants a leading 0; a
  pension number only after a pension label), split at the space into 8 and 2 (nothing
  without a label); N (at most 9 digits: a bank account after a bank label at 7); no run
  of 7 digits after a colon or a point (``ffffff`` is 6). No "@", prefecture, label or
  header spelling (`records.HEADER_TEXT`) is among their characters. So a date cell adds
  to a finding only with a label or header text, which this proof answers "maybe" for.

Cells are separated by tabs and newlines in the rendered text, which none of these spans,
so each cell text is judged alone (joined here by newlines).
"""

from __future__ import annotations

import re

from sendguard.detect.pii.patterns import LABELS, PREFECTURES
from sendguard.detect.pii.records import HEADER_TEXT
from sendguard.model import CellDigest

_INERT_KINDS = frozenset({"code", "expiry", "cvv"})
"""Label kinds that only take a card hit away (a serial or order number) or raise its
severity (`scan._classify`, `scan.strengthen`): alone they find nothing."""
_WORDS = sorted(
    (w for kind, words in LABELS.items() if kind not in _INERT_KINDS for w in words),
    key=len,
    reverse=True,
)
_JAPANESE = re.compile("|".join(re.escape(w) for w in _WORDS if not w.isascii()))
_LOWER_WORDS = re.compile("|".join(re.escape(w) for w in sorted(w for w in _WORDS if w.isascii())))
"""English labels, searched in the folded text."""
_LOWER_HEADERS = re.compile(HEADER_TEXT.pattern.lower())
"""`records.HEADER_TEXT` searched in the folded text: the same matches as its IGNORECASE
(which costs 50 ms on a ledger's 26,000 texts, this 5), its pieces being lower case
letters, kana, kanji, spaces and the white-space and comma classes of its bounds."""
_FOLDS = (("İ", "i"), ("ı", "i"), ("ſ", "s"), ("K", "k"))
"""The non-ASCII letters `re.IGNORECASE` matches to ASCII ones (`re` documentation)."""
_LONG_RUN = re.compile(r"(?<![0-9])[0-9](?:[ \-()]*+[0-9]){9}")
r"""Ten digits apart only by spaces, hyphens or brackets. Tried only where a block of digits
begins: when a match starts at a digit after another digit, one starts at the first digit
of that block too (the digits between are the same run), so the answer is that of
``[0-9](?:[ \-()]*+[0-9]){9}``; tried at every digit, a ledger's 26,000 ids cost 30 ms."""
_POSTAL = re.compile(r"-(?<=[0-9]{3}-)[0-9]{4}")
"""``[0-9]{3}-[0-9]{4}``, tried only at hyphens (a literal first: a C-level scan)."""
_ADDRESS_START = re.compile(rf"(?:{PREFECTURES})(?![ \t]*(?:\n|\Z))")
"""A prefecture with anything but spaces after it in its line: an address may start there."""
_SAFE_DIGITS = 9


def cells_may_hold(cells: CellDigest, normal: str) -> bool:
    """False only when no personal-data finding can come from such cells. `normal`: the
    digest's texts joined by newlines and normalised as the detector normalises text."""
    if cells.number_digits > _SAFE_DIGITS:
        return True
    if "@" in normal or _JAPANESE.search(normal):
        return True
    folded = normal
    for letter, ascii_letter in _FOLDS:
        if letter in folded:
            folded = folded.replace(letter, ascii_letter)
    folded = folded.lower()  # after the folds: "İ".lower() is two characters
    if _LOWER_WORDS.search(folded) or _LOWER_HEADERS.search(folded):
        return True
    return bool(_LONG_RUN.search(normal) or _POSTAL.search(normal) or _ADDRESS_START.search(normal))
