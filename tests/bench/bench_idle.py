"""Memory of `sendguard serve` at rest: ``python tests/bench/bench_idle.py [--rest 40]``.

Starts the relay with its default workers (one per core) and the shipped policy, relaying to
a Postfix `smtp-sink` on 127.0.0.1, sends a few plain messages and an attachment (so every
lazy import has happened), waits `--rest` seconds without traffic and prints the PSS of each
process of the tree and their sum (the figure the issue's target ≤ 200 MB is about).
"""

from __future__ import annotations

import argparse
import os
import smtplib
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))  # the shared test helpers in tests/support

from measure import tree  # noqa: E402
from tests.support import attachments as build  # noqa: E402
from tests.support.postfix import free_port, smtp_sink  # noqa: E402
from tests.support.relay import RelayProcess  # noqa: E402

PLAIN = b"From: a@example.co.jp\r\nTo: b@example.com\r\nSubject: hello\r\n\r\nhello\r\n"


def _pss_mb(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _name(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = b" ".join(argv).decode(errors="replace")
    for part in ("forkserver", "resource_tracker", "sendguard serve"):
        if part in text:
            return part
    return text[:40]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rest", type=float, default=40.0, help="seconds without traffic")
    parser.add_argument("--set", action="append", default=[], metavar="SENDGUARD_X=V")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sendguard-idle-") as tmp:
        work = Path(tmp)
        with smtp_sink(work / "sink", backlog=64) as sink_port:
            port = free_port()
            env = {
                "SENDGUARD_LISTEN": f"127.0.0.1:{port}",
                "SENDGUARD_WORKERS": "0",
                "SENDGUARD_UPSTREAM": f"smtp://127.0.0.1:{sink_port}",
                "SENDGUARD_POLICY_DIR": str(ROOT / "policies"),
                "SENDGUARD_STORE": f"sqlite:///{work}/sendguard.db",
                "SENDGUARD_HOSTNAME": "bench-idle.localdomain",
                **dict(item.split("=", 1) for item in args.set),
            }
            relay = RelayProcess(env, cwd=work).start(timeout=60)
            try:
                expected = os.cpu_count() or 1
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    if sum(e.get("event") == "listening" for e in relay.events()) >= expected:
                        break
                    time.sleep(0.1)
                attached = build.build_message(
                    attachments=[build.Attachment("a.csv", "品目,数量\nりんご,3\n".encode("cp932"))]
                )
                for data in [PLAIN] * 10 + [attached] * 4:
                    with smtplib.SMTP("127.0.0.1", port) as client:
                        client.sendmail("a@example.co.jp", ["b@example.com"], data)
                time.sleep(args.rest)
                assert relay.proc is not None
                total = 0.0
                for pid in tree(relay.proc.pid):
                    pss = _pss_mb(pid)
                    total += pss
                    print(f"{pid:>8} {pss:7.1f} MB  {_name(pid)}")
                print(f"total PSS {total:.1f} MB after {args.rest:.0f} s at rest")
            finally:
                relay.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
