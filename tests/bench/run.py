"""sendguard against Postfix and the wire, in one run: ``python tests/bench/run.py [--quick]``.

Starts one `smtp-sink` (dumping every message, the common upstream), a private Debian
Postfix relaying to it, and `sendguard serve` (shipped default policy, one worker per core)
relaying to it; runs every workload against the sink directly, Postfix and sendguard; prints
the table and rewrites the results section of ``docs/benchmarks.md`` and its plot. Needs root
(Postfix) and Debian's postfix package. Everything listens on 127.0.0.1 only; every load loop
has a count and a time limit; the full run takes a few minutes, ``--quick`` about one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))  # the shared test helpers in tests/support

from measure import arrivals  # noqa: E402
from report import write_report  # noqa: E402
from scenarios import Row, Target, big_with_flow, load, source  # noqa: E402
from tests.support.postfix import free_port, postfix_relay, smtp_sink  # noqa: E402
from tests.support.relay import RelayProcess  # noqa: E402
from workloads import big_attachment, check_verdicts, office_mix, plain_20k  # noqa: E402


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much each scenario sends."""

    source: int
    a_c1: int
    a_c20: int
    b_c1: int
    b_c20: int
    big_flow: int
    big_mem: int
    limit: float


FULL = Sizes(
    source=2000, a_c1=300, a_c20=1000, b_c1=30, b_c20=150, big_flow=1, big_mem=20, limit=150
)
QUICK = Sizes(source=300, a_c1=40, a_c20=200, b_c1=8, b_c20=30, big_flow=1, big_mem=3, limit=60)

POSTFIX_MAIN_CF = (
    # Same size limit as sendguard's default, so the 25 MB message is accepted.
    "message_size_limit = 52428800",
    # One transaction per message to the relayhost, as sendguard does (default would split
    # the 100-recipient mass mails in two and the sink would count two files).
    "smtp_destination_recipient_limit = 1000",
)


