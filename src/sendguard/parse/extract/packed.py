"""gzip, tar and 7z archives: stream-decompressed under the same limits as a ZIP.

Dispatched from `sendguard.parse.extract.extract`. No declared size is trusted: gzip
and 7z output is written through a bounded sink that stops decompression as soon as one
member passes `max_member_bytes`, the message passes `max_expanded_bytes`, or the output
passes `max_compression_ratio` times the archive's own size (once past
`ratio_min_bytes`). Every hit sets `Context.bomb`, so the enclosing archives stop too.
Members go back to `extract` with one more level of archive depth, so a ``.tar.gz`` in a
``.tar.gz`` counts four levels against `max_archive_depth`.
"""

from __future__ import annotations

import dataclasses
import io
import tarfile
import zlib
from pathlib import PurePosixPath

import py7zr
import py7zr.exceptions
import py7zr.io

from sendguard.model import Problem
from sendguard.parse.context import Blob, Context, Extracted, problem
from sendguard.parse.extract.archive import add_unread, child_blob, depth_problem

_CHUNK = 1 << 16
_GZIP_SUFFIXES = {".tgz": ".tar", ".gz": "", ".gzip": ""}


class _Overflow(Exception):
    """Raised by `_Sink` to stop a decompressor the moment output passes a limit."""

    def __init__(self, issue: Problem) -> None:
        super().__init__(issue.code)
        self.issue = issue


@dataclasses.dataclass(slots=True)
class _Budget:
    """Output allowed from one compressed archive of *packed* bytes."""

    blob: Blob
    ctx: Context
    packed: int
    total: int = 0

    def ratio_cap(self) -> float:
        limits = self.ctx.limits
        return max(limits.ratio_min_bytes, limits.max_compression_ratio * max(1, self.packed))

    def grow(self, member: int, added: int) -> None:
        """Account *added* output bytes; *member* is the member's size so far."""
        self.total += added
        limits = self.ctx.limits
        if member > limits.max_member_bytes:
            detail = f"more than {limits.max_member_bytes} bytes"
            self._stop(problem("limit", "member-size", self.blob, detail))
        if self.total > self.ratio_cap():
            detail = f"ratio > {limits.max_compression_ratio:.0f}"
            self._stop(problem("limit", "compression-ratio", self.blob, detail))
        if self.total > self.ctx.remaining_expansion():
            detail = f"expanded bytes > limit {limits.max_expanded_bytes}"
            self._stop(problem("limit", "expanded-size", self.blob, detail))
        self.ctx.check_time()

    def _stop(self, issue: Problem) -> None:
        self.ctx.bomb = True
        raise _Overflow(issue)


def _gunzip(blob: Blob, budget: _Budget) -> bytes:
    """All gzip members of *blob* concatenated, decompressed in bounded chunks."""
    out = bytearray()
    data = blob.data
    while data:
        inflater = zlib.decompressobj(wbits=31)
        pending = data
        while pending and not inflater.eof:
            chunk = inflater.decompress(pending, _CHUNK)
            pending = inflater.unconsumed_tail
            out += chunk
            budget.grow(len(out), len(chunk))
        if not inflater.eof:
            raise EOFError("truncated gzip stream")
        data = inflater.unused_data.lstrip(b"\x00")  # trailing zero padding is allowed
    return bytes(out)


def _gzip_name(blob: Blob) -> str:
    """The inner file's name: gzip's FNAME field, else the outer name less ``.gz``."""
    data = blob.data
    if len(data) > 10 and data[3] & 0x08:
        start = 10
        if data[3] & 0x04 and len(data) > 12:  # FEXTRA comes first
            start = 12 + int.from_bytes(data[10:12], "little")
        end = data.find(b"\x00", start, start + 1024)
        if end > start:
            name = data[start:end].decode("latin-1")
            for codec in ("utf-8", "cp932"):
                try:
                    name = data[start:end].decode(codec)
                    break
                except UnicodeDecodeError:
                    continue
            return PurePosixPath(name.replace("\\", "/")).name or name
    outer = PurePosixPath(blob.filename or "archive.gz")
    return outer.stem + _GZIP_SUFFIXES.get(outer.suffix.lower(), "")


def read_gzip(blob: Blob, ctx: Context) -> Extracted:
    """One gzip stream (or several concatenated): the inner file is read like any other."""
    from sendguard.parse.extract import extract  # the dispatcher reads the inner file

    early = depth_problem(blob, ctx)
    if early is not None:
        return Extracted(problems=(early,))
    name = _gzip_name(blob)
    child = child_blob(blob, name)
    try:
        data = _gunzip(blob, _Budget(blob, ctx, len(blob.data)))
    except _Overflow as overflow:
        add_unread(child, ctx, overflow.issue.code)
        return Extracted(problems=(overflow.issue,))
    except (zlib.error, EOFError) as exc:
        return Extracted(problems=(problem("malformed", "bad-gzip", blob, type(exc).__name__),))
    if not ctx.charge(len(data), blob.label):
        ctx.bomb = True
        return Extracted(problems=(problem("limit", "expanded-size", blob),))
    extract(dataclasses.replace(child, data=data), ctx)
    return Extracted(text=name)


