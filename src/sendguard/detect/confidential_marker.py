"""`confidential-marker`: words such as 社外秘 or Confidential in subject, body, filenames or
attachment text — a document marked for internal use is about to leave.

One compiled alternation per detector instance (built from the settings), run over every
`texts.Source`. Phrases that merely talk about confidentiality (機密保持契約, an NDA) are
excluded so that ordinary contract mail does not trip the marker.
"""

from __future__ import annotations

import itertools
import re
from typing import ClassVar

import pydantic

from sendguard.detect.base import ContentDetector, DetectContext, DetectorSettings
from sendguard.detect.spans import Spans
from sendguard.detect.texts import mail_sources, nfkc
from sendguard.model import CellDigest, Finding, Mail

DEFAULT_WORDS = (
    "社外秘", "部外秘", "極秘", "機密", "秘密", "取扱注意", "取り扱い注意", "関係者外秘",
    "Confidential", "Internal Only", "Internal Use Only", "Strictly Private",
)  # fmt: skip
DEFAULT_EXCLUDE = (
    "機密保持", "秘密保持", "機密情報の取り扱い", "守秘義務", "Confidentiality Agreement",
    "Non-Disclosure", "Confidentiality Notice",
)  # fmt: skip
DEFAULT_DISCLAIMER_CUES = (
    "intended recipient", "received this in error", "in error, please", "誤送信", "誤って",
    "お心当たりのない", "本メールを破棄", "削除してください",
)  # fmt: skip


class ConfidentialMarkerSettings(DetectorSettings):
    """Settings of `confidential-marker`."""

    words: tuple[str, ...] = pydantic.Field(
        default=DEFAULT_WORDS,
        min_length=1,
        description="Marker words (case-insensitive, NFKC; "
        "spaces also match hyphens and underscores).",
    )
    disclaimer_cues: tuple[str, ...] = pydantic.Field(
        default=DEFAULT_DISCLAIMER_CUES,
        description="Phrases of mail-footer disclaimers ('if you are not the intended "
        "recipient', 誤送信): markers in the same paragraph do not count.",
    )
    exclude: tuple[str, ...] = pydantic.Field(
        default=DEFAULT_EXCLUDE,
        description="Phrases in which a marker word does not count "
        "(機密保持契約 talks about confidentiality, it does not mark a document).",
    )


_SAFE_CASED = frozenset("abcdefghjlmnopqrtuvwxyz0123456789")
"""Lower-case characters that only themselves and their ASCII capital match under
``re.IGNORECASE`` (not i, s, k: İ, ı, ſ and the Kelvin sign fold onto those)."""


def _needle(word: str) -> tuple[str, bool] | None:
    """A piece of `word` that every case-insensitive match of it contains, checkable with a
    plain substring search: (piece, cased). None when the word has no such piece."""
    word = nfkc(word).strip()
    if not any(c.isalpha() and c.lower() != c.upper() for c in word):
        token = max(word.split(), key=len, default="")
        return (token, False) if token else None
    best = ""
    for token in word.lower().split():
        run = ""
        for char in token:
            run = run + char if char in _SAFE_CASED else ""
            best = max(best, run, key=len)
    return (best, True) if len(best) >= 2 else None


_MAX_SPELLINGS = 1024
_NUMBER_CHARS = frozenset("0123456789.-+e")
"""What a plain number cell renders to (``-1234.5``, ``1e-05``)."""
_DATE_CHARS = _NUMBER_CHARS | frozenset(" :,days")
"""What a date, time or duration cell renders to (``2026-04-01 09:30:00``, ``3 days, 1:00:00``)."""


def _needle_pattern(needles: tuple[tuple[str, bool], ...]) -> re.Pattern[str] | None:
    """All needles in one case-sensitive alternation, each cased one in every ASCII case
    spelling: its characters (`_SAFE_CASED`) lower-case from nothing but their ASCII
    capitals, so this matches exactly where a needle is in ``text.lower()``, in one C pass
    without lower-casing a copy (a 10 MB CSV: 170 → 60 ms). None when the spellings would
    be too many (the substring searches are used then)."""
    spellings: set[str] = set()
    for needle, cased in needles:
        if not cased:
            spellings.add(needle)
            continue
        cases = [(c, c.upper()) if c.upper() != c else (c,) for c in needle]
        if len(spellings) + 2 ** sum(len(c) == 2 for c in cases) > _MAX_SPELLINGS:
            return None
        spellings.update(map("".join, itertools.product(*cases)))
    return re.compile("|".join(map(re.escape, sorted(spellings))))


