"""What the bench reads from the machine: CPU and RSS of a process tree (/proc), and what
arrived at the sink (smtp-sink's dump files, matched by ``X-Bench-Id``).

CPU is utime+stime of every live process under the root plus cutime+cstime of reaped
children, so short-lived workers (Postfix's smtpd/cleanup/smtp) are counted too. Memory is
sampled every 50 ms as the sum of PSS over the tree; the peak of that sum is reported.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
_ID = re.compile(rb"^X-Bench-Id: ([\w.-]+)", re.M)


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def tree(root: int) -> list[int]:
    """`root` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def cpu_seconds(root: int) -> float:
    """CPU time of the whole tree so far (including reaped children)."""
    total = 0
    for pid in tree(root):
        fields = _stat(pid)
        if fields is not None:
            total += sum(int(v) for v in fields[11:15])
    return total / _TICK


def rss_bytes(root: int) -> int:
    """Memory of the tree: the sum of each process's proportional set size (PSS: its private
    pages plus its share of pages shared with others), so pages shared by forked workers or
    by Postfix's many daemons are counted once, not once per process."""
    total = 0
    for pid in tree(root):
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024
                break
    return total


@dataclass
class Usage:
    """CPU seconds used and the peak summed RSS while a block ran."""

    cpu: float = 0.0
    peak_rss: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)


@contextmanager
def usage(root: int | None) -> Iterator[Usage]:
    """Measure the tree under `root` while the block runs (nothing when root is None)."""
    result = Usage()
    if root is None:
        yield result
        return
    before = cpu_seconds(root)

    def sample() -> None:
        while not result._stop.wait(0.05):
            result.peak_rss = max(result.peak_rss, rss_bytes(root))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        result._stop.set()
        thread.join()
        result.peak_rss = max(result.peak_rss, rss_bytes(root))
        result.cpu = cpu_seconds(root) - before


# --------------------------------------------------------------------------- the sink


def wait_for_sink(
    dump_dir: Path, expected: int, time_limit: float, wanted: dict[str, int] | None = None
) -> int:
    """Wait (up to the limit) until the sink has `expected` complete files; returns the count.

    smtp-sink creates a file when a transaction starts and fills it as data arrives, so a
    file counts only once it is complete: with `wanted` (bench id → minimum size), once that
    id's file has reached its size; without, by the number of files alone.
    """
    deadline = time.monotonic() + time_limit
    names: dict[str, str] = {}
    count = 0
    while time.monotonic() < deadline:
        if wanted is None:
            count = sum(1 for _ in os.scandir(dump_dir))
        else:
            count = _complete(dump_dir, wanted, names)
        if count >= expected:
            break
        time.sleep(0.02)
    return count


def _complete(dump_dir: Path, wanted: dict[str, int], names: dict[str, str]) -> int:
    done = 0
    for entry in os.scandir(dump_dir):
        if entry.name not in names:
            with open(entry.path, "rb") as fh:
                match = _ID.search(fh.read(16384))
            if match is None:
                continue  # the headers are not written yet
            names[entry.name] = match.group(1).decode()
        if entry.stat().st_size >= wanted.get(names[entry.name], 0):
            done += 1
    return done


def dump_size(data: bytes) -> int:
    """The least a message's dump file holds: smtp-sink writes lines with LF, not CRLF."""
    return len(data) - data.count(b"\r\n")


def arrivals(dump_dir: Path, *, clear: bool = True) -> dict[str, float]:
    """Bench id → time the sink finished writing it (file mtime); removes the files."""
    found: dict[str, float] = {}
    for entry in os.scandir(dump_dir):
        path = Path(entry.path)
        with path.open("rb") as fh:
            head = fh.read(16384)
        match = _ID.search(head)
        mtime = entry.stat().st_mtime_ns / 1e9
        key = match.group(1).decode() if match else f"?{entry.name}"
        found[key] = max(found.get(key, 0.0), mtime)
        if clear:
            path.unlink()
    return found
