"""Builders for real test files and messages: office documents, PDFs, archives, bombs.

Shipped so every test suite (parse, detectors, policy, end-to-end) builds the same kind of
files the same way: `build_message` makes a MIME message with Japanese headers, bodies in
any charset and attachments; the other builders make real files with the real libraries
(openpyxl, python-docx, python-pptx, reportlab with a Japanese CID font, odfpy,
msoffcrypto-tool, pyzipper). Formats no Python library writes (ZipCrypto, CP932 ZIP names,
RAR, 7z headers, TNEF, overlapping-entry bombs) are written byte by byte from their specs,
and the tests check them with the real readers where one exists.

The test-only libraries are imported inside each builder, so importing this module needs
only the runtime dependencies. The module is longer than the house 300 lines on purpose:
it is a catalogue of independent builders, easier to find in one place.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.header import Header
from email.mime.application import MIMEApplication
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import formataddr

Rows = Sequence[Sequence[object]]

# --------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Attachment:
    """One file to attach; *filename_style* picks RFC 2231 (standard) or RFC 2047 (Outlook)."""

    filename: str
    data: bytes
    content_type: str = "application/octet-stream"
    filename_style: str = "rfc2231"
    filename_charset: str = "utf-8"


def _header(text: str, charset: str) -> str:
    return text if text.isascii() else Header(text, charset).encode()


def _attachment_part(item: Attachment) -> MIMEBase:
    maintype, _, subtype = item.content_type.partition("/")
    if maintype == "message":
        part: MIMEBase = MIMEBase(maintype, subtype)
        part.set_payload(item.data.decode("utf-8", "surrogateescape"))
    else:
        part = MIMEApplication(item.data, subtype or "octet-stream")
        if maintype != "application":
            part.replace_header("Content-Type", item.content_type)
    if item.filename_style == "rfc2047":
        part.add_header(
            "Content-Disposition",
            "attachment",
            filename=_header(item.filename, item.filename_charset),
        )
    else:
        part.add_header(
            "Content-Disposition", "attachment", filename=(item.filename_charset, "", item.filename)
        )
    return part


def build_message(
    *,
    from_: tuple[str, str] = ("送信者", "sender@example.co.jp"),
    to: Iterable[tuple[str, str]] = (("", "to@example.com"),),
    cc: Iterable[tuple[str, str]] = (),
    subject: str = "テスト",
    body: str = "本文です。",
    charset: str = "utf-8",
    html: str | None = None,
    attachments: Sequence[Attachment] = (),
    header_charset: str = "utf-8",
) -> bytes:
    """A complete message as CRLF bytes; names and subject RFC 2047-encoded in *header_charset*."""
    text = MIMEText(body, "plain", charset)
    content: MIMEBase = text
    if html is not None:
        content = MIMEMultipart("alternative", _subparts=[text, MIMEText(html, "html", charset)])
    message: MIMEBase = content
    if attachments:
        message = MIMEMultipart("mixed", _subparts=[content, *map(_attachment_part, attachments)])
    message["From"] = formataddr(from_, header_charset)
    recipients = [formataddr(pair, header_charset) for pair in to]
    message["To"] = ", ".join(recipients)
    copies = [formataddr(pair, header_charset) for pair in cc]
    if copies:
        message["Cc"] = ", ".join(copies)
    message["Subject"] = _header(subject, header_charset)
    message["Message-ID"] = "<test@example.co.jp>"
    return message.as_bytes(policy=compat32.clone(linesep="\r\n"))


def nested_multipart(depth: int) -> bytes:
    """A message with *depth* multiparts nested inside each other (a MIME-depth bomb)."""
    lines = [b"From: a@example.com", b"To: b@example.com", b"Subject: deep"]
    lines.append(b'Content-Type: multipart/mixed; boundary="b0"')
    lines.append(b"")
    for level in range(1, depth):
        lines += [
            b"--b%d" % (level - 1),
            b'Content-Type: multipart/mixed; boundary="b%d"' % level,
            b"",
        ]
    lines += [b"--b%d" % (depth - 1), b"Content-Type: text/plain", b"", b"bottom"]
    lines += [b"--b%d--" % level for level in reversed(range(depth))]
    return b"\r\n".join(lines) + b"\r\n"


# --------------------------------------------------------------------------- office files


def xlsx(sheets: Mapping[str, Rows], *, hidden: Sequence[str] = ()) -> bytes:
    """An XLSX workbook (openpyxl write-only) with one sheet per mapping entry."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        if name in hidden:
            sheet.sheet_state = "hidden"
        for row in rows:
            sheet.append(list(row))
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def docx(paragraphs: Sequence[str], tables: Sequence[Rows] = ()) -> bytes:
    """A DOCX document (python-docx) with paragraphs and tables."""
    from docx import Document

    document = Document()
    for text in paragraphs:
        document.add_paragraph(text)
    for rows in tables:
        table = document.add_table(rows=len(rows), cols=max(len(r) for r in rows))
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                table.cell(r, c).text = str(value)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pptx(slides: Sequence[str], table: Rows | None = None) -> bytes:
    """A PPTX deck (python-pptx), one text box per slide, optionally a table on the last."""
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    for text in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[6])
        slide.shapes.add_textbox(Inches(1), Inches(1), Inches(6), Inches(1)).text_frame.text = text
    if table:
        shape = slide.shapes.add_table(
            len(table), len(table[0]), Inches(1), Inches(3), Inches(6), Inches(2)
        )
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                shape.table.cell(r, c).text = str(value)
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def ods(sheets: Mapping[str, Rows]) -> bytes:
    """An ODS spreadsheet (odfpy) with string cells."""
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    document = OpenDocumentSpreadsheet()
    for name, rows in sheets.items():
        table = Table(name=name)
        for row in rows:
            table_row = TableRow()
            for value in row:
                cell = TableCell(valuetype="string")
                cell.addElement(P(text=str(value)))
                table_row.addElement(cell)
            table.addElement(table_row)
        document.spreadsheet.addElement(table)
    out = io.BytesIO()
    document.write(out)
    return out.getvalue()


