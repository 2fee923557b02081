"""The bench's output: the table with ratios to Postfix, the target checks, the plot, and the
generated section of ``docs/benchmarks.md`` (between the ``bench:results`` markers; the
hand-written sections around it are kept)."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from scenarios import Row

START, END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"
MB_LIMIT = 1024


def _find(rows: Sequence[Row], scenario: str, target: str) -> Row | None:
    return next((r for r in rows if r.scenario == scenario and r.target == target), None)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b and not math.isnan(a) and not math.isnan(b) else "–"


def _num(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:g}"


BASELINE = {"c: 25 MB + small mail": "a: 1 conn"}
"""Scenarios whose added latency is measured against another scenario's direct path: small
mail during the 25 MB message against small mail on the idle wire (the direct run of (c)
sends too few small messages while its big one passes to be a baseline)."""


def _direct(rows: Sequence[Row], scenario: str) -> Row | None:
    return _find(rows, BASELINE.get(scenario, scenario), "direct")


def table(rows: Sequence[Row]) -> str:
    """Markdown table: every row, with added latency over the direct path and × Postfix."""
    head = (
        "| scenario | target | sent / 250 / arrived | msg/s | × Postfix | p50 ms | p99 ms "
        "| added p50 | added p99 | CPU ms/msg | CPU × Postfix | peak PSS MB | note |\n"
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
    )
    lines = []
    for r in rows:
        direct = _direct(rows, r.scenario)
        postfix = _find(rows, r.scenario, "postfix")
        add50 = r.p50_ms - direct.p50_ms if direct and r.target != "direct" else math.nan
        add99 = r.p99_ms - direct.p99_ms if direct and r.target != "direct" else math.nan
        vs = postfix if postfix and r.target == "sendguard" else None
        lines.append(
            f"| {r.scenario} | {r.target} | {r.sent} / {r.ok} / {r.arrived} | {r.rate:g} "
            f"| {_ratio(r.rate, vs.rate) if vs else ''} | {_num(r.p50_ms)} | {_num(r.p99_ms)} "
            f"| {_num(round(add50, 1))} | {_num(round(add99, 1))} "
            f"| {r.cpu_per_msg_ms if r.target != 'direct' else ''} "
            f"| {_ratio(r.cpu_per_msg_ms, vs.cpu_per_msg_ms) if vs else ''} "
            f"| {r.peak_rss_mb if r.target != 'direct' else ''} | {r.note} |"
        )
    return head + "\n".join(lines) + "\n"


def targets(rows: Sequence[Row], big_mem: str) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for each of the issue's targets."""
    out: list[tuple[str, str, bool]] = []

    def ratio_check(name: str, scenario: str, want: float) -> None:
        sg, pf = _find(rows, scenario, "sendguard"), _find(rows, scenario, "postfix")
        if sg and pf and pf.rate:
            value = sg.rate / pf.rate
            out.append((name, f"{sg.rate:g} vs {pf.rate:g} msg/s = {value:.2f}×", value >= want))

    def added_check(name: str, scenario: str, limit: float) -> None:
        sg, direct = _find(rows, scenario, "sendguard"), _direct(rows, scenario)
        if sg and direct:
            added = sg.p99_ms - direct.p99_ms
            out.append(
                (name, f"{added:.1f} ms (p99 {sg.p99_ms:g} vs {direct.p99_ms:g})", added <= limit)
            )

    ratio_check("(a) ≥ 1.5× Postfix, smtp-source 20 sessions", "a: smtp-source 20 sessions", 1.5)
    ratio_check("(a) ≥ 1.5× Postfix, 20 connections (own generator)", "a: 20 conn", 1.5)
    ratio_check("(b) ≥ 1.0× Postfix, office mix, 20 connections", "b: 20 conn", 1.0)
    added_check("(a) added p99 ≤ 20 ms at 1 connection", "a: 1 conn", 20)
    added_check(
        "(c) small mail added p99 ≤ 100 ms during the 25 MB message", "c: 25 MB + small mail", 100
    )
    sg = _find(rows, big_mem, "sendguard")
    if sg:
        ok = sg.peak_rss_mb <= MB_LIMIT and sg.ok == sg.sent
        out.append(
            (
                f"(c) peak memory (PSS) ≤ 1 GB, {big_mem}",
                f"{sg.peak_rss_mb:g} MB; {sg.ok}/{sg.sent} answered 250 ({sg.note})",
                ok,
            )
        )
    return out


def plot(rows: Sequence[Row], path: Path) -> None:
    """Throughput and p99 latency per scenario, one bar per target (log scales)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(dict.fromkeys(r.scenario for r in rows))
    names = ("direct", "postfix", "sendguard")
    colours = {"direct": "#999999", "postfix": "#3b75af", "sendguard": "#e07b39"}
    fig, axes = plt.subplots(2, 1, figsize=(11, 8), constrained_layout=True)
    width = 0.27
    for panel, (attr, label) in zip(
        axes,
        (("rate", "messages/s (end to end)"), ("p99_ms", "p99 latency, ms (until delivered)")),
        strict=True,
    ):
        for i, name in enumerate(names):
            values = []
            for s in scenarios:
                row = _find(rows, s, name)
                value = getattr(row, attr) if row else math.nan
                values.append(value if value and not math.isnan(value) else math.nan)
            xs = [x + (i - 1) * width for x in range(len(scenarios))]
            panel.bar(xs, values, width, label=name, color=colours[name])
        panel.set_yscale("log")
        panel.set_ylabel(label)
        panel.set_xticks(range(len(scenarios)), scenarios, rotation=15, fontsize=8)
        panel.grid(axis="y", alpha=0.3)
    axes[0].legend()
    axes[0].set_title("sendguard vs Postfix vs the wire (smtp-sink), same machine, same run")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _machine() -> str:
    cpu = "?"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    postfix = subprocess.run(
        ["/usr/sbin/postconf", "-h", "mail_version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return (
        f"{os.cpu_count()} × {cpu}, Linux {platform.release()}, Python "
        f"{platform.python_version()}, Postfix {postfix}, commit {commit} (+ working tree)"
    )


def write_report(
    rows: Sequence[Row],
    docs: Path,
    *,
    quick: bool,
    workers: int,
    elapsed: float,
    load: Sequence[float],
    write: bool,
    settings: Sequence[str] = (),
) -> str:
    """The generated section; written into docs/benchmarks.md (+ PNG) unless `write` is off."""
    big_mem = next((r.scenario for r in rows if "at once" in r.scenario), "")
    checks = targets(rows, big_mem)
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
        f"({'--quick' if quick else 'full'}, {elapsed:.0f} s) on {_machine()}; "
        f"sendguard workers: {workers or os.cpu_count()} (one per core). Load average "
        f"{load[0]:.1f} before and {load[1]:.1f} after the run (other jobs share the machine)."
        + (f" Extra settings: {', '.join(settings)}." if settings else ""),
        "",
        table(rows),
        "| target | measured | met |",
        "|---|---|---|",
        *(f"| {name} | {value} | {'yes' if met else '**no**'} |" for name, value, met in checks),
        "",
        "![throughput and p99 latency](benchmarks.png)",
    ]
    text = "\n".join(lines) + "\n"
    if write:
        plot(rows, docs / "benchmarks.png")
        path = docs / "benchmarks.md"
        old = path.read_text() if path.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
        before, _, rest = old.partition(START)
        _, _, after = rest.partition(END)
        path.write_text(f"{before}{START}\n{text}{END}{after}")
    return text
