"""Containers: ZIP and 7z (read, nested), RAR (recognised, encryption detected), .eml files.

Dispatched from `sendguard.parse.extract.extract`; members are handed back to `extract`
with a longer path (``attachment 2 › 顧客.zip › list/顧客.csv``) and one more level of
archive depth. 7z members are decompressed by `sendguard.parse.extract.packed` (with
gzip and tar). There is no RAR extractor yet (rarfile would need bsdtar or unar from
Debian beside the relay), so RAR is reported ``unsupported`` (or ``encrypted``), never
passed as read, and the shipped policy holds it when it goes outside.
"""

from __future__ import annotations

import dataclasses
import mimetypes
import struct
import zipfile

from sendguard.model import Part, Problem
from sendguard.parse.context import Blob, Context, Extracted, problem
from sendguard.parse.extract import zipsafe

_SEVEN_Z_AES = b"\x06\xf1\x07\x01"
_SEVEN_Z_HEADER = struct.Struct("<6s2sLQQL")
_RAR4_MARK = b"Rar!\x1a\x07\x00"
_RAR5_MARK = b"Rar!\x1a\x07\x01\x00"


def member_path(blob: Blob, name: str) -> tuple[str, ...]:
    """Path of a member: ``attachment 2 › a.zip › x.csv``; nested archives add one step."""
    if blob.filename and blob.path and blob.path[-1] == blob.filename:
        return (*blob.path, name)
    return (*blob.path, blob.filename or "archive", name)


def guess_type(name: str) -> str:
    return mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"


def depth_problem(blob: Blob, ctx: Context) -> Problem | None:
    if blob.archive_depth < ctx.limits.max_archive_depth:
        return None
    detail = f"archive depth {blob.archive_depth + 1} > {ctx.limits.max_archive_depth}"
    return problem("limit", "archive-depth", blob, detail)


def read_zip(blob: Blob, ctx: Context) -> Extracted:
    """Every member of a ZIP, recursively; encrypted members are listed and flagged."""
    early = depth_problem(blob, ctx)
    archive, opened = (None, early) if early else zipsafe.open_zip(blob, ctx)
    if archive is None:
        return Extracted(problems=(opened,) if opened else ())
    names: list[str] = []
    encrypted = 0
    for info in archive.infolist():
        if ctx.bomb:
            break  # one bomb is enough: stop before it fans out
        if info.is_dir():
            continue
        name = zipsafe.member_name(info)
        names.append(name)
        if zipsafe.is_encrypted(info):
            encrypted += 1
        _read_member(archive, info, child_blob(blob, name), ctx)
    found: list[Problem] = []
    if encrypted:
        found.append(problem("encrypted", "encrypted-zip", blob, f"{encrypted} encrypted files"))
    return Extracted(text="\n".join(names), encrypted=bool(encrypted), problems=tuple(found))


def child_blob(blob: Blob, name: str) -> Blob:
    """An archive member of *blob* named *name*, one archive level deeper (no bytes yet)."""
    return Blob(
        data=b"",
        path=member_path(blob, name),
        declared_type=guess_type(name),
        filename=name,
        is_attachment=True,
        archive_depth=blob.archive_depth + 1,
        mime_depth=blob.mime_depth,
    )


def _read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, child: Blob, ctx: Context
) -> None:
    from sendguard.parse.extract import extract  # the dispatcher reads the members

    if zipsafe.is_encrypted(info):
        add_unread(child, ctx, "encrypted-zip", encrypted=True)
        return
    data, issue = zipsafe.read_member(archive, info, child, ctx)
    if issue is not None:
        ctx.problems.append(issue)
    if data is None:
        add_unread(child, ctx, issue.code if issue else "bad-zip")
        return
    extract(dataclasses.replace(child, data=data), ctx)


def add_unread(child: Blob, ctx: Context, code: str, *, encrypted: bool = False) -> None:
    """List a member that could not be read as a part of its own, with the reason."""
    ctx.parts.append(
        Part(
            path=child.path,
            declared_type=child.declared_type,
            sniffed_type="application/octet-stream",
            filename=child.filename,
            is_attachment=True,
            encrypted=encrypted,
            problem=code,
        )
    )


