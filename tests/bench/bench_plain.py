"""A/B of the relay's CPU per plain message: ``python tests/bench/bench_plain.py [TREE ...]``.

Each round starts a fresh `sendguard serve` (one relay process, `SENDGUARD_WORKERS=1`,
shipped policy, SQLite store) from one source tree (`PYTHONPATH=TREE/src`; default: this
checkout), relaying to a discarding `smtp-sink`; sends an untimed warm-up, then the workload,
and reads the CPU time (utime+stime, reaped children included) of the relay's process tree
per message answered. Trees alternate round by round (A B B A A B…), so a change in the
machine's load falls on both; the medians and every round are printed.

Workloads: ``plain`` = (a)'s 20 KB Japanese mail by Postfix's smtp-source (20 sessions, a
connection per message); ``text`` = the office mix's eight plain mails and ``mass`` = its two
100-recipient mass mails, by the bench's own generator at 20 connections.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))  # the shared test helpers in tests/support

from loadgen import run_load  # noqa: E402
from measure import cpu_seconds  # noqa: E402
from tests.support.postfix import free_port, tool  # noqa: E402
from tests.support.relay import RelayProcess  # noqa: E402
from workloads import Template, office_mix, plain_20k  # noqa: E402


def _sink(port: int) -> subprocess.Popen[bytes]:
    user = ("-u", "root") if os.geteuid() == 0 else ()
    argv = [tool("smtp-sink"), *user, f"127.0.0.1:{port}", "512"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _templates(workload: str) -> list[Template]:
    if workload == "plain":
        return [plain_20k()]
    kinds = {"text": "text", "mass": "mass-100"}[workload]
    return [t for t in office_mix(ROOT / "var" / "bench" / "cache") if t.kind == kinds]


def _send(port: int, workload: str, templates: list[Template], count: int, eml: Path) -> int:
    """Messages answered 250."""
    if workload == "plain":
        argv = [tool("smtp-source"), "-s", "20", "-m", str(count), "-F", str(eml),
                "-f", templates[0].mail_from, "-t", templates[0].rcpts[0],
                f"127.0.0.1:{port}"]  # fmt: skip
        subprocess.run(argv, check=True, timeout=900, capture_output=True)
        return count
    sent = asyncio.run(
        run_load(port, templates, count=count, concurrency=20, time_limit=600, prefix="ab")
    )
    return sum(1 for s in sent if s.code == 250)


def one_round(tree: Path, workload: str, count: int, work: Path, extra: dict[str, str]) -> float:
    """CPU ms per message of the relay tree started from `tree`."""
    templates = _templates(workload)
    eml = work / "message.eml"
    eml.write_bytes(templates[0].data.replace(b"\r\n", b"\n"))  # smtp-source adds CRs
    sink_port = free_port()
    sink = _sink(sink_port)
    rundir = Path(tempfile.mkdtemp(dir=work))
    env = {
        "PYTHONPATH": str(tree / "src"),
        "SENDGUARD_WORKERS": "1",
        "SENDGUARD_UPSTREAM": f"smtp://127.0.0.1:{sink_port}",
        "SENDGUARD_POLICY_DIR": str(ROOT / "policies"),
        "SENDGUARD_STORE": f"sqlite:///{rundir}/sendguard.db",
        "SENDGUARD_HOSTNAME": "ab.localdomain",
        "SENDGUARD_UPSTREAM_POOL_SIZE": "24",
        **extra,
    }
    relay = RelayProcess(env, cwd=rundir).start(timeout=90)
    try:
        assert relay.proc is not None
        _send(relay.port, workload, templates, 100, eml)  # imports, caches, pool
        time.sleep(0.5)
        before = cpu_seconds(relay.proc.pid)
        done = _send(relay.port, workload, templates, count, eml)
        after = cpu_seconds(relay.proc.pid)
        if done != count:
            raise SystemExit(f"{tree}: only {done} of {count} answered 250")
        return (after - before) * 1000 / count
    finally:
        relay.stop()
        sink.terminate()
        sink.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="*", type=Path, default=[ROOT], help="source trees")
    parser.add_argument("--workload", choices=("plain", "text", "mass"), default="plain")
    parser.add_argument("--messages", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=4, help="rounds per tree")
    parser.add_argument("--set", action="append", default=[], metavar="SENDGUARD_X=V")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.set)
    trees = [t.resolve() for t in args.trees]
    results: dict[Path, list[float]] = {t: [] for t in trees}
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.rounds):
            order = trees if n % 2 == 0 else trees[::-1]
            for tree in order:
                ms = one_round(tree, args.workload, args.messages, Path(tmp), extra)
                results[tree].append(ms)
                load = os.getloadavg()[0]
                print(f"round {n + 1} {tree}: {ms:.2f} ms CPU/message (load {load:.1f})")
    for tree, values in results.items():
        rounds = " ".join(f"{v:.2f}" for v in values)
        print(f"{args.workload} {tree}: median {statistics.median(values):.2f} ms ({rounds})")


if __name__ == "__main__":
    main()
