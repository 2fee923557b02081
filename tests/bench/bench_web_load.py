"""Does the HTTP listener (review console, /metrics, /readyz) slow the SMTP path?

    python tests/bench/bench_web_load.py [--messages 600] [--clients 4] [--rounds 3]

The listener shares each relay process's event loop (a bounded share: its handlers only read).
This starts an in-process relay (the real App, SQLite store, recording upstream) three ways —
listener off, listener on but idle, and listener on while two HTTP clients fetch the console's
sign-in page, `/metrics` and `/readyz` back to back (far more than any scraper or reviewer) —
and sends the same plain messages from `clients` concurrent SMTP clients. Prints messages/second
of each, best of `rounds`.
"""

from __future__ import annotations

import argparse
import asyncio
import smtplib
import sys
import tempfile
import threading
import time
import urllib.request
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

[[rule]]
id = "hold-lookalike"
description = "lookalikes are held"
action = "hold"
when.any = [{ detector = "lookalike-domain" }]
"""
PAGES = ("/review/login", "/metrics", "/readyz")


def _client(port: int, count: int, offset: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        for i in range(count):
            rcpt = f"person{(offset + i) % 40}@company{i % 8}.co.jp"
            data = build_message(from_=("山田", SENDER), to=[("", rcpt)], subject=f"件名 {i}")
            client.sendmail(SENDER, [rcpt], data)


def _browse(port: int, stop: threading.Event, fetched: list[int]) -> None:
    while not stop.is_set():
        for page in PAGES:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{page}", timeout=30) as reply:
                reply.read()
            fetched.append(1)


async def _rate(mode: str, messages: int, clients: int, tmp: Path) -> tuple[float, int]:
    policy = write_policy(tmp / "policies", POLICY)
    web = "" if mode == "off" else "127.0.0.1:0"
    async with (
        RecordingUpstream() as upstream,
        running_relay(
            upstream=upstream.url,
            policy_dir=policy,
            store=f"sqlite:///{tmp}/q.db",
            web_listen=web,
            web={"link_key_file": str(tmp / "link.key")},
            history={"enabled": False},
        ) as app,
    ):
        port = app.bound[0][1]
        await asyncio.to_thread(_client, port, 20, 0)  # warm-up
        stop, fetched = threading.Event(), list[int]()
        browsers = [
            threading.Thread(target=_browse, args=(app.web_bound[0][1], stop, fetched))
            for _ in range(2 if mode == "busy" else 0)
        ]
        for thread in browsers:
            thread.start()
        per = messages // clients
        started = time.perf_counter()
        try:
            with ThreadPoolExecutor(clients) as pool:
                await asyncio.gather(
                    *(asyncio.get_running_loop().run_in_executor(pool, _client, port, per, c * 7)
                      for c in range(clients))
                )  # fmt: skip
            elapsed = time.perf_counter() - started
        finally:
            stop.set()
            for thread in browsers:
                await asyncio.to_thread(thread.join)
        return per * clients / elapsed, len(fetched)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    best = {"off": 0.0, "idle": 0.0, "busy": 0.0}
    pages = 0
    for _ in range(args.rounds):
        for mode in best:
            with tempfile.TemporaryDirectory() as tmp:
                rate, fetched = await _rate(mode, args.messages, args.clients, Path(tmp))
                best[mode] = max(best[mode], rate)
                pages = max(pages, fetched)
    off = best["off"]
    for mode, rate in best.items():
        print(f"listener {mode:4}: {rate:6.0f} msg/s ({100 * (rate / off - 1):+.1f} % vs off)")
    print(f"pages fetched during the busy run: {pages}")


if __name__ == "__main__":
    asyncio.run(main())