def read_7z(blob: Blob, ctx: Context) -> Extracted:
    """7z: encryption from the header (AES coder 06 F1 07 01), else every member is read."""
    from sendguard.parse.extract import packed  # packed builds on this module

    data = blob.data
    if len(data) < _SEVEN_Z_HEADER.size:
        return Extracted(problems=(problem("malformed", "bad-7z", blob, "truncated"),))
    _magic, _version, _crc, offset, size, _ncrc = _SEVEN_Z_HEADER.unpack_from(data)
    header = data[32 + offset : 32 + offset + min(size, 1 << 20)]
    if _SEVEN_Z_AES in header:
        return Extracted(encrypted=True, problems=(problem("encrypted", "encrypted-7z", blob),))
    return packed.read_7z_members(blob, ctx)


def read_rar(blob: Blob, ctx: Context) -> Extracted:
    """RAR 4 and 5: encrypted headers or files are detected from the block headers."""
    data = blob.data
    if data.startswith(_RAR5_MARK):
        encrypted = _rar5_encrypted(data, ctx.limits.max_archive_members)
    elif data.startswith(_RAR4_MARK):
        encrypted = _rar4_encrypted(data, ctx.limits.max_archive_members)
    else:
        return Extracted(problems=(problem("malformed", "bad-rar", blob, "unknown version"),))
    if encrypted:
        return Extracted(encrypted=True, problems=(problem("encrypted", "encrypted-rar", blob),))
    return Extracted(problems=(problem("unsupported", "unsupported-archive", blob, "rar"),))


def _rar4_encrypted(data: bytes, max_blocks: int) -> bool:
    pos = len(_RAR4_MARK)
    for _ in range(max_blocks + 2):
        if pos + 7 > len(data):
            return False
        _crc, kind, flags, size = struct.unpack_from("<HBHH", data, pos)
        if kind == 0x73 and flags & 0x0080:  # MHD_PASSWORD: encrypted block headers
            return True
        if kind == 0x74 and flags & 0x0004:  # LHD_PASSWORD: encrypted file
            return True
        has_add = flags & 0x8000 and pos + 11 <= len(data)
        extra = struct.unpack_from("<L", data, pos + 7)[0] if has_add else 0
        if size < 7:
            return False
        pos += size + extra
    return False


def _vint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 70:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise ValueError("truncated RAR5 vint")


def _rar5_encrypted(data: bytes, max_blocks: int) -> bool:
    pos = len(_RAR5_MARK)
    for _ in range(max_blocks + 2):
        if pos + 5 > len(data):
            return False
        size, body = _vint(data, pos + 4)
        kind, cursor = _vint(data, body)
        flags, cursor = _vint(data, cursor)
        extra_size, cursor = _vint(data, cursor) if flags & 1 else (0, cursor)
        data_size, cursor = _vint(data, cursor) if flags & 2 else (0, cursor)
        if kind == 4:  # archive encryption header: every header after it is encrypted
            return True
        extra_start = body + size - extra_size
        if kind == 2 and extra_size and _rar5_extra_has(data, extra_start, body + size, 1):
            return True  # file header with an encryption record
        if size == 0:
            return False
        pos = body + size + data_size
    return False


def _rar5_extra_has(data: bytes, start: int, end: int, wanted: int) -> bool:
    pos = start
    while pos < end:
        size, cursor = _vint(data, pos)
        kind, _ = _vint(data, cursor)
        if kind == wanted:
            return True
        if size == 0:
            return False
        pos = cursor + size
    return False


def read_rfc822(blob: Blob, ctx: Context) -> Extracted:
    """A message sent as bytes (encoded message/rfc822, ``.eml`` in a ZIP): walk it too."""
    from sendguard.parse import mime

    issue = mime.precheck(blob.data, ctx.limits, start_depth=blob.mime_depth)
    if issue is not None:
        return Extracted(problems=(problem(issue.kind, issue.code, blob, issue.detail),))
    message = mime.parse_bytes(blob.data)
    mime.walk_message(message, (*blob.path, "forwarded message"), ctx, blob.mime_depth + 1)
    return Extracted(text=mime.summary(message))
