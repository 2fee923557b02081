"""Content sniffing: what a blob really is, by magic bytes and structure, not by its label.

Called by `sendguard.parse.extract.extract` for every part and archive member, so a
customer list renamed from ``.xlsx`` to ``.txt`` (or sent as application/octet-stream) is
still read as a spreadsheet. The declared type and the filename only decide between text
flavours (plain, CSV, TSV, HTML), where bytes alone cannot.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import PurePosixPath

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
XLSM = "application/vnd.ms-excel.sheet.macroenabled.12"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
ODS = "application/vnd.oasis.opendocument.spreadsheet"
ODT = "application/vnd.oasis.opendocument.text"
ODP = "application/vnd.oasis.opendocument.presentation"
ZIP = "application/zip"
PDF = "application/pdf"
RTF = "application/rtf"
OLE = "application/x-ole-storage"
SEVEN_Z = "application/x-7z-compressed"
RAR = "application/vnd.rar"
TNEF = "application/vnd.ms-tnef"
GZIP = "application/gzip"
TAR = "application/x-tar"
RFC822 = "message/rfc822"
PLAIN = "text/plain"
HTML = "text/html"
CSV = "text/csv"
TSV = "text/tab-separated-values"
OCTET = "application/octet-stream"

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"{\\rtf", RTF),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", OLE),
    (b"7z\xbc\xaf\x27\x1c", SEVEN_Z),
    (b"Rar!\x1a\x07", RAR),
    (b"\x78\x9f\x3e\x22", TNEF),
    (b"\x1f\x8b", GZIP),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"RIFF", "application/x-riff"),
)
_TEXT_BY_SUFFIX = {".csv": CSV, ".tsv": TSV, ".tab": TSV, ".html": HTML, ".htm": HTML}
_TEXT_BY_TYPE = {"text/csv": CSV, "text/tab-separated-values": TSV, "text/html": HTML}
_ODF_TYPES = {
    b"application/vnd.oasis.opendocument.spreadsheet": ODS,
    b"application/vnd.oasis.opendocument.text": ODT,
    b"application/vnd.oasis.opendocument.presentation": ODP,
}
_TEXT_SAMPLE = 8192


def sniff(data: bytes, filename: str = "", declared: str = "") -> str:
    """The content type *data* really has; text flavours come from *filename*/*declared*."""
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_kind(data)
    if b"%PDF-" in data[:1024]:
        return PDF
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[257:262] == b"ustar":  # POSIX and GNU tar headers
        return TAR
    declared = declared.lower()
    suffix = PurePosixPath(filename.lower()).suffix
    if declared == RFC822 or suffix == ".eml":
        return RFC822
    if not _is_text(data):
        return declared if declared.startswith("image/") else OCTET
    return _TEXT_BY_SUFFIX.get(suffix) or _TEXT_BY_TYPE.get(declared) or _html_or_plain(data)


def _is_text(data: bytes) -> bool:
    sample = data[:_TEXT_SAMPLE]
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True  # UTF-16 with a BOM
    return b"\x00" not in sample


def _html_or_plain(data: bytes) -> str:
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return HTML
    return PLAIN


def _zip_kind(data: bytes) -> str:
    """Office Open XML and ODF are ZIPs; tell them apart by their member names."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            if "mimetype" in names:
                info = archive.getinfo("mimetype")
                if info.file_size < 128 and not info.flag_bits & 1:
                    kind = _ODF_TYPES.get(archive.read(info).strip())
                    if kind:
                        return kind
    except (zipfile.BadZipFile, ValueError, NotImplementedError, OSError, RuntimeError):
        return ZIP
    if "[Content_Types].xml" not in names:
        return ZIP
    if any(n.startswith("xl/") for n in names):
        return XLSM if "xl/vbaProject.bin" in names else XLSX
    if any(n.startswith("word/") for n in names):
        return DOCX
    if any(n.startswith("ppt/") for n in names):
        return PPTX
    return ZIP
