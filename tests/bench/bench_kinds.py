"""CPU of the relay per office-mix kind: ``python tests/bench/bench_kinds.py [--count 10]``.

Starts `sendguard serve` (shipped policy, one relay worker) in front of a Postfix `smtp-sink`,
warms it up, then sends each kind of message of workload (b) (`workloads.office_mix`, plus
the 20 KB plain mail of (a)) `count` times over one connection and prints the CPU time of the
relay's whole process tree (relay, extraction process) per message. Where (b)'s CPU per
message goes, kind by kind: the attachments' share against the relay's own (compare with
`bench_attach.py`, which decides the attachment alone in one process).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))  # the shared test helpers in tests/support

from measure import cpu_seconds  # noqa: E402
from run import sendguard  # noqa: E402
from scenarios import Target, load  # noqa: E402
from tests.support.postfix import smtp_sink  # noqa: E402
from workloads import Template, office_mix, plain_20k  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10, help="messages per kind")
    args = parser.parse_args()
    kinds: dict[str, Template] = {}
    for template in [*office_mix(ROOT / "var" / "bench" / "cache"), plain_20k()]:
        kinds.setdefault(template.kind, template)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with (
            smtp_sink(work / "sink", backlog=64) as sink_port,
            sendguard(work / "sg", sink_port, 1, {}) as relay,
        ):
            assert relay.proc is not None
            target = Target("sendguard", relay.port, relay.proc.pid)
            warm = list(kinds.values()) * 2
            load(
                "warm-up",
                target,
                work / "sink",
                warm,
                count=len(warm),
                concurrency=1,
                time_limit=120,
            )
            print(f"{'kind':14} {'size':>8}  CPU per message (relay tree)")
            for kind, template in kinds.items():
                before = cpu_seconds(relay.proc.pid)
                load(
                    kind,
                    target,
                    work / "sink",
                    [template],
                    count=args.count,
                    concurrency=1,
                    time_limit=300,
                )
                spent = (cpu_seconds(relay.proc.pid) - before) * 1000 / args.count
                print(f"{kind:14} {len(template.data) / 1e6:6.2f}MB  {spent:8.1f} ms", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
