"""PDF text through PDFium with every limit pypdf had: pages, time, decompressed size, the
encrypted-PDF finding; what the vetting pass cannot bound goes to pypdf's limits."""

from __future__ import annotations

import io
import zlib

import pytest

from sendguard.parse import ParseLimits
from sendguard.parse.context import Context
from sendguard.parse.extract import pdf
from tests.support import attachments as build

from .helpers import parse_files, part

SMALL = ParseLimits(max_member_bytes=8 << 20, max_expanded_bytes=32 << 20, time_budget_seconds=10)


def _codes(data: bytes, limits: ParseLimits = SMALL) -> list[str]:
    return [p.code for p in parse_files({"a.pdf": data}, limits).problems]


def _flate_pdf(lines: list[str]) -> bytes:
    """A Japanese CID-font PDF whose content streams are FlateDecode only (as Word and
    Acrobat write them; reportlab's own output chains ASCII85 before Flate)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(build.pdf(lines))))
    for page in writer.pages:
        page.replace_contents(page.get_contents())  # type: ignore[arg-type]
        page.compress_content_streams()
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_japanese_text_is_read_by_pdfium() -> None:
    """A FlateDecode PDF passes the vetting pass and its text comes out of PDFium."""
    data = _flate_pdf(["個人情報を含む資料です。", "電話 ０９０-１２３４-５６７８"])
    assert b"/FlateDecode" in data and b"ASCII85" not in data
    assert pdf._vet(data, 1 << 20, Context.start(ParseLimits()))
    found = part(parse_files({"資料.pdf": data}), "attachment 1")
    assert "個人情報を含む資料です。" in found.text and "090-1234-5678" in found.text


def test_a_small_cap_turns_a_normal_stream_into_a_limit() -> None:
    """The vetting pass inflates every zlib stream with the cap: past it, pdf-stream."""
    data = _flate_pdf(["本文" * 200])
    with pytest.raises(pdf._Bomb):
        pdf._vet(data, 64, Context.start(ParseLimits()))


def test_pages_past_the_limit_are_not_read() -> None:
    """max_pdf_pages: the first pages are read, the rest is a pdf-pages limit problem."""
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    page = canvas.Canvas(out)
    for number in range(3):
        page.drawString(72, 780, f"page {number + 1} of three")
        page.showPage()
    page.save()
    mail = parse_files({"a.pdf": out.getvalue()}, ParseLimits(max_pdf_pages=2))
    assert [p.code for p in mail.problems] == ["pdf-pages"]
    text = part(mail, "attachment 1").text
    assert "page 2 of three" in text and "page 3" not in text


def _bomb_with_lies(expanded: int) -> bytes:
    """A stream bomb whose /Length is 10 and whose compressed data contains 'endstream'."""
    data = build.pdf_with_stream(expanded)
    start = data.index(b"stream\n") + len(b"stream\n")
    length = data.index(b"\nendstream") - start
    return data.replace(b"/Length %d" % length, b"/Length 10", 1)


def test_a_stream_bomb_with_a_lying_length_is_still_a_limit() -> None:
    """Inflation runs to the end of the deflate data, whatever /Length says."""
    assert _codes(_bomb_with_lies(64 << 20)) == ["pdf-stream"]


def test_a_filter_that_zlib_cannot_bound_goes_to_pypdf() -> None:
    """LZW (and any name written with #xx escapes) is vetted by pypdf's own limits."""
    data = _flate_pdf(["本文"])
    lzw = data.replace(b"/FlateDecode", b"/LZWDecode", 1)
    escaped = data.replace(b"/FlateDecode", b"/Fl#61teDecode", 1)
    for variant in (lzw, escaped):
        with pytest.raises(pdf._Unvetted):
            pdf._vet(variant, 1 << 20, Context.start(ParseLimits()))


def test_flate_over_flate_goes_to_pypdf() -> None:
    """A stream that inflates to zlib data again is not followed here: pypdf bounds it."""
    inner = zlib.compress(b"BT (x) Tj ET" * 10)
    data = build.pdf_with_stream(1 << 20).replace(
        b"stream\n",
        b"stream\n" + zlib.compress(inner) + b"\nendstream\nendobj\n9 0 obj\n<<>>\nstream\n",
        1,
    )
    with pytest.raises(pdf._Unvetted):
        pdf._vet(data, 64 << 20, Context.start(ParseLimits()))


def test_encrypted_pdf_is_reported_encrypted() -> None:
    """A user password: encrypted finding, no text (decided by pypdf, as before)."""
    found = part(parse_files({"a.pdf": build.pdf(["秘密"], password="pw")}), "attachment 1")
    assert found.encrypted and found.text == ""


def test_malformed_pdf_is_a_problem_not_a_pass() -> None:
    """Garbage after the header: PDFium refuses it, pypdf names the problem."""
    codes = _codes(b"%PDF-1.7\n" + b"\x00garbage" * 100)
    assert codes and codes[0] in ("bad-pdf", "unreadable")
