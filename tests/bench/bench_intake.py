"""Before/after of the intake and deliver fast paths: ``python tests/bench/bench_intake.py``.

Intake: a relay process with a handler that answers 250 at once (no inspection, no upstream),
fed by Postfix's smtp-source; CPU seconds per message of that process, for aiosmtpd's own
`SMTP` protocol (before) and sendguard's `RelaySMTP` from a prototype with the one-search
DATA read (after). Deliver: the synchronous work to prepare a DATA payload — aiosmtplib's
regex passes (before) and `dot_stuffed` (after) — i.e. how long the event loop is blocked.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))  # the shared test helpers in tests/support

from tests.support.postfix import free_port, tool  # noqa: E402
from workloads import big_attachment, plain_20k  # noqa: E402


class _Accept:
    """Relays nothing: 250 for every recipient and message."""

    async def handle_RCPT(self, server, session, envelope, address, options):  # type: ignore[no-untyped-def]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        return "250 OK"


def _serve(kind: str, port: int, ready, done, result) -> None:  # type: ignore[no-untyped-def]
    from aiosmtpd.smtp import SMTP

    from sendguard.intake.server import Intake, RelaySMTP
    from sendguard.model import Listener

    async def main() -> None:
        handler = _Accept()
        options = {"decode_data": False, "data_size_limit": 50 << 20, "hostname": "bench"}
        if kind == "aiosmtpd":
            loop = asyncio.get_running_loop()
            server = await loop.create_server(lambda: SMTP(handler, **options), "127.0.0.1", port)
        else:
            intake = Intake(lambda i: RelaySMTP(i, handler, **options))
            await intake.start((Listener(host="127.0.0.1", port=port),))
        ready.set()
        await asyncio.to_thread(done.wait, 900)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        result.value = usage.ru_utime + usage.ru_stime
        if kind == "aiosmtpd":
            server.close()

    asyncio.run(main())


def intake_cpu(kind: str, message: Path, count: int, sessions: int) -> float:
    """CPU seconds per message of the serving process."""
    port = free_port()
    ready, done = multiprocessing.Event(), multiprocessing.Event()
    result = multiprocessing.Value("d", 0.0)
    proc = multiprocessing.Process(target=_serve, args=(kind, port, ready, done, result))
    proc.start()
    ready.wait(30)
    argv = [tool("smtp-source"), "-s", str(sessions), "-m", str(count), "-F", str(message),
            "-f", "a@example.co.jp", "-t", "b@customer.example", f"127.0.0.1:{port}"]  # fmt: skip
    subprocess.run(argv, check=True, timeout=600, capture_output=True)
    done.set()
    proc.join(30)
    return float(result.value) / count


def data_prep(data: bytes) -> tuple[float, float]:
    """Seconds to prepare a DATA payload: aiosmtplib's regexes, then `dot_stuffed`."""
    from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

    from sendguard.deliver.smtp import dot_stuffed

    started = time.perf_counter()
    before = PERIOD_REGEX.sub(b"..", normalize_message_line_endings(data)) + b".\r\n"
    middle = time.perf_counter()
    after = dot_stuffed(data) + b".\r\n"
    ended = time.perf_counter()
    assert before == after
    return middle - started, ended - middle


def main() -> None:
    """Print the before/after figures."""
    cache = HERE.parents[1] / "var" / "bench" / "cache"
    small, big = plain_20k().data, big_attachment(cache).data
    with tempfile.TemporaryDirectory() as tmp:
        files = {"20 KB": Path(tmp) / "small.eml", "34 MB": Path(tmp) / "big.eml"}
        files["20 KB"].write_bytes(small.replace(b"\r\n", b"\n"))
        files["34 MB"].write_bytes(big.replace(b"\r\n", b"\n"))
        for label, count, sessions in (("20 KB", 2000, 20), ("34 MB", 4, 2)):
            for kind in ("aiosmtpd", "sendguard"):
                cpu = intake_cpu(kind, files[label], count, sessions)
                print(f"intake {label:>6} {kind:<10} {cpu * 1000:8.2f} ms CPU/message")
    for label, data in (("20 KB", small), ("34 MB", big)):
        regex, lean = data_prep(data)
        print(f"deliver {label:>6} aiosmtplib {regex * 1000:8.2f} ms", end="")
        print(f"   dot_stuffed {lean * 1000:8.2f} ms")


if __name__ == "__main__":
    main()