def _alternation(words: tuple[str, ...]) -> str:
    # Longest first so "Internal Use Only" wins over a shorter overlapping word.
    parts = sorted({nfkc(w).strip() for w in words if w.strip()}, key=len, reverse=True)
    return "|".join(re.escape(p).replace(r"\ ", r"[\s_\-]*") for p in parts)


class ConfidentialMarker(ContentDetector):
    """Find confidentiality marker words."""

    id: ClassVar[str] = "confidential-marker"
    description: ClassVar[str] = "Confidentiality markers such as 社外秘 or Confidential"
    Settings: ClassVar[type[pydantic.BaseModel]] = ConfidentialMarkerSettings
    codes: ClassVar[tuple[str, ...]] = ("marker",)

    def __init__(self, settings: pydantic.BaseModel | None = None) -> None:
        super().__init__(settings)
        cfg = self.settings_as(ConfidentialMarkerSettings)
        self._words = re.compile(_alternation(cfg.words), re.IGNORECASE)
        exclude = _alternation(cfg.exclude)
        self._exclude = re.compile(exclude, re.IGNORECASE) if exclude else None
        cues = _alternation(cfg.disclaimer_cues)
        self._cues = re.compile(cues, re.IGNORECASE) if cues else None
        needles = [_needle(w) for w in cfg.words if w.strip()]
        # A case-insensitive alternation has no literal prefix for `re` to skip to, so on an
        # 8 MB sheet it costs ~0.3 s; one substring search per word (C) proves most texts
        # hold no marker at all. Any word without a safe piece disables the shortcut.
        self._needles: tuple[tuple[str, bool], ...] | None = (
            tuple(n for n in needles if n is not None) if all(needles) else None
        )
        self._needle_search = _needle_pattern(self._needles) if self._needles else None

    def _may_hold_marker(self, text: str) -> bool:
        if self._needles is None:
            return True
        if self._needle_search is not None:
            return self._needle_search.search(text) is not None
        lowered: str | None = None
        for needle, cased in self._needles:
            if cased:
                lowered = text.lower() if lowered is None else lowered
                if needle in lowered:
                    return True
            elif needle in text:
                return True
        return False

    def _excluded(self, text: str) -> Spans:
        """Where a marker word does not count: exclusion phrases, and the whole paragraph
        of a disclaimer ("may contain confidential information … intended recipient"),
        which every corporate footer carries."""
        spans = [m.span() for m in self._exclude.finditer(text)] if self._exclude else []
        if self._cues is not None:
            for cue in self._cues.finditer(text):
                start = text.rfind("\n\n", 0, cue.start())
                end = text.find("\n\n", cue.end())
                spans.append((max(start, 0), len(text) if end < 0 else end))
        return Spans(spans)

    def cells_matter(self, cells: CellDigest) -> bool:
        """Every marker match holds a needle, and a needle (no white space) lies within one
        cell: a string cell's text is in the digest; a plain number renders with no more
        than `_NUMBER_CHARS`, a date, time or duration cell no more than `_DATE_CHARS`."""
        rendered = _DATE_CHARS if cells.dates else _NUMBER_CHARS
        if self._needles is None or any(rendered.issuperset(n.lower()) for n, _ in self._needles):
            return True
        return self._may_hold_marker(nfkc("\n".join(cells.texts)))

    def _count(self, text: str) -> tuple[int, set[str]]:
        if not self._may_hold_marker(text):
            return 0, set()
        excluded: Spans | None = None
        count, words = 0, set()
        for match in self._words.finditer(text):
            if excluded is None:
                excluded = self._excluded(text)  # only texts with a marker pay for this
            if excluded.overlaps(*match.span()):
                continue
            count += 1
            words.add(match.group().casefold() if match.group().isascii() else match.group())
        return count, words

    def detect(self, mail: Mail, ctx: DetectContext) -> list[Finding]:
        """One `marker` finding counting every marker word, naming where they were."""
        total, words, where = 0, set[str](), dict[str, None]()
        for source in mail_sources(mail):
            count, found = self._count(source.text)
            if count:
                total += count
                words |= found
                where.setdefault(source.where)
        if not total:
            return []
        return [
            Finding(
                detector=self.id,
                code="marker",
                message="Confidentiality marker ({words}) found {count} times",
                count=total,
                severity="high",
                params={"count": total, "words": ", ".join(sorted(words))},
                evidence=tuple(sorted(words)),
                where=tuple(where),
            )
        ]
