"""Big messages on disk while they arrive and wait (stage 1 of the flow, inside the intake).

Above `Spool.threshold` octets the DATA reader stops collecting the message in memory and
writes it, dot-unstuffed, to a file in the spool directory (beside the store by default).
The file only ever holds a message the client has not been answered for yet: the 250 still
comes after the upstream or the store has it, so the file is never fsynced — after a crash
the client resends, and whatever a dead process left behind is removed when a relay process
starts (`Spool.open`). Files are created 0600 in a 0700 directory (`tempfile.mkstemp`) and
named after the creating process, so one relay process never removes a live sibling's file.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import structlog

log = structlog.get_logger(__name__)

_SUFFIX = ".spool"
_NAME = re.compile(r"^msg-(\d+)-.*\.spool$")


@dataclass(frozen=True, slots=True)
class Spool:
    """Where and from what size messages are spooled."""

    directory: Path
    threshold: int
    """Messages larger than this (octets, dot-unstuffed) go to a file while they arrive."""

    def open(self) -> Spool:
        """Create the directory (0700) and remove what dead processes left in it."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        removed = 0
        for entry in os.scandir(self.directory):
            match = _NAME.match(entry.name)
            if match is None or _alive(int(match.group(1))):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
        if removed:
            log.warning("spool_leftovers_removed", files=removed, directory=str(self.directory))
        return self

    def create(self, lines: Lines) -> SpoolWriter:
        """A new, empty spool file (0600, exclusive); `lines` sees every unstuffed piece."""
        fd, name = tempfile.mkstemp(
            prefix=f"msg-{os.getpid()}-", suffix=_SUFFIX, dir=self.directory
        )
        return SpoolWriter(Path(name), os.fdopen(fd, "wb"), lines)


class Lines(Protocol):
    """What is learnt about the message's lines as it is written (`intake.data.LineScan`)."""

    @property
    def bare(self) -> bool:
        """A CR or LF outside CRLF was seen."""
        ...

    @property
    def long(self) -> bool:
        """A line over the limit was seen."""
        ...

    def feed(self, piece: bytes) -> None: ...
    def finish(self) -> None: ...


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process is only starting: nothing of it is in flight yet
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True, slots=True)
class SpooledMessage:
    """A received message that lives in a spool file until its transaction ends."""

    path: Path
    size: int
    lines: Lines
    """Its line facts, gathered as it was written (`intake.data.LineScan`)."""

    def read(self) -> bytes:
        """The message bytes, exactly as received (dot-unstuffed)."""
        return self.path.read_bytes()

    def remove(self) -> None:
        """Delete the file (the transaction has ended, however)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class SpoolWriter:
    """Writes the DATA stream, cut into pieces anywhere, dot-unstuffed to a spool file."""

    def __init__(self, path: Path, file: BinaryIO, lines: Lines) -> None:
        self.path = path
        self._file = file
        self._unstuff = Unstuffer()
        self._lines = lines
        self.size = 0

    def write(self, piece: bytes) -> None:
        """Append one piece of the DATA stream (still dot-stuffed)."""
        self._put(self._unstuff.feed(piece))

    def finish(self) -> SpooledMessage:
        """Close the file: the message is complete."""
        self._put(self._unstuff.finish())
        self._lines.finish()
        self._file.close()
        return SpooledMessage(self.path, self.size, self._lines)

    def _put(self, out: bytes) -> None:
        # `Unstuffer` output never ends in CR: no CRLF is split between two pieces here.
        self._lines.feed(out)
        self.size += len(out)
        self._file.write(out)

    def discard(self) -> None:
        """Close and delete the file (refused, or the client went away)."""
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class Unstuffer:
    """RFC 5321 §4.5.2 dot-unstuffing of a stream that arrives in pieces cut anywhere.

    The same result as ``raw.replace(b"\\r\\n.", b"\\r\\n")`` on the whole message after the
    DATA line's CRLF (which is why the stream starts with a virtual CRLF, dropped again):
    a CR or CRLF at the end of a piece waits for the next one, since a dot there may follow.
    """

    def __init__(self) -> None:
        self._carry = b"\r\n"
        self._skip = 2

    def feed(self, piece: bytes) -> bytes:
        """The unstuffed octets that `piece` completes."""
        buf = self._carry + piece if self._carry else piece
        cut = len(buf) - (2 if buf.endswith(b"\r\n") else 1 if buf.endswith(b"\r") else 0)
        self._carry = buf[cut:]
        return self._drop(buf[:cut].replace(b"\r\n.", b"\r\n"))

    def finish(self) -> bytes:
        """What is left at the end of the message."""
        carry, self._carry = self._carry, b""
        return self._drop(carry)

    def _drop(self, out: bytes) -> bytes:
        if self._skip:
            dropped = min(self._skip, len(out))
            self._skip -= dropped
            return out[dropped:]
        return out
