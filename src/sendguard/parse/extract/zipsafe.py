"""Safe ZIP access for archives and for ZIP-based documents (XLSX, DOCX, PPTX, ODF).

Every ZIP goes through `open_zip` before any member is read or any library sees it:
member count from the central directory, overlapping local entries (the CVE-2024-0450
bomb that Python 3.11.7's zipfile does not catch), and per-member size and compression
ratio. `read_member` then decompresses in a bounded read, so a member that lies about its
size cannot expand past the limits either.
"""

from __future__ import annotations

import io
import itertools
import struct
import zipfile
import zlib
from pathlib import PurePosixPath

from sendguard.model import Problem
from sendguard.parse.context import Blob, Context, problem

_LOCAL = struct.Struct("<4s5H3L2H")
_LOCAL_SIGNATURE = b"PK\x03\x04"
_UNICODE_PATH = 0x7075
_AES = 99
_XML_SUFFIXES = (".xml", ".rels", ".vml")
_PROLOG = 4096
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError)


def is_encrypted(info: zipfile.ZipInfo) -> bool:
    """ZipCrypto or WinZip AES (flag bit 0; method 99 with extra field 0x9901)."""
    return bool(info.flag_bits & 1) or info.compress_type == _AES


def _overlaps(data: bytes, infos: list[zipfile.ZipInfo]) -> bool:
    """True when two members' local records share bytes (or a record is out of place)."""
    spans: list[tuple[int, int]] = []
    for info in infos:
        offset = info.header_offset
        header = data[offset : offset + _LOCAL.size]
        if len(header) < _LOCAL.size:
            return True
        fields = _LOCAL.unpack(header)
        if fields[0] != _LOCAL_SIGNATURE:
            return True
        end = offset + _LOCAL.size + fields[9] + fields[10] + info.compress_size
        spans.append((offset, end))
    spans.sort()
    return any(nxt[0] < prev[1] for prev, nxt in itertools.pairwise(spans))


def open_zip(blob: Blob, ctx: Context) -> tuple[zipfile.ZipFile | None, Problem | None]:
    """Open *blob* as a ZIP after the structural bomb checks; a Problem instead when unsafe."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(blob.data))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        return None, problem("malformed", "bad-zip", blob, "not a readable ZIP")
    infos = archive.infolist()
    limit = ctx.limits.max_archive_members
    if len(infos) > limit:
        return None, problem("limit", "archive-members", blob, f"{len(infos)} files > {limit}")
    if _overlaps(blob.data, infos):
        ctx.bomb = True
        return None, problem("limit", "zip-overlap", blob, "overlapping ZIP entries")
    return archive, None


def member_name(info: zipfile.ZipInfo) -> str:
    """The member's real name: UTF-8 flag, Info-ZIP Unicode Path, else CP932 (Japanese Windows)."""
    extra = info.extra
    pos = 0
    while pos + 4 <= len(extra):
        kind, size = struct.unpack_from("<HH", extra, pos)
        if kind == _UNICODE_PATH and size > 5:
            try:
                return extra[pos + 9 : pos + 4 + size].decode("utf-8")
            except UnicodeDecodeError:
                break
        pos += 4 + size
    if info.flag_bits & 0x800:
        return info.filename
    raw = info.filename.encode("cp437")
    for codec in ("utf-8", "cp932"):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    return info.filename


def read_member(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    blob: Blob,
    ctx: Context,
    *,
    charge: bool = True,
) -> tuple[bytes | None, Problem | None]:
    """Decompress one member within the size, ratio and total-expansion limits.

    *charge* is False for package parts already charged by `check_package`.
    """
    limits = ctx.limits
    cap = limits.max_member_bytes
    if charge:
        cap = min(cap, ctx.remaining_expansion())
    if info.file_size > cap:
        ctx.bomb = True
        code = "member-size" if info.file_size > limits.max_member_bytes else "expanded-size"
        return None, problem("limit", code, blob, f"{info.file_size} bytes > limit {cap}")
    problem_ = _ratio_problem(info.file_size, info.compress_size, blob, ctx)
    if problem_ is not None:
        return None, problem_
    try:
        with archive.open(info) as handle:
            data = handle.read(cap + 1)
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        NotImplementedError,
        RuntimeError,
        OSError,
    ) as exc:
        return None, problem("malformed", "bad-zip", blob, type(exc).__name__)
    if len(data) > cap or (charge and not ctx.charge(len(data), blob.label)):
        ctx.bomb = True
        return None, problem("limit", "expanded-size", blob, f"more than {cap} bytes")
    return data, _ratio_problem(len(data), info.compress_size, blob, ctx)


def _ratio_problem(size: int, compressed: int, blob: Blob, ctx: Context) -> Problem | None:
    limits = ctx.limits
    if size < limits.ratio_min_bytes:
        return None
    ratio = size / max(1, compressed)
    if ratio <= limits.max_compression_ratio:
        return None
    ctx.bomb = True
    detail = f"ratio {ratio:.0f} > {limits.max_compression_ratio:.0f}"
    return problem("limit", "compression-ratio", blob, detail)


def check_xml_members(archive: zipfile.ZipFile, blob: Blob, ctx: Context) -> Problem | None:
    """Refuse OOXML/ODF packages whose XML declares a DTD or entities (billion laughs).

    Neither format ever needs a DTD; only the prolog is decompressed, so this is cheap.
    """
    for info in archive.infolist():
        if PurePosixPath(info.filename.lower()).suffix not in _XML_SUFFIXES or is_encrypted(info):
            continue
        try:
            with archive.open(info) as handle:
                head = handle.read(_PROLOG)
        except (
            zipfile.BadZipFile,
            zlib.error,
            EOFError,
            NotImplementedError,
            RuntimeError,
            OSError,
        ):
            return problem("malformed", "bad-zip", blob, info.filename[:80])
        if b"<!DOCTYPE" in head or b"<!ENTITY" in head or b"<\x00!\x00" in head:
            return problem("limit", "xml-entities", blob, "XML declares a DTD or entities")
    return None


def check_package(archive: zipfile.ZipFile, blob: Blob, ctx: Context) -> Problem | None:
    """Before a library opens a ZIP-based document: declared sizes, ratios, DTDs.

    The library decompresses members itself, so their declared sizes are charged to the
    expansion budget here; a member lying about its size is left to the pool's memory cap.
    """
    limits = ctx.limits
    for info in archive.infolist():
        if info.file_size > limits.max_member_bytes:
            ctx.bomb = True
            detail = f"{info.file_size} bytes > limit {limits.max_member_bytes}"
            return problem("limit", "member-size", blob, detail)
        ratio = _ratio_problem(info.file_size, info.compress_size, blob, ctx)
        if ratio is not None:
            return ratio
        if not ctx.charge(info.file_size, blob.label):
            ctx.bomb = True
            return problem("limit", "expanded-size", blob, "package too large when expanded")
    return check_xml_members(archive, blob, ctx)
