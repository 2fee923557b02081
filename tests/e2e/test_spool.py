"""Big mail is spooled to disk and waits its turn for the byte budget, against a real relay
and a real upstream (small thresholds, so each test takes a few seconds).

- Above `spool_threshold` the message is a 0600 file in the spool directory while it is
  inspected and delivered, gone afterwards, and delivered byte for byte.
- A spool file that a dead process left behind is removed when the relay starts.
- Past `inflight_budget`, a big message waits (it is not refused) while small mail passes,
  and the wait is not part of `scan_budget`.
- A spooled message goes to the extraction process as its file's path, not its bytes; a
  file that is gone by then fails the message closed (451).
"""

from __future__ import annotations

import asyncio
import base64
import os
import pickle
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from sendguard.parse import pool as pool_module
from tests.e2e.wire import HEADERS, Wire
from tests.support.relay import running_relay
from tests.support.upstream import RecordingUpstream

THRESHOLD = 4096
# Lines that start with a dot cross the spool's piece boundaries: unstuffing must be exact.
BIG = HEADERS + b"".join(b".line %05d of a big message, dot first\r\n" % i for i in range(600))
SMALL = HEADERS + b"a small message\r\n"
# Not plain (an attachment): inspected in the extraction process, whatever its size.
_CSV = "氏名,個人番号\r\n" + "".join(f"社員{i},123456789018\r\n" for i in range(1000))
ATTACHED = (
    b"From: a@example.jp\r\nTo: b@partner.test\r\nSubject: list\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
    b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    + b"".join(b".dot line %03d\r\n" % i for i in range(50))
    + b"--b1\r\nContent-Type: text/csv; charset=utf-8\r\n"
    b'Content-Disposition: attachment; filename="list.csv"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    + base64.encodebytes(_CSV.encode()).replace(b"\n", b"\r\n")
    + b"--b1--\r\n"
)


def _stuffed(body: bytes) -> bytes:
    return body.replace(b"\r\n.", b"\r\n..")


def _spool_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.spool")) if directory.exists() else []


async def _send(port: int, body: bytes) -> tuple[str, float]:
    """The reply to one message and when it came (monotonic)."""
    wire = await Wire.open(port)
    try:
        reply = await wire.message(_stuffed(body))
    finally:
        wire.close()
    return reply, time.monotonic()


async def test_big_message_is_spooled_0600_and_delivered_exactly(
    upstream: RecordingUpstream,
) -> None:
    """While the upstream holds the message, its spool file exists with mode 0600; after
    the 250 it is gone, and the upstream got the exact bytes (dot lines included)."""
    assert len(BIG) > 5 * THRESHOLD
    async with running_relay(upstream=upstream.url, spool_threshold=THRESHOLD) as app:
        assert app.spool is not None
        directory = app.spool.directory
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        upstream.hang_next("DATA", 1.0)
        sending = asyncio.create_task(_send(app.bound[0][1], BIG))
        seen: list[Path] = []
        async with asyncio.timeout(5):
            while not seen:
                seen = _spool_files(directory)
                await asyncio.sleep(0.02)
        assert stat.S_IMODE(seen[0].stat().st_mode) == 0o600
        assert seen[0].stat().st_size == len(BIG)
        reply, _ = await sending
        assert reply.startswith("250"), reply
        assert _spool_files(directory) == []
        small_reply, _ = await _send(app.bound[0][1], SMALL)
        assert small_reply.startswith("250")
        assert _spool_files(directory) == []  # small mail never touches the disk
    assert [m.data for m in upstream.messages] == [BIG, SMALL]


async def test_refused_big_message_leaves_no_spool_file(upstream: RecordingUpstream) -> None:
    """A spooled message over the size limit is refused (552) and its file removed."""
    async with running_relay(
        upstream=upstream.url, spool_threshold=THRESHOLD, max_message_size=len(BIG) - 100
    ) as app:
        assert app.spool is not None
        reply, _ = await _send(app.bound[0][1], BIG)
        assert reply.startswith("552"), reply
        assert _spool_files(app.spool.directory) == []
    assert upstream.messages == []


@pytest.mark.parametrize(
    ("line", "code"),
    [(b"z" * 999 + b"\r\n", "550 5.6.0 Line longer"), (b"bare\nLF\r\n", "550 5.6.0 Bare CR or LF")],
)
async def test_spooled_message_gets_the_same_line_refusals(
    upstream: RecordingUpstream, line: bytes, code: str
) -> None:
    """A spooled message's lines are judged as a message in memory is: a 999-octet line
    (which the wire check lets through, as it may carry a stuffing dot) and a bare LF are
    refused, and nothing reaches the upstream."""
    async with running_relay(upstream=upstream.url, spool_threshold=THRESHOLD) as app:
        assert app.spool is not None
        reply, _ = await _send(app.bound[0][1], BIG + line)
        assert reply.startswith(code), reply
        assert _spool_files(app.spool.directory) == []
    assert upstream.messages == []


async def test_crash_leftovers_are_removed_at_start(
    upstream: RecordingUpstream, tmp_path: Path
) -> None:
    """A spool file of a process that no longer exists is removed when a relay starts; one
    of a live process (a sibling relay process) is left alone."""
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o700)
    dead = spool / f"msg-{_dead_pid()}-abc.spool"
    dead.write_bytes(BIG)
    live = spool / f"msg-{os.getppid()}-def.spool"
    live.write_bytes(SMALL)
    with capture_logs() as logs:
        async with running_relay(upstream=upstream.url, spool_dir=spool) as app:
            assert app.spool is not None and app.spool.directory == spool
            assert not dead.exists()
            assert live.exists()
    assert any(e["event"] == "spool_leftovers_removed" and e["files"] == 1 for e in logs)


