"""PDF text through PDFium (pypdfium2), with pypdf as the careful fallback.

Dispatched from `sendguard.parse.extract.extract`. PDFium (C++, shipped inside the
pypdfium2 wheel) reads a 35-page Japanese PDF several times faster than pypdf's pure-Python
content-stream parser, but it has no per-stream decompression limit. So before PDFium sees
a file, `_vet` inflates every stream itself, each with zlib's own output cap (C speed): a
stream that would expand past the cap is the same `pdf-stream` limit problem as before, and
anything it cannot bound — encryption, LZW or run-length filters, filter chains, inline
images, a stream it cannot decode — sends the file to pypdf, whose per-stream limits
(`pypdf.apply_configuration`, scoped to the call) still apply there. A PDF that needs a
password to open is reported encrypted; one with only an owner password (printing/copy
restrictions) opens with the empty user password and is read normally (by pypdf).
Pages past `max_pdf_pages` are not read; the time budget is checked between pages.
"""

from __future__ import annotations

import io
import re
import threading
import zlib
from typing import Any

from sendguard.parse.charsets import normalise
from sendguard.parse.context import Blob, Context, Extracted, problem

_PDFIUM_LOCK = threading.Lock()
"""PDFium is not thread-safe; the relay's workers are processes, but threads may call us."""
_STREAM = re.compile(rb"stream[\s\x00]*")
"""Every ``stream`` keyword (``endstream`` too: its data is never zlib, so it costs nothing)."""
_RISKY_NAMES = re.compile(
    rb"/(?:LZW|RunLength|RL|ASCII85|A85|ASCIIHex|AHx|Crypt)|/[^\s/<>\[\]()]*#[0-9A-Fa-f]{2}"
)
"""Filters whose output zlib cannot bound here (LZW, run-length, chains behind ASCII
encodings, crypt filters), and names written with #xx escapes (``/Fl#61teDecode``)."""
_INLINE_IMAGE = re.compile(rb"BI[\s/]")
_BEFORE_OPERATOR = frozenset(b" \t\r\n\x0c\x00])>")


class _Unvetted(Exception):
    """The fast path cannot bound this file: read it with pypdf instead."""


class _Bomb(Exception):
    """A stream inflates past the cap."""


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
    try:
        if _vet(blob.data, cap, ctx):
            return _read_pdfium(blob, ctx)
    except _Unvetted:
        pass
    except _Bomb:
        ctx.bomb = True
        detail = f"a stream expands past {cap} bytes"
        return Extracted(problems=(problem("limit", "pdf-stream", blob, detail),))
    return _read_pypdf(blob, ctx, cap)


def _inline_image(content: bytes) -> bool:
    """A ``BI`` operator (inline image) in a content stream: literal search, then context."""
    return any(
        m.start() == 0 or content[m.start() - 1] in _BEFORE_OPERATOR
        for m in _INLINE_IMAGE.finditer(content)
    )


def _zlib_header(data: bytes) -> bool:
    return len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0


def _vet(data: bytes, cap: int, ctx: Context) -> bool:
    """True when every stream is bounded by `cap` and PDFium may read the file.

    Raises `_Bomb` for a zlib stream that inflates past the cap, `_Unvetted` for what this
    check cannot bound. Every ``stream`` keyword is tried, whatever its dictionary says (a
    hostile dictionary can hide its filter in a string or an escaped name): data that starts
    as zlib is inflated from there to the end of the deflate data — not to the declared
    /Length or the next ``endstream``, which a hostile file can misstate — capped at
    `cap` + 1 bytes. Data that is not zlib is either unfiltered or an image codec (PDFium
    does not decode images to extract text), once no other filter is named in the file.
    """
    if b"/Encrypt" in data or _RISKY_NAMES.search(data):
        raise _Unvetted  # pypdf decides encrypted vs. owner-password-only, and bounds LZW …
    if _inline_image(data):
        raise _Unvetted  # inline images in an unfiltered content stream carry filters
    view = memoryview(data)
    for number, match in enumerate(_STREAM.finditer(data)):
        if number % 64 == 0:
            ctx.check_time()
        if not _zlib_header(data[match.end() : match.end() + 2]):
            continue
        inflater = zlib.decompressobj()
        try:
            out = inflater.decompress(view[match.end() :], cap + 1)
        except zlib.error:
            continue  # PDFium's zlib cannot inflate it either
        if len(out) > cap:
            raise _Bomb
        if _zlib_header(out[:2]) or _inline_image(out):
            raise _Unvetted  # Flate over Flate, or inline images: pypdf bounds them
    return True


def _read_pdfium(blob: Blob, ctx: Context) -> Extracted:
    import pypdfium2 as pdfium  # type: ignore[import-untyped]  # ships no type information

    pages: list[str] = []
    problems = []
    with _PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(blob.data)
        except pdfium.PdfiumError as exc:
            if "password" in str(exc).lower():
                return _encrypted(blob)
            raise _Unvetted from None  # let pypdf say what is wrong with it
        try:
            for number in range(len(document)):
                if number >= ctx.limits.max_pdf_pages:
                    detail = f"pages after {ctx.limits.max_pdf_pages} not read"
                    problems.append(problem("limit", "pdf-pages", blob, detail))
                    break
                ctx.check_time()
                page = document[number]
                try:
                    textpage = page.get_textpage()
                    try:
                        pages.append(textpage.get_text_range())
                    finally:
                        textpage.close()
                finally:
                    page.close()
        finally:
            document.close()
    text = "\n".join(pages).replace("\r\n", "\n").replace("\r", "\n")
    return Extracted(text=normalise(text), problems=tuple(problems))


def _read_pypdf(blob: Blob, ctx: Context, cap: int) -> Extracted:
    # Imported here: only PDFs PDFium may not read come this way, and pypdf costs every
    # worker ~0.25 s of CPU and ~10 MB at start.
    from pypdf import apply_configuration
    from pypdf.errors import FileNotDecryptedError, LimitReachedError, PdfReadError

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
    from pypdf import PdfReader

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
