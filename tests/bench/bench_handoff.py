"""One big message handed to the extraction process: ``python tests/bench/bench_handoff.py``.

The 34 MB message of workload (c), inspected by an `Inspector` with one extraction process
under the shipped policy (DNS on a closed loopback port), alternately as bytes (what every
message did before) and as its spool file (`spooled=`, what a spooled message does now).
Per way: the wall time of `Inspector.inspect`, the CPU time of this (the relay's) process
in it — pickling the job is the relay's cost, the worker's parse is not counted — and the
pickled size of the job.
"""

from __future__ import annotations

import asyncio
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))  # the shared test helpers in tests/support

from workloads import big_attachment  # noqa: E402

from sendguard.inspect import Inspector  # noqa: E402
from sendguard.model import Envelope  # noqa: E402
from sendguard.parse import pool as pool_module  # noqa: E402
from sendguard.parse.limits import ParseLimits  # noqa: E402
from sendguard.parse.pool import ExtractionPool  # noqa: E402
from sendguard.policy.holder import PolicyHolder  # noqa: E402

ROUNDS = 5
# A closed loopback port: the DNS detector gives up at once, nothing leaves the machine.
NO_DNS = """
[detectors.unresolvable-domain]
nameservers = ["127.0.0.1"]
port = 9
query_timeout = 0.2
budget = 0.5
"""


async def main() -> None:
    big = big_attachment(ROOT / "var" / "bench" / "cache")
    envelope = Envelope(big.mail_from, big.rcpts)
    job_sizes: dict[str, int] = {}
    exchange = pool_module._exchange

    def measuring(conn: Any, job: Any) -> Any:
        job_sizes[job[0].__name__] = len(pickle.dumps(job))
        return exchange(conn, job)

    pool_module._exchange = measuring  # type: ignore[assignment]
    times: dict[str, list[tuple[float, float]]] = {"bytes": [], "file": []}
    with tempfile.TemporaryDirectory() as tmp:
        policies = Path(tmp) / "policies"
        policies.mkdir()
        (policies / "default.toml").write_bytes((ROOT / "policies" / "default.toml").read_bytes())
        (policies / "no-dns.toml").write_text(NO_DNS, encoding="utf-8")
        pool = ExtractionPool(workers=1, memory_limit_bytes=1024 << 20)
        inspector = Inspector(
            policy=PolicyHolder(policies),
            limits=ParseLimits.model_validate({}),
            pool=pool,
            content_timeout=120,
        )
        spooled = Path(tmp) / "msg.spool"
        spooled.write_bytes(big.data)
        try:
            await inspector.inspect(envelope, big.data)  # warm: imports, detectors
            for _ in range(ROUNDS):
                for way in ("bytes", "file"):
                    wall, cpu = time.perf_counter(), time.process_time()
                    await inspector.inspect(
                        envelope, big.data, spooled=spooled if way == "file" else None
                    )
                    times[way].append((time.perf_counter() - wall, time.process_time() - cpu))
        finally:
            await pool.close()
    print(f"message: {len(big.data) / 1e6:.1f} MB, {ROUNDS} rounds each, alternating")
    for way, runs in times.items():
        wall = statistics.median(w for w, _ in runs) * 1000
        cpu = statistics.median(c for _, c in runs) * 1000
        print(f"  {way:>5}: inspect wall {wall:7.1f} ms, relay-process CPU {cpu:6.1f} ms")
    for name, size in job_sizes.items():
        print(f"  job {name}: {size:,} octets pickled")


if __name__ == "__main__":
    asyncio.run(main())
