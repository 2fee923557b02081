"""Every attachment format with Japanese content: text and tables come out, headers kept."""

from __future__ import annotations

import pytest

from sendguard.parse import sniff
from tests.support import attachments as build

from .helpers import EXPECTED_ROWS, ROWS, parse_files, part


def test_xlsx_reads_every_sheet_including_hidden_ones() -> None:
    """XLSX sheets become tables with the header row, hidden sheets too, text NFKC."""
    data = build.xlsx({"顧客": ROWS, "隠し": [["秘密のメモ"]]}, hidden=["隠し"])
    found = part(parse_files({"顧客.xlsx": data}), "attachment 1")
    assert found.sniffed_type == sniff.XLSX
    assert [t.name for t in found.tables] == ["顧客", "隠し"]
    assert found.tables[0].rows == EXPECTED_ROWS
    assert "090-1234-5678" in found.text
    assert "秘密のメモ" in found.text
    assert not found.problem


def test_renamed_spreadsheet_is_sniffed_and_read() -> None:
    """An XLSX named .txt and sent as text/plain is still read as a spreadsheet."""
    mail = parse_files({"メモ.txt": build.xlsx({"s": ROWS})}, content_type="text/plain")
    found = part(mail, "attachment 1")
    assert found.declared_type == "text/plain"
    assert found.sniffed_type == sniff.XLSX
    assert found.tables[0].rows == EXPECTED_ROWS


def test_ods_spreadsheet() -> None:
    """ODS (odfpy) sheets become tables."""
    found = part(parse_files({"一覧.ods": build.ods({"一覧": ROWS})}), "attachment 1")
    assert found.sniffed_type == sniff.ODS
    assert found.tables[0].rows == EXPECTED_ROWS


def test_docx_paragraphs_and_tables() -> None:
    """DOCX paragraphs become text and its tables become tables with the header row."""
    data = build.docx(["顧客一覧を送付します。", "よろしくお願いします。"], [ROWS])
    found = part(parse_files({"報告.docx": data}), "attachment 1")
    assert found.sniffed_type == sniff.DOCX
    assert "顧客一覧を送付します。" in found.text
    assert found.tables[0].rows == EXPECTED_ROWS


def test_pptx_slides_and_table() -> None:
    """PPTX slide text in order, and a slide table as a table."""
    data = build.pptx(["第一四半期の売上", "顧客リスト"], ROWS)
    found = part(parse_files({"発表.pptx": data}), "attachment 1")
    assert found.text.index("第一四半期の売上") < found.text.index("顧客リスト")
    assert found.tables[0].rows == EXPECTED_ROWS


def test_pdf_with_japanese_cid_font() -> None:
    """Text drawn in HeiseiKakuGo-W5 comes back out of the PDF."""
    data = build.pdf(["個人情報を含む資料です。", "電話 ０９０-１２３４-５６７８"])
    found = part(parse_files({"資料.pdf": data}), "attachment 1")
    assert found.sniffed_type == sniff.PDF
    assert "個人情報を含む資料です。" in found.text
    assert "090-1234-5678" in found.text


def test_rtf_in_code_page_932() -> None:
    """RTF with CP932 escapes decodes to Japanese text."""
    found = part(parse_files({"文書.rtf": build.rtf("機密文書：社外秘")}), "attachment 1")
    assert found.sniffed_type == sniff.RTF
    assert "機密文書:社外秘" in found.text


@pytest.mark.parametrize("codec", ["utf-8", "utf-8-sig", "cp932", "euc-jp", "iso2022_jp", "utf-16"])
def test_csv_in_every_japanese_encoding(codec: str) -> None:
    """An undeclared CSV in UTF-8, BOM, CP932, EUC-JP, ISO-2022-JP or UTF-16 reads the same."""
    data = "\r\n".join(",".join(row) for row in ROWS).encode(codec)
    found = part(parse_files({"顧客.csv": data}), "attachment 1")
    assert found.sniffed_type == sniff.CSV
    assert found.tables[0].rows == EXPECTED_ROWS


def test_tsv_by_extension_and_quoted_commas() -> None:
    """A .tsv splits on tabs, and a CSV keeps quoted commas inside cells."""
    tsv = "\n".join("\t".join(row) for row in ROWS).encode("cp932")
    assert part(parse_files({"a.tsv": tsv}), "attachment 1").tables[0].rows == EXPECTED_ROWS
    quoted = '氏名,住所\n"田中","東京都, 千代田区"\n'.encode()
    table = part(parse_files({"b.csv": quoted}), "attachment 1").tables[0]
    assert table.rows[1] == ("田中", "東京都, 千代田区")


def test_zip_with_cp932_names_nested_zip_and_paths() -> None:
    """ZIP members get readable paths; CP932 names (no UTF-8 flag) decode; nesting recurses."""
    inner = build.zip_archive({"中/メモ.txt": "内側の文書".encode()})
    outer = build.cp932_zip({"list/顧客.csv": "氏名,電話\n田中,090".encode("cp932")})
    mail = parse_files({"顧客.zip": outer, "外.zip": build.zip_archive({"in.zip": inner})})
    csv_part = part(mail, "attachment 1 › 顧客.zip › list/顧客.csv")
    assert csv_part.tables[0].rows[0] == ("氏名", "電話")
    assert part(mail, "attachment 2 › 外.zip › in.zip › 中/メモ.txt").text == "内側の文書"
    assert "list/顧客.csv" in part(mail, "attachment 1").text


def test_winmail_dat_body_and_attachments() -> None:
    """TNEF winmail.dat: its body and its attachments (CP932 names) are read."""
    data = build.tnef("添付を確認してください", {"顧客.csv": "氏名,電話\n田中,090".encode("cp932")})
    mail = parse_files({"winmail.dat": data})
    assert part(mail, "attachment 1").text == "添付を確認してください"
    member = part(mail, "attachment 1 › winmail.dat › 顧客.csv")
    assert member.tables[0].rows == (("氏名", "電話"), ("田中", "090"))
