"""Legacy Word (.doc) and PowerPoint (.ppt) text, from their OLE streams (olefile).

Called by `sendguard.parse.extract.office.read_ole` once encryption is ruled out (legacy
XLS goes to calamine instead). No maintained Python library reads these formats, and the
text is all the detectors need, so it is read here with bounded loops over the
documented structures:

* Word 97-2003 ([MS-DOC]): the piece table (CLX in the ``0Table``/``1Table`` stream, found
  through the FIB) maps character positions to 8-bit (CP1252) or UTF-16LE runs of the
  ``WordDocument`` stream. When the piece table is missing or broken, UTF-16LE runs are
  pulled from the stream instead (Japanese text is always stored as UTF-16LE).
* PowerPoint 97-2003 ([MS-PPT]): text atoms (TextCharsAtom, TextBytesAtom, CString) in
  the record tree of the ``PowerPoint Document`` stream, scanned flat.
"""

from __future__ import annotations

import re
import struct

import olefile

from sendguard.parse.charsets import normalise

_FIB_CLX = 0x01A2  # fcClx/lcbClx in FibRgFcLcb97 (after a 14-word and 22-long FIB)
_WHICH_TABLE = 0x0200
_FIELD_CODE = re.compile("\x13[^\x13\x14\x15]*\x14")  # field instructions; results kept
_CONTROL = str.maketrans({"\r": "\n", "\x07": "\t", "\x0b": "\n", "\x0c": "\n", "\x1e": "-"})
_DROP = re.compile("[\x00-\x08\x0e-\x1f]")
# UTF-16LE runs of ASCII, kana/kanji (U+3000-U+9FFF) and full-width forms (U+FF00-U+FFEF).
_UTF16_RUN = re.compile(rb"(?:[\x09\x0d\x20-\x7e]\x00|[\x00-\xff][\x30-\x9f]|[\x00-\xef]\xff){4,}")
_PPT_TEXT_CHARS = 0x0FA0
_PPT_TEXT_BYTES = 0x0FA8
_PPT_CSTRING = 0x0FBA


def _clean(text: str) -> str:
    text = _FIELD_CODE.sub("", text).translate(_CONTROL)
    return normalise(_DROP.sub("", text))


def doc_text(ole: olefile.OleFileIO, max_chars: int) -> str:
    """The text of a .doc: through the piece table, else the UTF-16LE runs of the stream."""
    word = ole.openstream("WordDocument").read()
    try:
        return _clean(_pieces(ole, word, max_chars))
    except (struct.error, ValueError, OSError):
        runs = (m.group().decode("utf-16-le", "replace") for m in _UTF16_RUN.finditer(word))
        return _clean("\n".join(runs)[:max_chars])


def _pieces(ole: olefile.OleFileIO, word: bytes, max_chars: int) -> str:
    flags = struct.unpack_from("<H", word, 0x0A)[0]
    table_name = "1Table" if flags & _WHICH_TABLE else "0Table"
    if not ole.exists(table_name):
        raise ValueError("no table stream")
    fc_clx, lcb_clx = struct.unpack_from("<LL", word, _FIB_CLX)
    table = ole.openstream(table_name).read()
    clx = table[fc_clx : fc_clx + lcb_clx]
    pos = 0
    while pos < len(clx) and clx[pos] == 0x01:  # Prc: formatting, skipped
        pos += 3 + struct.unpack_from("<H", clx, pos + 1)[0]
    if pos >= len(clx) or clx[pos] != 0x02:
        raise ValueError("no piece table")
    size = struct.unpack_from("<L", clx, pos + 1)[0]
    plc = clx[pos + 5 : pos + 5 + size]
    count = (len(plc) - 4) // 12
    if count <= 0:
        raise ValueError("empty piece table")
    cps = struct.unpack_from(f"<{count + 1}L", plc, 0)
    out: list[str] = []
    total = 0
    for index in range(count):
        chars = max(0, cps[index + 1] - cps[index])
        chars = min(chars, max_chars - total)
        fc = struct.unpack_from("<L", plc, 4 * (count + 1) + 8 * index + 2)[0]
        if fc & 0x40000000:  # fCompressed: one CP1252 byte per character at fc/2
            start = (fc & 0x3FFFFFFF) // 2
            out.append(word[start : start + chars].decode("cp1252", "replace"))
        else:
            out.append(word[fc : fc + 2 * chars].decode("utf-16-le", "replace"))
        total += chars
        if total >= max_chars:
            break
    return "".join(out)


def ppt_text(ole: olefile.OleFileIO, max_chars: int) -> str:
    """Slide, note and master text of a .ppt, in stream order."""
    data = ole.openstream("PowerPoint Document").read()
    lines: list[str] = []
    total = pos = 0
    while pos + 8 <= len(data) and total < max_chars:
        ver_instance, kind, length = struct.unpack_from("<HHL", data, pos)
        if ver_instance & 0x000F == 0x000F:
            pos += 8  # a container: its children follow its header
            continue
        body = data[pos + 8 : pos + 8 + length]
        if kind in (_PPT_TEXT_CHARS, _PPT_CSTRING):
            lines.append(body.decode("utf-16-le", "replace"))
            total += len(lines[-1])
        elif kind == _PPT_TEXT_BYTES:
            lines.append(body.decode("latin-1"))
            total += len(lines[-1])
        pos += 8 + length
    return _clean("\n".join(lines)[:max_chars])
