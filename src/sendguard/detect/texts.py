"""The texts a content detector reads from a `Mail`: subject, filenames and every part.

Shared by `personal-data` and `confidential-marker` so both look at exactly the same places
and name them the same way in `Finding.where`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from sendguard.model import Mail, Part

SourceKind = Literal["subject", "filename", "body", "attachment"]


@dataclass(frozen=True, slots=True)
class Source:
    """One piece of text and where it came from."""

    where: str
    text: str
    kind: SourceKind
    part: Part | None = None


def nfkc(text: str) -> str:
    """NFKC form; the quick check avoids re-normalising text the parser already normalised."""
    if unicodedata.is_normalized("NFKC", text):
        return text
    return unicodedata.normalize("NFKC", text)


def mail_sources(mail: Mail) -> Iterator[Source]:
    """Subject, then for each part its filename and its extracted text (all NFKC)."""
    if mail.subject:
        yield Source("subject", nfkc(mail.subject), "subject")
    for part in mail.parts:
        label = part.label or "message"
        if part.filename:
            yield Source(label, nfkc(part.filename), "filename", part)
        if part.text:
            kind: SourceKind = "attachment" if part.is_attachment else "body"
            yield Source(label, nfkc(part.text), kind, part)
