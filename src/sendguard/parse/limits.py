"""Limits for reading one message: checked before and during parsing, every hit a `Problem`.

Settings build one `ParseLimits` and hand it to `sendguard.parse.parse_message` (usually
inside an `ExtractionPool` worker). Defaults are fail-closed and sit beside the anchors in
the reliability design (ClamAV, rspamd, amavis, Postfix, Haraka): a message that exceeds a
limit is reported uninspectable, never passed as clean.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MiB = 1024 * 1024


class ParseLimits(BaseModel):
    """How much of a message the parser may read, expand and spend time on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_message_bytes: int = Field(
        50 * MiB,
        gt=0,
        description="Raw message size; larger is not parsed (Postfix default 10 MB, "
        "ClamAV 100 MB per file). Headers are still read.",
    )
    max_header_bytes: int = Field(
        256 * 1024,
        gt=0,
        description="Size of the top-level header block (Postfix 100 KiB); room for "
        "1,000 recipients written out in To/Cc.",
    )
    max_addresses: int = Field(
        1000,
        gt=0,
        description="Addresses read from all address headers together (Postfix 1,000 "
        "recipients); the rest are reported, not silently dropped.",
    )
    max_mime_depth: int = Field(
        32,
        gt=0,
        description="Nesting of multipart and message/rfc822 parts (rspamd 64, Postfix "
        "100); the stdlib parser breaks at a few hundred levels.",
    )
    max_parts: int = Field(
        1000,
        gt=0,
        description="MIME parts in the message, counted before the stdlib parser runs.",
    )
    max_archive_depth: int = Field(
        5,
        ge=0,
        description="Archives inside archives (Haraka 5, amavis 14, ClamAV 17).",
    )
    max_archive_members: int = Field(
        1500,
        gt=0,
        description="Files in one archive (amavis 1,500, ClamAV 10,000).",
    )
    max_files: int = Field(
        5000,
        gt=0,
        description="Files read from the whole message, MIME parts and archive members "
        "together (ClamAV 10,000); stops 42.zip-style fan-out.",
    )
    max_member_bytes: int = Field(
        64 * MiB,
        gt=0,
        description="Expanded size of one archive member or decoded part (ClamAV 100 MB).",
    )
    max_expanded_bytes: int = Field(
        256 * MiB,
        gt=0,
        description="Bytes expanded from all archives and compressed streams of the "
        "message together (amavis 300 MiB, ClamAV 400 MB).",
    )
    max_compression_ratio: float = Field(
        150.0,
        gt=1.0,
        description="Expanded/compressed ratio of one member above `ratio_min_bytes`; "
        "zip bombs are far above it, office files rarely pass 30.",
    )
    ratio_min_bytes: int = Field(
        1 * MiB,
        ge=0,
        description="Members smaller than this are not ratio-checked (tiny files "
        "compress extremely well and harmlessly).",
    )
    max_part_text_chars: int = Field(
        10_000_000,
        gt=0,
        description="Characters of text kept per part; the rest is reported as cut.",
    )
    max_table_rows: int = Field(
        200_000,
        gt=0,
        description="Rows kept per table (a 50,000-row customer list fits).",
    )
    max_table_cells: int = Field(
        5_000_000,
        gt=0,
        description="Cells kept per part across its tables; guards wide sparse sheets.",
    )
    max_pdf_pages: int = Field(
        1000,
        gt=0,
        description="Pages of one PDF whose text is extracted.",
    )
    time_budget_seconds: float = Field(
        30.0,
        gt=0,
        description="Wall time for parsing and extracting one message (rspamd 8 s, "
        "ClamAV 2 min); checked between steps, enforced hard by the pool.",
    )
