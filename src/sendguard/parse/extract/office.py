"""Microsoft containers: OLE compound files (encrypted Office, XLS, DOC, Outlook .msg),
TNEF ``winmail.dat`` and RTF.

Dispatched from `sendguard.parse.extract.extract`. An OOXML file saved with a password is
not a ZIP at all but an OLE file holding an ``EncryptedPackage`` stream; that is how
encrypted Word/Excel/PowerPoint files are recognised. Legacy XLS is read by calamine,
legacy DOC/PPT text by `sendguard.parse.extract.legacy`, once their encryption flags are
checked.
"""

from __future__ import annotations

import io
import re
import struct
from typing import Any

import olefile
from striprtf.striprtf import rtf_to_text
from tnefparse.tnef import TNEF

from sendguard.parse.charsets import decode_bytes, normalise
from sendguard.parse.context import Blob, Context, Extracted, problem
from sendguard.parse.extract import legacy, sheets
from sendguard.parse.extract.archive import guess_type, member_path

_MSG_PREFIX = "__substg1.0_"
_MSG_TEXT = {"0037001F": "Subject", "0C1F001F": "From", "0E04001F": "To", "0E03001F": "Cc"}
_MSG_BODY = "1000001F"
_MSG_RECIPIENT = re.compile(r"__recip_version1\.0_#[0-9A-F]{8}/__substg1\.0_39FE001F")


def _encrypted(blob: Blob) -> Extracted:
    return Extracted(encrypted=True, problems=(problem("encrypted", "encrypted-office", blob),))


def read_ole(blob: Blob, ctx: Context) -> Extracted:
    """Classify an OLE compound file and read what we can."""
    ole = olefile.OleFileIO(io.BytesIO(blob.data))
    try:
        if ole.exists("EncryptedPackage") or ole.exists("EncryptedSummary"):
            return _encrypted(blob)
        if ole.exists("Workbook") or ole.exists("Book"):
            return sheets.read_workbook(blob, ctx)
        if ole.exists("WordDocument"):
            head = ole.openstream("WordDocument").read(12)
            flags = struct.unpack_from("<H", head, 10)[0] if len(head) >= 12 else 0
            if flags & 0x0100:  # FIB fEncrypted
                return _encrypted(blob)
            return Extracted(text=legacy.doc_text(ole, ctx.limits.max_part_text_chars))
        if ole.exists("PowerPoint Document"):
            return Extracted(text=legacy.ppt_text(ole, ctx.limits.max_part_text_chars))
        if ole.exists(_MSG_PREFIX + _MSG_BODY) or ole.exists(_MSG_PREFIX + "0037001F"):
            return _read_msg(ole)
        return Extracted(problems=(problem("unsupported", "legacy-office", blob, "ole"),))
    finally:
        ole.close()


def _utf16(ole: olefile.OleFileIO, name: str) -> str:
    return str(ole.openstream(name).read().decode("utf-16-le", errors="replace").rstrip("\x00"))


def _read_msg(ole: olefile.OleFileIO) -> Extracted:
    """Outlook .msg: header summary, recipients' SMTP addresses and the plain body."""
    lines = [
        f"{label}: {_utf16(ole, _MSG_PREFIX + code)}"
        for code, label in _MSG_TEXT.items()
        if ole.exists(_MSG_PREFIX + code)
    ]
    for entry in ole.listdir():
        path = "/".join(entry)
        if _MSG_RECIPIENT.fullmatch(path):
            lines.append(f"Recipient: {_utf16(ole, path)}")
    if ole.exists(_MSG_PREFIX + _MSG_BODY):
        lines.append(_utf16(ole, _MSG_PREFIX + _MSG_BODY))
    return Extracted(text=normalise("\n".join(lines)))


def read_rtf(blob: Blob, ctx: Context) -> Extracted:
    """RTF: text by striprtf, which honours ``\\ansicpg932`` and ``\\u`` escapes."""
    source = blob.data.decode("latin-1")
    text = str(rtf_to_text(source, encoding="cp932", errors="replace"))  # type: ignore[no-untyped-call]
    return Extracted(text=normalise(text))


def _text(value: object, codepage: str) -> str:
    if isinstance(value, bytes):
        return decode_bytes(value, codepage)
    return str(value or "")


def _tnef_name(attachment: Any, codepage: str) -> str:
    """The attachment's name; tnefparse decodes 8-bit titles as UTF-8, Outlook writes CP932."""
    try:
        return str(attachment.long_filename() or "")
    except UnicodeDecodeError:
        raw = getattr(attachment, "_name", b"")
        return decode_bytes(raw, codepage).strip("\x00") if isinstance(raw, bytes) else ""


def read_tnef(blob: Blob, ctx: Context) -> Extracted:
    """winmail.dat: the body text, then every attachment read like any other file."""
    from sendguard.parse.extract import extract  # attachments go back through the dispatcher

    tnef = TNEF(blob.data, do_checksum=False)
    codepage = str(tnef.codepage or "cp932")
    body = _text(tnef.body, codepage) or _text(tnef.htmlbody, codepage)
    for index, attachment in enumerate(tnef.attachments, start=1):
        ctx.check_time()
        name = _tnef_name(attachment, codepage) or f"attachment {index}"
        data = attachment.data if isinstance(attachment.data, bytes) else b""
        extract(
            Blob(
                data, member_path(blob, name), guess_type(name), name, True, blob.archive_depth + 1
            ),
            ctx,
        )
    return Extracted(text=normalise(body))