def encrypt_office(data: bytes, password: str = "secret") -> bytes:  # noqa: S107 - fixture
    """An OOXML file encrypted with msoffcrypto-tool (OLE + EncryptedPackage)."""
    from msoffcrypto.format.ooxml import OOXMLFile

    out = io.BytesIO()
    OOXMLFile(io.BytesIO(data)).encrypt(password, out)
    return out.getvalue()


def pdf(lines: Sequence[str], *, password: str | None = None) -> bytes:
    """A PDF (reportlab) in the HeiseiKakuGo-W5 Japanese CID font, optionally encrypted."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("HeiseiKakuGo-W5"))
    out = io.BytesIO()
    page = canvas.Canvas(out, encrypt=password)
    page.setFont("HeiseiKakuGo-W5", 12)
    for index, line in enumerate(lines):
        page.drawString(72, 780 - 18 * index, line)
    page.save()
    return out.getvalue()


def pdf_with_stream(expanded_bytes: int) -> bytes:
    """A one-page PDF whose content stream inflates to *expanded_bytes* (a stream bomb)."""
    packer = zlib.compressobj(9)
    chunk = b" " * (1 << 20)
    stream = b"".join(packer.compress(chunk) for _ in range(expanded_bytes >> 20)) + packer.flush()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def rtf(text: str) -> bytes:
    """An RTF document in code page 932, Japanese written as \\'xx CP932 escapes."""
    body = "".join(
        ch
        if ch.isascii() and ch not in "\\{}"
        else "".join(f"\\'{b:02x}" for b in ch.encode("cp932"))
        for ch in text
    )
    return (
        "{\\rtf1\\ansi\\ansicpg932\\deff0{\\fonttbl{\\f0\\fcharset128 MS Gothic;}}\\f0 "
        + body
        + "\\par}"
    ).encode("ascii")


# --------------------------------------------------------------------------- archives


def zip_archive(members: Mapping[str, bytes]) -> bytes:
    """A plain deflated ZIP (stdlib zipfile; non-ASCII names get the UTF-8 flag)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def aes_zip(members: Mapping[str, bytes], password: bytes = b"secret") -> bytes:
    """A WinZip AES-256 encrypted ZIP (pyzipper)."""
    import pyzipper

    out = io.BytesIO()
    with pyzipper.AESZipFile(
        out, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES
    ) as archive:
        archive.setpassword(password)
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class _RawEntry:
    name: bytes
    payload: bytes
    """Stored bytes as they go in the file (compressed and/or encrypted)."""
    crc: int
    size: int
    method: int = zipfile.ZIP_DEFLATED
    flags: int = 0


def _raw_zip(entries: Sequence[_RawEntry], *, offsets: Sequence[int] | None = None) -> bytes:
    """Write local records and a central directory by hand; *offsets* may point entries
    at other entries' records (how overlapping-entry bombs are made)."""
    out = bytearray()
    own: list[int] = []
    for entry in entries:
        own.append(len(out))
        out += struct.pack(
            "<4s5H3L2H",
            b"PK\x03\x04",
            20,
            entry.flags,
            entry.method,
            0,
            0x21,
            entry.crc,
            len(entry.payload),
            entry.size,
            len(entry.name),
            0,
        )
        out += entry.name + entry.payload
    directory = bytearray()
    for index, entry in enumerate(entries if offsets is None else [entries[0]] * len(offsets)):
        offset = own[index] if offsets is None else offsets[index]
        directory += struct.pack(
            "<4s6H3L5H2L",
            b"PK\x01\x02",
            20,
            20,
            entry.flags,
            entry.method,
            0,
            0x21,
            entry.crc,
            len(entry.payload),
            entry.size,
            len(entry.name),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        directory += entry.name
    count = len(entries) if offsets is None else len(offsets)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(directory), len(out), 0)
    return bytes(out + directory + end)


