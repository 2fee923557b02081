"""The bench's scenarios, each run against one target (the sink directly, Postfix, sendguard).

A target is a port to send to plus the root pid of its process tree (None for the sink
itself). Every scenario returns one `Row`: what was sent, what arrived, throughput measured
end to end (first connect → last message written by the sink), latency per message from
connect until it was *delivered* — max(the client's final-dot reply, the sink's write time) —
so a before-queue relay (answers after the upstream) and a store-and-forward MTA (answers
at queueing, delivers later) are timed the same way — and CPU and peak RSS of the tree.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loadgen import Sent, run_load, run_while
from measure import Usage, arrivals, dump_size, usage, wait_for_sink
from tests.support.postfix import tool
from workloads import Template


@dataclass(frozen=True, slots=True)
class Target:
    """Where a scenario sends: a port, and the process tree that serves it."""

    name: str
    port: int
    root: int | None


@dataclass(frozen=True, slots=True)
class Row:
    """One scenario on one target."""

    scenario: str
    target: str
    sent: int
    ok: int
    arrived: int
    seconds: float
    rate: float
    p50_ms: float
    p99_ms: float
    cpu_per_msg_ms: float
    peak_rss_mb: float
    note: str = ""


def _wanted(sent: Sequence[Sent], templates: Sequence[Template]) -> dict[str, int]:
    """Bench id → the size its dump file has once complete, for every message answered 250."""
    size: dict[str, int] = {}
    for t in templates:  # several templates share a kind: the smallest of them is the bound
        size[t.kind] = min(size.get(t.kind, 1 << 62), dump_size(t.data))
    return {s.bench_id: size[s.kind] for s in sent if s.code == 250}


def _slug(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank) of `values`; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def _row(
    scenario: str,
    target: Target,
    sent: Sequence[Sent],
    got: dict[str, float],
    used: Usage,
    *,
    latency_of: Sequence[Sent] | None = None,
    note: str = "",
) -> Row:
    ok = [s for s in sent if s.code == 250]
    delivered = [max(s.acked, got[s.bench_id]) for s in ok if s.bench_id in got]
    start = min((s.started for s in sent), default=0.0)
    span = (max(delivered) - start) if delivered else float("nan")
    timed = [s for s in (latency_of if latency_of is not None else ok) if s.code == 250]
    lat = [(max(s.acked, got[s.bench_id]) - s.started) * 1000 for s in timed if s.bench_id in got]
    return Row(
        scenario=scenario,
        target=target.name,
        sent=len(sent),
        ok=len(ok),
        arrived=len(delivered),
        seconds=round(span, 2),
        rate=round(len(delivered) / span, 1) if delivered else 0.0,
        p50_ms=round(percentile(lat, 50), 1),
        p99_ms=round(percentile(lat, 99), 1),
        cpu_per_msg_ms=round(used.cpu / max(1, len(ok)) * 1000, 2) if target.root else 0.0,
        peak_rss_mb=round(used.peak_rss / 2**20, 1),
        note=note,
    )


def load(
    scenario: str,
    target: Target,
    sink_dir: Path,
    templates: Sequence[Template],
    *,
    count: int,
    concurrency: int,
    time_limit: float,
) -> Row:
    """`count` messages over `concurrency` connections, one connection per message."""
    with usage(target.root) as used:
        sent = asyncio.run(
            run_load(
                target.port,
                templates,
                count=count,
                concurrency=concurrency,
                time_limit=time_limit,
                prefix=_slug(f"{scenario}-{target.name}"),
            )
        )
        ok = sum(s.code == 250 for s in sent)
        wait_for_sink(sink_dir, ok, time_limit, _wanted(sent, templates))
    return _row(scenario, target, sent, arrivals(sink_dir), used)


def source(
    scenario: str,
    target: Target,
    sink_dir: Path,
    message_file: Path,
    template: Template,
    *,
    count: int,
    sessions: int,
    time_limit: float,
) -> Row:
    """Postfix's smtp-source: `count` messages of `message_file` over `sessions` sessions."""
    argv = [
        tool("smtp-source"),
        "-s",
        str(sessions),
        "-m",
        str(count),
        "-F",
        str(message_file),
        "-f",
        template.mail_from,
        "-t",
        template.rcpts[0],
        "-M",
        "bench.example",
        f"127.0.0.1:{target.port}",
    ]
    with usage(target.root) as used:
        started = time.time()
        done = subprocess.run(argv, capture_output=True, timeout=time_limit, check=False)
        wait_for_sink(sink_dir, count, time_limit)
    got = arrivals(sink_dir)
    last = max(got.values(), default=started)
    span = last - started
    note = "" if done.returncode == 0 else f"smtp-source exit {done.returncode}"
    return Row(
        scenario,
        target.name,
        count,
        count if done.returncode == 0 else 0,
        len(got),
        round(span, 2),
        round(len(got) / span, 1) if got else 0.0,
        float("nan"),
        float("nan"),
        round(used.cpu / count * 1000, 2) if target.root else 0.0,
        round(used.peak_rss / 2**20, 1),
        note,
    )


def big_with_flow(
    scenario: str,
    target: Target,
    sink_dir: Path,
    big: Template,
    small: Sequence[Template],
    *,
    big_count: int,
    concurrency: int,
    time_limit: float,
) -> Row:
    """`big_count` big messages at once while small mail flows; latency of the small mail
    that was sent while a big one was still on its way."""
    with usage(target.root) as used:
        bigs, smalls = asyncio.run(
            run_while(
                target.port,
                big,
                small,
                background_count=big_count,
                concurrency=concurrency,
                time_limit=time_limit,
                prefix=_slug(f"{scenario}-{target.name}"),
            )
        )
        sent = [*bigs, *smalls]
        ok = sum(s.code == 250 for s in sent)
        wait_for_sink(sink_dir, ok, time_limit, _wanted(sent, [big, *small]))
    got = arrivals(sink_dir)
    big_done = max((max(s.acked, got.get(s.bench_id, 0.0)) for s in bigs), default=0.0)
    during = [s for s in smalls if s.started < big_done]
    codes = sorted({s.code for s in bigs})
    note = f"{len(bigs)}×{len(big.data) >> 20} MB replies {codes}; {len(during)} small during"
    return _row(scenario, target, sent, got, used, latency_of=during, note=note)
