"""Word-processing and presentation files: DOCX, PPTX, ODT and ODP.

Dispatched from `sendguard.parse.extract.extract`. The XML is read directly with
defusedxml (DTDs, entities and external references forbidden) instead of python-docx /
python-pptx: it is faster, it reads headers, footers, notes and comments the object
models hide, and every XML parse in sendguard stays behind one hardened parser.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from sendguard.model import Problem
from sendguard.parse.charsets import normalise
from sendguard.parse.context import Blob, Context, Extracted, problem
from sendguard.parse.extract import zipsafe
from sendguard.parse.extract.tables import TableBuilder

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_TEXT_NS = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
_DOCX_PARTS = re.compile(r"word/(document|header\d*|footer\d*|footnotes|endnotes|comments)\.xml")
_PPTX_PARTS = re.compile(r"ppt/(slides/slide|notesSlides/notesSlide)(\d+)\.xml")


class _Unsafe(Exception):
    def __init__(self, issue: Problem) -> None:
        super().__init__(issue.code)
        self.issue = issue


def _parts(blob: Blob, ctx: Context, wanted: re.Pattern[str]) -> Iterator[tuple[str, Element]]:
    """Vetted package → (member name, parsed root) for members matching *wanted*."""
    archive, issue = zipsafe.open_zip(blob, ctx)
    if archive is None:
        raise _Unsafe(issue or problem("malformed", "bad-zip", blob))
    issue = zipsafe.check_package(archive, blob, ctx)
    if issue is not None:
        raise _Unsafe(issue)
    names = [n for n in archive.namelist() if wanted.fullmatch(n)]
    for name in sorted(names, key=_natural):
        ctx.check_time()
        yield name, _parse(archive, archive.getinfo(name), blob, ctx)


def _natural(name: str) -> tuple[str, int]:
    match = re.search(r"(\d+)\.xml$", name)
    return (name[: match.start()] if match else name, int(match.group(1)) if match else 0)


def _parse(archive: zipfile.ZipFile, info: zipfile.ZipInfo, blob: Blob, ctx: Context) -> Element:
    data, issue = zipsafe.read_member(archive, info, blob, ctx, charge=False)
    if data is None:
        raise _Unsafe(issue or problem("malformed", "bad-zip", blob))
    try:
        root: Element = fromstring(data, forbid_dtd=True)
    except DefusedXmlException:
        raise _Unsafe(problem("limit", "xml-entities", blob, "XML declares entities")) from None
    except ParseError:
        raise _Unsafe(problem("malformed", "bad-xml", blob, info.filename[:80])) from None
    return root


def _run_text(element: Element, text_tag: str) -> str:
    pieces: list[str] = []
    for node in element.iter():
        if node.tag == text_tag and node.text:
            pieces.append(node.text)
        elif node.tag in (f"{_W}tab", f"{_A}tab"):
            pieces.append("\t")
        elif node.tag in (f"{_W}br", f"{_A}br", f"{_W}cr"):
            pieces.append("\n")
    return "".join(pieces)


def _table_rows(table: Element, row_tag: str, cell_tag: str, text_tag: str) -> list[list[str]]:
    return [
        [_run_text(cell, text_tag) for cell in row.iter(cell_tag)] for row in table.iter(row_tag)
    ]


def _docx_body(root: Element, builder: TableBuilder, lines: list[str]) -> None:
    """Paragraphs and tables in document order; tables also become `Table`s."""
    body = root.find(f"{_W}body")
    for block in body if body is not None else root:
        if block.tag == f"{_W}tbl":
            rows = _table_rows(block, f"{_W}tr", f"{_W}tc", f"{_W}t")
            builder.add(f"table {len(builder.tables) + 1}", rows)
            lines.extend("\t".join(row) for row in rows)
        else:
            lines.append(_run_text(block, f"{_W}t"))


def read_docx(blob: Blob, ctx: Context) -> Extracted:
    """DOCX body, tables (as tables), headers, footers, footnotes and comments."""
    builder = TableBuilder(blob, ctx)
    lines: list[str] = []
    try:
        for _name, root in _parts(blob, ctx, _DOCX_PARTS):
            _docx_body(root, builder, lines)
    except _Unsafe as unsafe:
        return Extracted(problems=(unsafe.issue,))
    return _result(lines, builder)


def read_pptx(blob: Blob, ctx: Context) -> Extracted:
    """PPTX slide and speaker-note text in slide order; slide tables as tables."""
    builder = TableBuilder(blob, ctx)
    lines: list[str] = []
    try:
        for name, root in _parts(blob, ctx, _PPTX_PARTS):
            lines.append(f"[{name.rsplit('/', 1)[-1].removesuffix('.xml')}]")
            for table in root.iter(f"{_A}tbl"):
                builder.add(
                    f"table {len(builder.tables) + 1}",
                    _table_rows(table, f"{_A}tr", f"{_A}tc", f"{_A}t"),
                )
            lines.extend(_run_text(p, f"{_A}t") for p in root.iter(f"{_A}p"))
    except _Unsafe as unsafe:
        return Extracted(problems=(unsafe.issue,))
    return _result(lines, builder)


def read_odf_text(blob: Blob, ctx: Context) -> Extracted:
    """ODT/ODP: every paragraph and heading of content.xml."""
    lines: list[str] = []
    try:
        for _name, root in _parts(blob, ctx, re.compile(r"content\.xml")):
            for node in root.iter():
                if node.tag in (f"{_TEXT_NS}p", f"{_TEXT_NS}h"):
                    lines.append("".join(node.itertext()))
    except _Unsafe as unsafe:
        return Extracted(problems=(unsafe.issue,))
    return _result(lines, TableBuilder(blob, ctx))


def _result(lines: list[str], builder: TableBuilder) -> Extracted:
    text = normalise("\n".join(line for line in lines if line))
    return Extracted(text=text, tables=tuple(builder.tables), problems=tuple(builder.problems))