def _deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


def cp932_zip(members: Mapping[str, bytes]) -> bytes:
    """A ZIP as Japanese Windows Explorer writes it: CP932 names, no UTF-8 flag."""
    entries = [
        _RawEntry(name.encode("cp932"), _deflate(data), zlib.crc32(data), len(data))
        for name, data in members.items()
    ]
    return _raw_zip(entries)


def _zipcrypto_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return table


def _zipcrypto(data: bytes, password: bytes, crc: int) -> bytes:
    """Traditional PKWARE encryption (APPNOTE 6.1): 12-byte header, then the data."""
    table = _zipcrypto_table()
    keys = [0x12345678, 0x23456789, 0x34567890]

    def update(byte: int) -> None:
        keys[0] = (keys[0] >> 8) ^ table[(keys[0] ^ byte) & 0xFF]
        keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = (keys[2] >> 8) ^ table[(keys[2] ^ (keys[1] >> 24)) & 0xFF]

    for byte in password:
        update(byte)
    out = bytearray()
    for byte in bytes(11) + bytes([crc >> 24]) + data:
        temp = (keys[2] | 2) & 0xFFFF
        out.append(byte ^ (((temp * (temp ^ 1)) >> 8) & 0xFF))
        update(byte)
    return bytes(out)


def zipcrypto_zip(members: Mapping[str, bytes], password: bytes = b"secret") -> bytes:
    """A ZipCrypto (PPAP-style) encrypted ZIP; stdlib zipfile opens it with the password."""
    entries = []
    for name, data in members.items():
        crc = zlib.crc32(data)
        payload = _zipcrypto(_deflate(data), password, crc)
        entries.append(_RawEntry(name.encode("utf-8"), payload, crc, len(data), flags=0x801))
    return _raw_zip(entries)


def overlapping_zip_bomb(entries: int = 200, kernel_bytes: int = 8 << 20) -> bytes:
    """Many central-directory entries sharing one deflated kernel (overlapping records)."""
    kernel = b"\0" * kernel_bytes
    entry = _RawEntry(b"0", _deflate(kernel), zlib.crc32(kernel), kernel_bytes)
    return _raw_zip([entry], offsets=[0] * entries)


def nested_zip_bomb(levels: int = 3, fan_out: int = 8, leaf_bytes: int = 16 << 20) -> bytes:
    """42.zip in miniature: *fan_out* copies of the inner ZIP per level, zeros at the bottom."""
    inner = zip_archive({"0.bin": b"\0" * leaf_bytes})
    for _ in range(levels - 1):
        inner = zip_archive({f"{n}.zip": inner for n in range(fan_out)})
    return inner


def deep_zip(levels: int) -> bytes:
    """A small text file inside *levels* ZIPs inside each other."""
    data = zip_archive({"deep.txt": "深い".encode()})
    for level in range(levels - 1):
        data = zip_archive({f"level{level}.zip": data})
    return data


def seven_zip_header(*, encrypted: bool) -> bytes:
    """A 7z signature header pointing at a header that names the AES coder (06 F1 07 01)
    when *encrypted* (no Python writer exists offline; layout per 7zFormat.txt)."""
    coder = b"\x24\x06\xf1\x07\x01" if encrypted else b"\x03\x03\x01\x01"
    header = b"\x17\x06\x00\x01\x09\x00\x07\x0b\x01\x00\x01" + coder + b"\x00\x00"
    start = struct.pack("<QQL", 0, len(header), zlib.crc32(header))
    return b"7z\xbc\xaf\x27\x1c\x00\x04" + struct.pack("<L", zlib.crc32(start)) + start + header


def _vint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _rar5_block(kind: int, fields: bytes) -> bytes:
    body = _vint(kind) + _vint(0) + fields
    sized = _vint(len(body)) + body
    return struct.pack("<L", zlib.crc32(sized)) + sized


