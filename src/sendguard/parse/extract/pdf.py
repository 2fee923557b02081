"""PDF text through pypdf, with pypdf's own per-stream limits set from `ParseLimits`.

Dispatched from `sendguard.parse.extract.extract`. pypdf (pure Python) was chosen over
pdfminer.six because it has explicit decompression and parsing limits per stream
(`pypdf.apply_configuration`, scoped to this call by a context variable) and reads the
Japanese CID fonts we tested. A PDF that needs a password to open is reported encrypted;
one with only an owner password (printing/copy restrictions) opens with the empty user
password and is read normally.
"""

from __future__ import annotations

import io
from typing import Any

from pypdf import PdfReader, apply_configuration
from pypdf.errors import FileNotDecryptedError, LimitReachedError, PdfReadError

from sendguard.parse.charsets import normalise
from sendguard.parse.context import Blob, Context, Extracted, problem


def _configuration(cap: int) -> dict[str, Any]:
    """pypdf limits for one file: every decoder's output capped at *cap* bytes."""
    return {
        "maximum_declared_stream_length": cap,
        "array_based_stream_maximum_output_length": cap,
        "jbig2_maximum_output_length": cap,
        "lzw_maximum_output_length": cap,
        "run_length_maximum_output_length": cap,
        "zlib_maximum_output_length": cap,
        "brotli_maximum_output_length": cap,
        "image_maximum_buffer_size": cap,
        "stream_decoding_work_maximum_length": 2 * cap,
    }


def read_pdf(blob: Blob, ctx: Context) -> Extracted:
    """Text of every page (up to `max_pdf_pages`), or an encrypted/limit problem."""
    cap = max(1, min(ctx.limits.max_member_bytes, ctx.remaining_expansion()))
    ctx.charge(len(blob.data), blob.label)
    with apply_configuration(**_configuration(cap)):
        try:
            return _read(blob, ctx)
        except LimitReachedError:
            ctx.bomb = True
            detail = f"a stream expands past {cap} bytes"
            return Extracted(problems=(problem("limit", "pdf-stream", blob, detail),))
        except FileNotDecryptedError:
            return _encrypted(blob)
        except PdfReadError as exc:
            return Extracted(problems=(problem("malformed", "bad-pdf", blob, type(exc).__name__),))


def _encrypted(blob: Blob) -> Extracted:
    return Extracted(encrypted=True, problems=(problem("encrypted", "encrypted-pdf", blob),))


def _read(blob: Blob, ctx: Context) -> Extracted:
    reader = PdfReader(io.BytesIO(blob.data))
    if reader.is_encrypted and not reader.decrypt(""):
        return _encrypted(blob)
    pages: list[str] = []
    problems = []
    for number, page in enumerate(reader.pages):
        if number >= ctx.limits.max_pdf_pages:
            detail = f"pages after {ctx.limits.max_pdf_pages} not read"
            problems.append(problem("limit", "pdf-pages", blob, detail))
            break
        ctx.check_time()
        # extract_text() swallows LimitReachedError and returns "": decode the content
        # stream first (pypdf caches it) so a stream bomb surfaces as a limit problem.
        contents = page.get_contents()
        if contents is not None:
            contents.get_data()
        pages.append(page.extract_text())
    return Extracted(text=normalise("\n".join(pages)), problems=tuple(problems))
