"""Shared helpers for the parse tests: build a message around files and parse it."""

from __future__ import annotations

from sendguard.model import Mail, Part
from sendguard.parse import ParseLimits, parse_message
from tests.support.attachments import Attachment, build_message

ROWS = [
    ["氏名", "電話番号", "住所"],
    ["田中 太郎", "０９０-１２３４-５６７８", "東京都千代田区"],
    ["山田 花子", "080-1111-2222", "大阪府大阪市"],
]
"""A small Japanese customer list; the full-width phone number must come out NFKC."""
EXPECTED_ROWS = (
    ("氏名", "電話番号", "住所"),
    ("田中 太郎", "090-1234-5678", "東京都千代田区"),
    ("山田 花子", "080-1111-2222", "大阪府大阪市"),
)


def parse_files(
    files: dict[str, bytes], limits: ParseLimits | None = None, content_type: str = ""
) -> Mail:
    """A message carrying *files* as attachments, parsed with *limits* (defaults)."""
    attachments = [
        Attachment(name, data, content_type or "application/octet-stream")
        for name, data in files.items()
    ]
    return parse_message(build_message(attachments=attachments), limits or ParseLimits())


def part(mail: Mail, label: str) -> Part:
    """The part with *label*; fails listing the labels there are."""
    for candidate in mail.parts:
        if candidate.label == label:
            return candidate
    raise AssertionError(f"no part {label!r} in {[p.label for p in mail.parts]}")