def rar5(*, encrypted_headers: bool) -> bytes:
    """A RAR 5 archive start (per the RAR 5.0 technote): main header, and with
    *encrypted_headers* the archive encryption header that hides everything after it."""
    out = b"Rar!\x1a\x07\x01\x00"
    if encrypted_headers:
        out += _rar5_block(4, _vint(0) + _vint(0) + bytes([15]) + bytes(16) + bytes(12))
    return out + _rar5_block(1, _vint(0)) + _rar5_block(5, _vint(0))


def rar4(*, encrypted_file: bool) -> bytes:
    """A RAR 4 archive start with one file header; LHD_PASSWORD set when *encrypted_file*."""
    main = struct.pack("<HBHH", 0, 0x73, 0, 13) + bytes(6)
    name = "顧客.csv".encode("cp932")
    flags = 0x8000 | (0x0004 if encrypted_file else 0)
    fixed = struct.pack("<LLBLLBBHL", 0, 0, 2, 0, 0, 29, 0x30, len(name), 0x20)
    header = struct.pack("<HBHH", 0, 0x74, flags, 7 + len(fixed) + len(name)) + fixed + name
    return b"Rar!\x1a\x07\x00" + main + header


# --------------------------------------------------------------------------- TNEF


def _tnef_attr(level: int, attr_id: int, attr_type: int, data: bytes) -> bytes:
    checksum = sum(data) & 0xFFFF
    return (
        struct.pack("<BHHL", level, attr_id, attr_type, len(data))
        + data
        + struct.pack("<H", checksum)
    )


def tnef(body: str, files: Mapping[str, bytes]) -> bytes:
    """A winmail.dat (MS-OXTNEF): OEM code page 932, a body and attachments."""
    out = bytearray(struct.pack("<LH", 0x223E9F78, 1))
    out += _tnef_attr(1, 0x9006, 0x0008, struct.pack("<L", 0x00010000))  # attTnefVersion
    out += _tnef_attr(1, 0x9007, 0x0006, struct.pack("<LL", 932, 0))  # attOemCodepage
    out += _tnef_attr(1, 0x800C, 0x0002, body.encode("cp932"))  # attBody
    for name, data in files.items():
        out += _tnef_attr(2, 0x9002, 0x0006, bytes(14))  # attAttachRendData
        out += _tnef_attr(2, 0x8010, 0x0001, name.encode("cp932") + b"\0")  # attAttachTitle
        out += _tnef_attr(2, 0x800F, 0x0006, data)  # attAttachData
    return bytes(out)


def xlsx_with_entity_bomb(levels: int = 9) -> bytes:
    """A real XLSX whose shared strings declare a billion-laughs entity chain."""
    plain = xlsx({"顧客": [["氏名"], ["lol"]]})
    entities = '<!ENTITY e0 "lol">' + "".join(
        f'<!ENTITY e{n} "{f"&e{n - 1};" * 10}">' for n in range(1, levels + 1)
    )
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(plain)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            data = source.read(info)
            if b">lol<" in data:
                text = data.decode("utf-8")
                head, _, rest = text.partition("?>")
                text = f"{head}?><!DOCTYPE worksheet [{entities}]>{rest}".replace(
                    ">lol<", f">&e{levels};<"
                )
                data = text.encode("utf-8")
            target.writestr(info, data)
    return out.getvalue()


# --------------------------------------------------------------------------- legacy office

_END_OF_CHAIN = 0xFFFFFFFE
_FAT_SECTOR = 0xFFFFFFFD
_FREE = 0xFFFFFFFF
_CFB_MIN_STREAM = 4096  # smaller streams would belong in the mini stream, not written here


def _chain(first: int, count: int) -> list[int]:
    return [*range(first + 1, first + count), _END_OF_CHAIN]


def _dir_entry(name: str, kind: int, *, child: int, right: int, start: int, size: int) -> bytes:
    encoded = (name + "\x00").encode("utf-16-le") if name else b""
    return struct.pack(
        "<64sHBBLLL16sL8s8sLQ",
        encoded,
        len(encoded),
        kind,
        1,  # black: the red-black colouring is not checked by readers
        _FREE,
        right,
        child,
        b"",
        0,
        b"",
        b"",
        start,
        size,
    )


