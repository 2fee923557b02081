"""Legacy .doc, .ppt and .xls (issue 13): their text is read, no longer only `unsupported`."""

from __future__ import annotations

import io
import struct

import xlwt

from tests.support import attachments as build
from tests.unit.parse.helpers import EXPECTED_ROWS, ROWS, parse_files, part

PHONE = "090-1234-5678"


def test_doc_text_is_read_through_the_piece_table() -> None:
    """UTF-16LE (Japanese) and compressed 8-bit (ASCII) pieces, in order."""
    data = build.doc(["顧客名簿\r田中 太郎 ０９０-１２３４-５６７８\r", "Tel: 03-1234-5678\r"])
    mail = parse_files({"名簿.doc": data})
    assert mail.problems == ()
    text = part(mail, "attachment 1").text
    assert text.splitlines() == ["顧客名簿", f"田中 太郎 {PHONE}", "Tel: 03-1234-5678"]


def test_doc_without_a_piece_table_falls_back_to_utf16_runs() -> None:
    data = bytearray(build.doc([f"顧客名簿 田中 太郎 {PHONE}\r"]))
    # Break the FIB's pointer to the piece table (fcClx/lcbClx): the table is gone.
    word_start = 512  # WordDocument is the first stream: sector 0, right after the header
    struct.pack_into("<LL", data, word_start + 0x01A2, 0x7FFF0000, 16)
    mail = parse_files({"名簿.doc": bytes(data)})
    assert PHONE in part(mail, "attachment 1").text
    assert "田中 太郎" in part(mail, "attachment 1").text


def test_ppt_text_atoms_are_read() -> None:
    mail = parse_files({"提案.ppt": build.ppt(["顧客リスト 田中 太郎", f"Contact: {PHONE}"])})
    assert mail.problems == ()
    assert part(mail, "attachment 1").text.splitlines() == [
        "顧客リスト 田中 太郎",
        f"Contact: {PHONE}",
    ]


def test_xls_is_read_as_a_table() -> None:
    """A real BIFF8 .xls written by xlwt goes through calamine, header row kept."""
    workbook = xlwt.Workbook(encoding="utf-8")
    sheet = workbook.add_sheet("顧客")
    for r, row in enumerate(ROWS):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    out = io.BytesIO()
    workbook.save(out)
    mail = parse_files({"顧客.xls": out.getvalue()})
    assert part(mail, "attachment 1").tables[0].rows == EXPECTED_ROWS
    assert mail.problems == ()


def test_encrypted_doc_is_still_encrypted() -> None:
    data = bytearray(build.doc(["秘密\r"]))
    struct.pack_into("<H", data, 512 + 0x0A, 0x0200 | 0x0100)  # FIB fEncrypted
    mail = parse_files({"a.doc": bytes(data)})
    assert part(mail, "attachment 1").encrypted
    assert [(p.kind, p.code) for p in mail.problems] == [("encrypted", "encrypted-office")]