async def test_big_message_waits_for_the_budget_outside_the_scan_budget(
    upstream: RecordingUpstream,
) -> None:
    """Budget for one big message: the second waits while the first is at a slow upstream
    (2 s, twice the scan budget), is not refused, and is delivered; small mail sent
    meanwhile passes at once."""
    async with running_relay(
        upstream=upstream.url,
        spool_threshold=THRESHOLD,
        inflight_budget=len(BIG) + 1000,
        scan_budget=1.0,
    ) as app:
        port = app.bound[0][1]
        upstream.hang_next("DATA", 2.0)
        with capture_logs() as logs:
            first = asyncio.create_task(_send(port, BIG))
            await _spooled(app)
            second = asyncio.create_task(_send(port, BIG))
            await asyncio.sleep(0.5)  # the second is in, waiting for its turn
            small_reply, small_at = await _send(port, SMALL)
            (first_reply, first_at), (second_reply, second_at) = await asyncio.gather(first, second)
    assert small_reply.startswith("250"), small_reply
    assert first_reply.startswith("250"), first_reply
    assert second_reply.startswith("250"), second_reply
    assert small_at < first_at < second_at
    [waited] = [e for e in logs if e["event"] == "byte_budget_waited"]
    assert waited["waited_ms"] > 1000  # longer than the whole scan budget, and no 451
    assert [m.data for m in upstream.messages] == [SMALL, BIG, BIG]


@pytest.fixture
def pool_jobs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[object, ...], int]]:
    """Every job sent to an extraction process: its function's name, its arguments and its
    pickled size (what crosses the pipe)."""
    jobs: list[tuple[str, tuple[object, ...], int]] = []
    exchange = pool_module._exchange

    def recording(conn: Any, job: Any) -> Any:
        fn, args = job
        jobs.append((fn.__name__, args, len(pickle.dumps(job))))
        return exchange(conn, job)

    monkeypatch.setattr(pool_module, "_exchange", recording)
    return jobs


async def test_spooled_message_is_inspected_from_its_file(
    upstream: RecordingUpstream, pool_jobs: list[tuple[str, tuple[object, ...], int]]
) -> None:
    """The extraction process is sent the spool file's path, never the message: the job is
    a small fraction of the message, yet the whole attachment was read (its My Number and
    its 1,000 rows), and the upstream gets the message byte for byte."""
    assert len(ATTACHED) > 5 * THRESHOLD
    with capture_logs() as logs:
        async with running_relay(upstream=upstream.url, spool_threshold=THRESHOLD) as app:
            assert app.spool is not None
            reply, _ = await _send(app.bound[0][1], ATTACHED)
            assert reply.startswith("250"), reply
    [(name, args, size)] = [job for job in pool_jobs if job[0] != "parse_and_detect_in_worker"]
    assert name == "parse_and_detect_file_in_worker"
    assert args[1] == len(ATTACHED)
    assert not any(isinstance(a, bytes) and len(a) >= THRESHOLD for a in args)
    assert size < len(ATTACHED) // 2
    [done] = [e for e in logs if e["event"] == "transaction"]
    assert {"personal-data/my-number:1", "personal-data/customer-list:1000"} <= set(
        done["findings"]
    )
    assert [m.data for m in upstream.messages] == [ATTACHED]


async def test_spool_file_gone_before_extraction_fails_closed(
    upstream: RecordingUpstream,
    pool_jobs: list[tuple[str, tuple[object, ...], int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A spool file removed after the relay read it for delivery but before the extraction
    process opened it: 451, never a pass on an unread message, and nothing is delivered."""
    exchange = pool_module._exchange  # the recording one

    def removing(conn: Any, job: Any) -> Any:
        fn, args = job
        if fn.__name__ == "parse_and_detect_file_in_worker":
            os.unlink(args[0])
        return exchange(conn, job)

    monkeypatch.setattr(pool_module, "_exchange", removing)
    async with running_relay(upstream=upstream.url, spool_threshold=THRESHOLD) as app:
        assert app.spool is not None
        reply, _ = await _send(app.bound[0][1], ATTACHED)
        assert reply.startswith("451"), reply
        assert _spool_files(app.spool.directory) == []
    assert [job[0] for job in pool_jobs][-1] == "parse_and_detect_file_in_worker"
    assert upstream.messages == []


async def test_normalised_spooled_message_is_inspected_as_delivered(
    upstream: RecordingUpstream, pool_jobs: list[tuple[str, tuple[object, ...], int]]
) -> None:
    """With `line_policy = "normalise"` a bare LF makes the message differ from its file:
    the extraction process then gets the normalised bytes, which are what is delivered."""
    bare = ATTACHED.replace(b".dot line 007\r\n", b".dot line 007\n")
    async with running_relay(
        upstream=upstream.url, spool_threshold=THRESHOLD, line_policy="normalise"
    ) as app:
        reply, _ = await _send(app.bound[0][1], bare)
        assert reply.startswith("250"), reply
    [delivered] = [m.data for m in upstream.messages]
    assert delivered == ATTACHED
    assert [job[1][0] for job in pool_jobs if job[0] != "parse_and_detect_in_worker"] == []
    assert ATTACHED in [job[1][0] for job in pool_jobs]


def _dead_pid() -> int:
    """The pid of a process that has just ended."""
    code = "import os; print(os.getpid())"
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return int(done.stdout)


async def _spooled(app: Any) -> None:
    async with asyncio.timeout(5):
        while not _spool_files(app.spool.directory):  # noqa: ASYNC110  # a file signals nothing
            await asyncio.sleep(0.02)
