"""Plain-mail throughput of a relay with and without the correspondent history.

    python tests/bench/bench_history_relay.py [--messages 600] [--clients 4] [--rounds 3]

Starts an in-process relay (the real App, SQLite store, recording upstream) twice — history
enabled (the sender has 40 known correspondents, every message goes to one of them: look-up,
history detectors, background recording) and disabled — and sends the same plain messages
from `clients` concurrent SMTP clients. Prints messages/second of each, best of `rounds`.
Target: the history costs ≤ 5 %.
"""

from __future__ import annotations

import argparse
import asyncio
import smtplib
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.attachments import build_message
from tests.support.relay import running_relay, write_policy
from tests.support.upstream import RecordingUpstream

SENDER = "yamada@example.co.jp"
POLICY = """[organisation]
internal_domains = ["example.co.jp"]

[detectors.unresolvable-domain]
enabled = false
"""
RCPTS = [f"person{i}@company{i % 8}.co.jp" for i in range(40)]


def _client(port: int, count: int, offset: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        for i in range(count):
            rcpt = RCPTS[(offset + i) % len(RCPTS)]
            data = build_message(from_=("山田", SENDER), to=[("", rcpt)], subject=f"件名 {i}")
            client.sendmail(SENDER, [rcpt], data)


async def _rate(enabled: bool, messages: int, clients: int, tmp: Path) -> float:
    policy = write_policy(tmp / "policies", POLICY)
    store = f"sqlite:///{tmp}/{'on' if enabled else 'off'}.db"
    async with (
        RecordingUpstream() as upstream,
        running_relay(
            upstream=upstream.url, policy_dir=policy, store=store, history={"enabled": enabled}
        ) as app,
    ):
        port = app.bound[0][1]
        await asyncio.to_thread(_client, port, len(RCPTS), 0)  # warm-up; teaches the history
        if app.history is not None:
            await app.history.flush()
        per = messages // clients
        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            await asyncio.gather(
                *(asyncio.get_running_loop().run_in_executor(pool, _client, port, per, c * 7)
                  for c in range(clients))
            )  # fmt: skip
        return per * clients / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    best = {True: 0.0, False: 0.0}
    for _ in range(args.rounds):
        for enabled in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                rate = await _rate(enabled, args.messages, args.clients, Path(tmp))
                best[enabled] = max(best[enabled], rate)
    off, on = best[False], best[True]
    print(f"history off: {off:.0f} msg/s; on: {on:.0f} msg/s; cost {100 * (1 - on / off):.1f} %")


if __name__ == "__main__":
    asyncio.run(main())