def read_tar(blob: Blob, ctx: Context) -> Extracted:
    """Every regular file of a tar; links, devices and sparse files are listed, not read.

    A plain tar stores its members uncompressed inside *blob*, so reading them expands
    nothing; only the member count and the archive depth are limited here.
    """
    early = depth_problem(blob, ctx)
    if early is not None:
        return Extracted(problems=(early,))
    names: list[str] = []
    found: list[Problem] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(blob.data), mode="r:") as archive:
            members = _tar_members(archive, blob, ctx)
            if isinstance(members, Problem):
                return Extracted(problems=(members,))
            for info in members:
                if ctx.bomb:
                    break
                names.append(info.name)
                _read_tar_member(archive, info, blob, ctx, found)
    except tarfile.TarError as exc:
        found.append(problem("malformed", "bad-tar", blob, type(exc).__name__))
    return Extracted(text="\n".join(names), problems=tuple(found))


def _tar_members(
    archive: tarfile.TarFile, blob: Blob, ctx: Context
) -> list[tarfile.TarInfo] | Problem:
    limit = ctx.limits.max_archive_members
    members: list[tarfile.TarInfo] = []
    for info in archive:  # iterate instead of getmembers(): stop at the limit
        if info.isdir():
            continue
        members.append(info)
        if len(members) > limit:
            return problem("limit", "archive-members", blob, f"more than {limit} files")
        ctx.check_time()
    return members


def _read_tar_member(
    archive: tarfile.TarFile, info: tarfile.TarInfo, blob: Blob, ctx: Context, found: list[Problem]
) -> None:
    from sendguard.parse.extract import extract

    child = child_blob(blob, info.name)
    if not info.isreg() or info.issparse():
        issue = problem("unsupported", "tar-special-file", child, info.name[:80])
        found.append(issue)
        add_unread(child, ctx, issue.code)
        return
    handle = archive.extractfile(info)
    data = handle.read(ctx.limits.max_member_bytes + 1) if handle else b""
    if len(data) > ctx.limits.max_member_bytes:
        issue = problem("limit", "member-size", child, f"{info.size} bytes")
        found.append(issue)
        add_unread(child, ctx, issue.code)
        return
    extract(dataclasses.replace(child, data=data), ctx)


class _Sink(py7zr.io.Py7zIO):
    """A 7z member's output, refused byte by byte past the budget (never by declared size)."""

    def __init__(self, budget: _Budget) -> None:
        self._budget = budget
        self._buffer = io.BytesIO()

    def write(self, s: bytes | bytearray) -> int:
        written = self._buffer.write(s)
        self._budget.grow(self._buffer.tell(), written)
        return written

    def read(self, size: int | None = None) -> bytes:
        return self._buffer.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._buffer.seek(offset, whence)

    def flush(self) -> None:
        return None

    def size(self) -> int:
        return self._buffer.getbuffer().nbytes

    def value(self) -> bytes:
        return self._buffer.getvalue()


class _Factory(py7zr.io.WriterFactory):
    def __init__(self, budget: _Budget) -> None:
        self.budget = budget
        self.products: dict[str, _Sink] = {}

    def create(self, filename: str) -> py7zr.io.Py7zIO:
        sink = _Sink(self.budget)
        self.products[filename] = sink
        return sink


_SEVEN_Z_ERRORS = (
    py7zr.exceptions.ArchiveError,
    py7zr.exceptions.UnsupportedCompressionMethodError,
    py7zr.exceptions.DecompressionError,
    py7zr.exceptions.CrcError,
    py7zr.exceptions.InternalError,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    IndexError,
)


def read_7z_members(blob: Blob, ctx: Context) -> Extracted:
    """Every file of an unencrypted 7z archive, decompressed under the budget."""
    from sendguard.parse.extract import extract

    early = depth_problem(blob, ctx)
    if early is not None:
        return Extracted(problems=(early,))
    factory = _Factory(_Budget(blob, ctx, len(blob.data)))
    try:
        with py7zr.SevenZipFile(io.BytesIO(blob.data), mode="r") as archive:
            if archive.needs_password():
                problems = (problem("encrypted", "encrypted-7z", blob),)
                return Extracted(encrypted=True, problems=problems)
            files = [f for f in archive.list() if not f.is_directory]
            limit = ctx.limits.max_archive_members
            if len(files) > limit:
                detail = f"{len(files)} files > {limit}"
                return Extracted(problems=(problem("limit", "archive-members", blob, detail),))
            archive.extract(factory=factory)
    except _Overflow as overflow:
        return Extracted(problems=(overflow.issue,))
    except py7zr.exceptions.PasswordRequired:
        return Extracted(encrypted=True, problems=(problem("encrypted", "encrypted-7z", blob),))
    except _SEVEN_Z_ERRORS as exc:
        return Extracted(problems=(problem("malformed", "bad-7z", blob, type(exc).__name__),))
    if not ctx.charge(factory.budget.total, blob.label):
        ctx.bomb = True
        return Extracted(problems=(problem("limit", "expanded-size", blob),))
    names = list(factory.products)
    for name, sink in factory.products.items():
        if ctx.bomb:
            break
        extract(dataclasses.replace(child_blob(blob, name), data=sink.value()), ctx)
    return Extracted(text="\n".join(names))
