"""Small mail while one 25 MB message passes: ``python tests/bench/bench_flow.py [--rounds 3]``.

Scenario (c)'s first row, repeated, with what its p99 hides: for each round, how long the big
message took, how many small messages were sent meanwhile, the six longest small-message
latencies and when (ms after the big message's start) the slowest ones began. The p99 of
~50 samples is their maximum; of ~170 it is the second longest: when the big message gets
faster, fewer small ones fall inside its window and the same late spike becomes the p99.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))  # the shared test helpers in tests/support

from loadgen import Sent, run_while  # noqa: E402
from measure import arrivals  # noqa: E402
from run import sendguard  # noqa: E402
from scenarios import Target, load  # noqa: E402
from tests.support.postfix import smtp_sink  # noqa: E402
from workloads import big_attachment, plain_20k  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    plain, big = plain_20k(), big_attachment(ROOT / "var" / "bench" / "cache")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with (
            smtp_sink(work / "sink", backlog=512) as sink_port,
            sendguard(work / "sg", sink_port, 0, {}) as relay,
        ):
            assert relay.proc is not None
            target = Target("sendguard", relay.port, relay.proc.pid)
            load("warm-up", target, work / "sink", [plain], count=40, concurrency=4, time_limit=60)
            for n in range(args.rounds):
                bigs, smalls = asyncio.run(
                    run_while(
                        target.port,
                        big,
                        [plain],
                        background_count=1,
                        concurrency=1,
                        time_limit=150,
                        prefix=f"flow-{n}",
                    )
                )
                time.sleep(2)  # the sink writes the last files
                got = arrivals(work / "sink")

                def done(s: Sent) -> float:
                    return max(s.acked, got.get(s.bench_id, 0.0))  # noqa: B023

                start, end = min(s.started for s in bigs), max(done(s) for s in bigs)
                during = sorted(
                    (s for s in smalls if s.started < end), key=lambda s: done(s) - s.started
                )
                slowest = [round((done(s) - s.started) * 1000) for s in during[-6:]]
                began = [round((s.started - start) * 1000) for s in reversed(during[-3:])]
                print(
                    f"big {1000 * (end - start):.0f} ms, {len(during)} small during; "
                    f"longest {slowest} ms, the three slowest began at {began} ms",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