def ole_file(streams: Mapping[str, bytes]) -> bytes:
    """A compound file (CFB v3, 512-byte sectors) holding *streams* in the root storage.

    Written from [MS-CFB] because no Python library writes new compound files (olefile
    only edits them); streams are padded to 4 KiB so that no mini stream is needed.
    """
    datas = [data.ljust(_CFB_MIN_STREAM, b"\x00") for data in streams.values()]
    datas = [data.ljust(-(-len(data) // 512) * 512, b"\x00") for data in datas]
    starts: list[int] = []
    fat: list[int] = []
    for data in datas:
        starts.append(len(fat))
        fat += _chain(len(fat), len(data) // 512)
    entries = [_dir_entry("Root Entry", 5, child=1, right=_FREE, start=_END_OF_CHAIN, size=0)]
    for index, (name, data, start) in enumerate(zip(streams, datas, starts, strict=True), 1):
        right = index + 1 if index < len(streams) else _FREE
        entries.append(_dir_entry(name, 2, child=_FREE, right=right, start=start, size=len(data)))
    while len(entries) % 4:
        entries.append(_dir_entry("", 0, child=_FREE, right=_FREE, start=0, size=0))
    directory_start = len(fat)
    fat += _chain(directory_start, len(entries) // 4)
    fat_sectors = 1
    while (len(fat) + fat_sectors) > fat_sectors * 128:
        fat_sectors += 1
    fat_start = len(fat)
    fat += [_FAT_SECTOR] * fat_sectors
    fat += [_FREE] * (fat_sectors * 128 - len(fat))
    difat = [*range(fat_start, fat_start + fat_sectors)] + [_FREE] * (109 - fat_sectors)
    header = struct.pack(
        "<8s16sHHHHH6sLLLLLLLLL109L",
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        b"",
        0x003E,
        0x0003,
        0xFFFE,
        9,
        6,
        b"",
        0,
        fat_sectors,
        directory_start,
        0,
        _CFB_MIN_STREAM,
        _END_OF_CHAIN,
        0,
        _END_OF_CHAIN,
        0,
        *difat,
    )
    body = b"".join(datas) + b"".join(entries) + struct.pack(f"<{len(fat)}L", *fat)
    return header + body


def doc(pieces: Sequence[str]) -> bytes:
    """A Word 97-2003 .doc whose text is *pieces* (paragraphs end in ``\\r``) per [MS-DOC].

    ASCII-only pieces are stored compressed (one CP1252 byte a character), the others as
    UTF-16LE, each through its own piece-table entry, as Word itself writes them.
    """
    text_start = 0x800
    fib = bytearray(text_start)
    struct.pack_into("<HH", fib, 0, 0xA5EC, 0x00C1)  # wIdent, nFib (Word 97)
    struct.pack_into("<H", fib, 0x0A, 0x0200)  # fWhichTblStm: the table stream is 1Table
    struct.pack_into("<H", fib, 32, 14)
    struct.pack_into("<H", fib, 62, 22)
    struct.pack_into("<H", fib, 152, 0x5D)
    stored = bytearray()
    cps, pcds = [0], []
    for piece in pieces:
        offset = text_start + len(stored)
        if piece.isascii():
            stored += piece.encode("cp1252")
            pcds.append(struct.pack("<HLH", 0, (offset * 2) | 0x40000000, 0))
        else:
            stored += piece.encode("utf-16-le")
            pcds.append(struct.pack("<HLH", 0, offset, 0))
        cps.append(cps[-1] + len(piece))
    plc = struct.pack(f"<{len(cps)}L", *cps) + b"".join(pcds)
    clx = b"\x02" + struct.pack("<L", len(plc)) + plc
    table = b"\x00" * 16 + clx
    struct.pack_into("<LL", fib, 0x01A2, 16, len(clx))
    return ole_file({"WordDocument": bytes(fib) + bytes(stored), "1Table": table})


def _ppt_record(kind: int, body: bytes, *, container: bool = False) -> bytes:
    return struct.pack("<HHL", 0x000F if container else 0, kind, len(body)) + body


def ppt(slides: Sequence[str]) -> bytes:
    """A PowerPoint 97-2003 .ppt: one text atom per slide in a SlideListWithText ([MS-PPT]).

    ASCII-only text goes into a TextBytesAtom, the rest into a TextCharsAtom (UTF-16LE).
    """
    atoms = b""
    for text in slides:
        atoms += _ppt_record(0x0F9F, struct.pack("<L", 0))  # TextHeaderAtom: title
        if text.isascii():
            atoms += _ppt_record(0x0FA8, text.encode("latin-1"))
        else:
            atoms += _ppt_record(0x0FA0, text.encode("utf-16-le"))
    slide_list = _ppt_record(0x0FF0, atoms, container=True)
    document = _ppt_record(0x03E8, slide_list, container=True)
    return ole_file({"PowerPoint Document": document, "Current User": b"\x00" * 20})