@contextlib.contextmanager
def sendguard(
    workdir: Path, sink_port: int, workers: int, extra_env: dict[str, str]
) -> Iterator[RelayProcess]:
    """`sendguard serve` with the shipped default policy, relaying to the sink."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        "SENDGUARD_LISTEN": f"127.0.0.1:{port}",
        "SENDGUARD_WORKERS": str(workers),
        "SENDGUARD_UPSTREAM": f"smtp://127.0.0.1:{sink_port}",
        "SENDGUARD_POLICY_DIR": str(ROOT / "policies"),
        "SENDGUARD_STORE": f"sqlite:///{workdir}/sendguard.db",
        "SENDGUARD_HOSTNAME": "bench-sendguard.localdomain",
        # Enough idle upstream sessions for 20 concurrent clients (the default keeps 4).
        "SENDGUARD_UPSTREAM_POOL_SIZE": "24",
        **extra_env,
    }
    relay = RelayProcess(env, cwd=workdir).start(timeout=60)
    expected = workers or (os.cpu_count() or 1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if sum(e.get("event") == "listening" for e in relay.events()) >= expected:
            break
        time.sleep(0.1)
    try:
        yield relay
    finally:
        relay.stop()


def warm_up(targets: list[Target], sink_dir: Path, templates: list, sizes: Sizes) -> None:
    """Untimed: the first messages pay for lazy imports and caches in every worker."""
    for target in targets:
        load(
            "warm-up",
            target,
            sink_dir,
            templates,
            count=len(templates) * 2,
            concurrency=4,
            time_limit=sizes.limit,
        )
    arrivals(sink_dir)


def run_all(
    sizes: Sizes, workdir: Path, workers: int, cache: Path, extra_env: dict[str, str]
) -> list[Row]:
    """Every scenario against every target, in one process tree each."""
    plain = plain_20k()
    mix = office_mix(cache)
    big = big_attachment(cache)
    problems = check_verdicts([plain, *mix, big], ROOT / "policies", cache)
    if problems:
        raise SystemExit(f"templates the default policy would not pass: {problems}")
    message_file = workdir / "plain-20k.eml"
    message_file.write_bytes(plain.data.replace(b"\r\n", b"\n"))  # smtp-source adds CRLF
    sink_dir = workdir / "sink"
    rows: list[Row] = []
    with (
        smtp_sink(sink_dir, backlog=512) as sink_port,
        postfix_relay(workdir / "postfix", sink_port, main_cf=POSTFIX_MAIN_CF) as pf,
        sendguard(workdir / "sendguard", sink_port, workers, extra_env) as sg,
    ):
        assert sg.proc is not None
        targets = [
            Target("direct", sink_port, None),
            Target("postfix", pf.port, pf.master_pid()),
            Target("sendguard", sg.port, sg.proc.pid),
        ]
        warm_up(targets, sink_dir, [plain, *mix], sizes)
        for t in targets:
            rows.append(
                source(
                    "a: smtp-source 20 sessions",
                    t,
                    sink_dir,
                    message_file,
                    plain,
                    count=sizes.source,
                    sessions=20,
                    time_limit=sizes.limit,
                )
            )
            _progress(rows[-1])
        for label, templates, n1, n20 in (
            ("a", [plain], sizes.a_c1, sizes.a_c20),
            ("b", mix, sizes.b_c1, sizes.b_c20),
        ):
            for conc, count in ((1, n1), (20, n20)):
                for t in targets:
                    rows.append(
                        load(
                            f"{label}: {conc} conn",
                            t,
                            sink_dir,
                            templates,
                            count=count,
                            concurrency=conc,
                            time_limit=sizes.limit,
                        )
                    )
                    _progress(rows[-1])
        for t in targets:
            rows.append(
                big_with_flow(
                    "c: 25 MB + small mail",
                    t,
                    sink_dir,
                    big,
                    [plain],
                    big_count=sizes.big_flow,
                    concurrency=1,
                    time_limit=sizes.limit,
                )
            )
            _progress(rows[-1])
        for t in targets[1:]:
            rows.append(
                big_with_flow(
                    f"c: {sizes.big_mem}×25 MB at once",
                    t,
                    sink_dir,
                    big,
                    [plain],
                    big_count=sizes.big_mem,
                    concurrency=1,
                    time_limit=sizes.limit * 2,
                )
            )
            _progress(rows[-1])
    return rows


def _progress(row: Row) -> None:
    print(
        f"  {row.scenario:<28} {row.target:<10} {row.rate:>8} msg/s  p50 {row.p50_ms} ms  "
        f"p99 {row.p99_ms} ms  {row.note}",
        flush=True,
    )


def main() -> int:
    """Run the comparison, print the table, write docs/benchmarks.md and the plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (about a minute)")
    parser.add_argument("--workers", type=int, default=0, help="sendguard workers (0 = cores)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs alone")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SENDGUARD_X=V",
        help="an extra sendguard setting for this run (repeatable)",
    )
    parser.add_argument("--from-json", type=Path, help="re-render a saved run; run nothing")
    args = parser.parse_args()
    results = ROOT / "var" / "bench" / "last-run.json"
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        rows = [Row(**r) for r in saved["rows"]]
        text = write_report(rows, ROOT / "docs", write=not args.no_write, **saved["meta"])
        print(text)
        return 0
    if os.geteuid() != 0:
        raise SystemExit("run as root: the Postfix peer is a private postfix instance")
    sizes = QUICK if args.quick else FULL
    cache = ROOT / "var" / "bench" / "cache"
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="sendguard-bench-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)  # Postfix's daemons (user postfix) must reach their queue
        extra_env = dict(item.split("=", 1) for item in args.set)
        rows = run_all(sizes, workdir, args.workers, cache, extra_env)
    meta = {
        "quick": args.quick,
        "workers": args.workers,
        "elapsed": time.monotonic() - started,
        "load": (load_before, os.getloadavg()[0]),
        "settings": args.set,
    }
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=1))
    text = write_report(rows, ROOT / "docs", write=not args.no_write, **meta)  # type: ignore[arg-type]
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
