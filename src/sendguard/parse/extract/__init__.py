"""Extraction dispatch: one blob in, one `Part` (plus its archive members) out.

Called by `sendguard.parse.mime.walk_message` for every MIME leaf and by the archive
readers for every member. The sniffed type (magic bytes) picks the reader, one module per
format family in this package. A reader that fails on hostile or broken input never
escapes: its exception becomes a ``malformed`` problem on the part, and only the time
budget (`BudgetExceeded`) unwinds further, to `parse_message`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import MappingProxyType

from sendguard.model import Part, Problem
from sendguard.parse import sniff as kinds
from sendguard.parse.context import Blob, BudgetExceeded, Context, Extracted, StopScan, problem

Reader = Callable[[Blob, Context], Extracted]

# Module and function, imported at the first blob of that kind: plain mail (the relay
# process's inline inspection) never loads the archive, office and spreadsheet libraries
# (py7zr and its codecs, olefile, calamine… ~15 MB per process, ~0.2 s).
_READERS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        kinds.PLAIN: ("text", "read_plain"),
        kinds.HTML: ("text", "read_html"),
        kinds.CSV: ("text", "read_csv"),
        kinds.TSV: ("text", "read_csv"),
        kinds.XLSX: ("sheets", "read_sheets"),
        kinds.XLSM: ("sheets", "read_sheets"),
        kinds.ODS: ("sheets", "read_sheets"),
        kinds.DOCX: ("documents", "read_docx"),
        kinds.PPTX: ("documents", "read_pptx"),
        kinds.ODT: ("documents", "read_odf_text"),
        kinds.ODP: ("documents", "read_odf_text"),
        kinds.PDF: ("pdf", "read_pdf"),
        kinds.RTF: ("office", "read_rtf"),
        kinds.OLE: ("office", "read_ole"),
        kinds.TNEF: ("office", "read_tnef"),
        kinds.ZIP: ("archive", "read_zip"),
        kinds.SEVEN_Z: ("archive", "read_7z"),
        kinds.RAR: ("archive", "read_rar"),
        kinds.GZIP: ("packed", "read_gzip"),
        kinds.TAR: ("packed", "read_tar"),
        kinds.RFC822: ("archive", "read_rfc822"),
    }
)
_LOADED: dict[str, Reader] = {}


def reader_for(sniffed: str) -> Reader | None:
    """The reader of a sniffed kind, its module imported on first use (None: unsupported).

    Outside `_run` on purpose: a reader that cannot be imported is a broken installation,
    not a hostile file, and fails the inspection (closed) instead of becoming a problem."""
    reader = _LOADED.get(sniffed)
    if reader is None and sniffed in _READERS:
        module, name = _READERS[sniffed]
        found: Reader = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        reader = _LOADED[sniffed] = found
    return reader


_SILENT = ("image/", "application/x-riff")


def _unsupported(blob: Blob, sniffed: str) -> Extracted:
    if sniffed.startswith(_SILENT) or not blob.data:
        return Extracted()  # pictures carry no text we could read; not a finding
    return Extracted(problems=(problem("unsupported", "unsupported-format", blob, sniffed),))


def _run(reader: Reader, blob: Blob, ctx: Context, sniffed: str) -> Extracted:
    try:
        return reader(blob, ctx)
    except (BudgetExceeded, StopScan):
        raise
    except MemoryError:
        return Extracted(problems=(problem("limit", "memory", blob, sniffed),))
    except RecursionError:
        return Extracted(problems=(problem("malformed", "too-deep", blob, sniffed),))
    except Exception as exc:  # noqa: BLE001 - any reader failure on hostile input fails closed
        detail = f"{sniffed}: {type(exc).__name__}"
        return Extracted(problems=(problem("malformed", "unreadable", blob, detail),))


def extract(blob: Blob, ctx: Context) -> None:
    """Read *blob* by its sniffed type and append its `Part` to *ctx*.

    Container readers (ZIP, TNEF, forwarded messages) append their members while they run;
    the container's own part is inserted before them, so parts stay in reading order.
    """
    ctx.check_time()
    ctx.files += 1
    if ctx.files > ctx.limits.max_files:
        if ctx.files == ctx.limits.max_files + 1:  # report once, then skip silently
            detail = f"more than {ctx.limits.max_files} files in the message"
            ctx.add("limit", "file-count", blob.label, detail)
        return
    sniffed = kinds.sniff(blob.data, blob.filename, blob.declared_type)
    index = len(ctx.parts)
    reader = reader_for(sniffed)
    if reader is None:
        result = _unsupported(blob, sniffed)
    elif ctx.row_cap is not None and ctx.stop is not None and sniffed in _CUT_KINDS:
        result = _read_rows_first(reader, blob, ctx, sniffed)
    else:
        result = _run(reader, blob, ctx, sniffed)
    part, problems = _finish(blob, sniffed, result, ctx)
    ctx.problems.extend(problems)
    ctx.parts.insert(index, part)


_CUT_KINDS = frozenset({kinds.CSV, kinds.TSV, kinds.XLSX, kinds.XLSM, kinds.ODS})
"""Readers that honour `Context.row_cap` (none of them adds parts of its own)."""


def _read_rows_first(reader: Reader, blob: Blob, ctx: Context, sniffed: str) -> Extracted:
    """The relay's row prefix at extraction: a table reader reads the first
    `Context.row_cap` rows; when that prefix (with every part read before it) already makes
    `Context.stop` answer True, it is the part and the walk ends (`StopScan`), else the blob
    is read again in full with the context as it was before the first reading.

    Sound for the same reason as `policy.ceiling.row_prefix`: the prefix holds the first rows
    of the tables and the text lines they render to, and content detectors are monotone in
    a text prefix, so its findings can only be fewer than those of the whole part."""
    assert ctx.row_cap is not None and ctx.stop is not None
    saved = (ctx.expanded, ctx.expanded_reported, ctx.bomb, len(ctx.problems), ctx.files)
    ctx.prefix_rows = ctx.row_cap
    try:
        result = _run(reader, blob, ctx, sniffed)
    finally:
        ctx.prefix_rows = None
    if not result.cut:
        return result
    part, problems = _finish(blob, sniffed, result, ctx)
    if ctx.stop((*ctx.parts, part)):
        ctx.rows_cut = True
        ctx.problems.extend(problems)
        ctx.parts.append(part)  # these readers add no parts of their own: it is the last
        raise StopScan
    if result.rest is not None:
        rest = result.rest
        return _run(lambda _blob, _ctx: rest(), blob, ctx, sniffed)  # the reading goes on
    ctx.expanded, ctx.expanded_reported, ctx.bomb, seen, ctx.files = saved
    del ctx.problems[seen:]
    return _run(reader, blob, ctx, sniffed)


def _finish(
    blob: Blob, sniffed: str, result: Extracted, ctx: Context
) -> tuple[Part, list[Problem]]:
    problems = list(result.problems)
    body = result.text
    if len(body) > ctx.limits.max_part_text_chars:
        body = body[: ctx.limits.max_part_text_chars]
        detail = f"text cut at {ctx.limits.max_part_text_chars} characters"
        problems.append(problem("limit", "text-size", blob, detail))
    return _part(blob, sniffed, result, body, problems), problems


def _part(blob: Blob, sniffed: str, result: Extracted, body: str, problems: list[Problem]) -> Part:
    return Part(
        path=blob.path,
        declared_type=blob.declared_type,
        sniffed_type=sniffed,
        filename=blob.filename,
        size=len(blob.data),
        text=body,
        tables=result.tables,
        is_attachment=blob.is_attachment,
        encrypted=result.encrypted,
        problem=problems[0].code if problems else "",
    )
