"""Render evaluation content into the formats mail really carries.

Two ways: `direct_part` builds the `Part` the parser should produce (cells joined by tabs,
one row per line, NFKC), and `attachment_bytes` makes the real file (CSV in every Japanese
encoding, XLSX with openpyxl, DOCX with python-docx, PDF with reportlab, ZIP) for the
parse_message path.
"""

from __future__ import annotations

import csv
import io
import unicodedata
import zipfile
from dataclasses import dataclass

from sendguard.model import Part, Table

TEXT_FORMATS = ("body-text", "body-html")
FILE_FORMATS = (
    "csv-utf8", "csv-utf8-bom", "csv-cp932", "csv-euc-jp", "csv-iso2022jp", "tsv-cp932",
    "xlsx", "docx", "pdf", "zip-csv",
)  # fmt: skip
ENCODINGS = {
    "csv-utf8": "utf-8", "csv-utf8-bom": "utf-8-sig", "csv-cp932": "cp932",
    "csv-euc-jp": "euc_jp", "csv-iso2022jp": "iso2022_jp", "tsv-cp932": "cp932",
    "zip-csv": "cp932",
}  # fmt: skip
FILENAMES = {
    "xlsx": "顧客一覧.xlsx", "docx": "名簿.docx", "pdf": "名簿.pdf", "zip-csv": "data.zip",
}  # fmt: skip


@dataclass(frozen=True)
class Content:
    """What a case sends: a table (rows, first row the header) or free text."""

    rows: tuple[tuple[str, ...], ...] = ()
    text: str = ""

    def rendered(self) -> str:
        """Rows as the parser renders tables: cells joined by tabs, one row per line."""
        return "\n".join("\t".join(r) for r in self.rows) if self.rows else self.text


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def direct_part(content: Content, fmt: str) -> Part:
    """The `Part` parse_message is expected to build for `content` in format `fmt`."""
    text = _nfkc(content.rendered())
    tables: tuple[Table, ...] = ()
    if content.rows and fmt not in ("body-text", "pdf"):
        rows = tuple(tuple(_nfkc(c) for c in r) for r in content.rows)
        tables = (Table(name="Sheet1" if fmt == "xlsx" else "", rows=rows),)
    if fmt in TEXT_FORMATS:
        return Part(("body",), "text/plain", "text/plain", text=text, tables=tables)
    name = FILENAMES.get(fmt, "顧客.tsv" if fmt.startswith("tsv") else "顧客.csv")
    path: tuple[str, ...] = ("attachment 1", name)
    if fmt == "zip-csv":
        path = (*path, "list/顧客.csv")
    return Part(path, "application/octet-stream", "", filename=name, text=text,
                tables=tables, is_attachment=True)  # fmt: skip


def _csv(content: Content, fmt: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(
        out, delimiter="\t" if fmt.startswith("tsv") else ",", lineterminator="\r\n"
    )
    if content.rows:
        writer.writerows(content.rows)
    else:
        out.write(content.text)
    return out.getvalue().encode(ENCODINGS[fmt])


def _xlsx(content: Content) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    for row in content.rows or tuple((line,) for line in content.text.splitlines()):
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _docx(content: Content) -> bytes:
    import docx

    document = docx.Document()
    if content.rows:
        table = document.add_table(rows=len(content.rows), cols=len(content.rows[0]))
        for r, row in enumerate(content.rows):
            for c, cell in enumerate(row):
                table.cell(r, c).text = cell
    else:
        for line in content.text.splitlines():
            document.add_paragraph(line)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _pdf(content: Content) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("HeiseiKakuGo-W5"))
    out = io.BytesIO()
    page = canvas.Canvas(out, pagesize=A4)
    page.setFont("HeiseiKakuGo-W5", 8)
    y = 800
    for line in content.rendered().splitlines():
        page.drawString(30, y, line.replace("\t", "  "))
        y -= 11
        if y < 40:
            page.showPage()
            page.setFont("HeiseiKakuGo-W5", 8)
            y = 800
    page.save()
    return out.getvalue()


def attachment_bytes(content: Content, fmt: str) -> tuple[str, bytes]:
    """(filename, file bytes) of `content` as a real file in format `fmt`."""
    if fmt == "xlsx":
        return FILENAMES[fmt], _xlsx(content)
    if fmt == "docx":
        return FILENAMES[fmt], _docx(content)
    if fmt == "pdf":
        return FILENAMES[fmt], _pdf(content)
    if fmt == "zip-csv":
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr("list/顧客.csv", _csv(content, fmt))
        return FILENAMES[fmt], out.getvalue()
    return ("顧客.tsv" if fmt.startswith("tsv") else "顧客.csv"), _csv(content, fmt)
