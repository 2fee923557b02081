"""Cost of the durable verdict record per message, with and without group commit.

    python tests/bench/bench_audit.py [--messages 2000] [--postgres URL]

Each simulated transaction appends one "verdict" record and waits until it is committed
(what the relay does before its 250). `C` transactions run concurrently (C = 1 is one
client at a time). Without group commit every record is its own transaction (one fsync on
SQLite with ``synchronous=FULL``, one WAL flush on PostgreSQL); with it, records that
arrive during a commit share the next one. Prints, per store and concurrency, the records
per second and the mean / p95 wait of one append. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sendguard.queue.auditkey import AuditKey
from sendguard.queue.backends import open_store

DETAILS = {
    "action": "pass",
    "rule": None,
    "warned": [],
    "mail_from": "tanaka@example.co.jp",
    "rcpt_count": 3,
    "findings": ["external-recipients/external:3"],
    "reply_code": 250,
    "policy_version": "0" * 64,
}


async def _run(url: str, *, group_commit: bool, concurrency: int, messages: int) -> str:
    store = await open_store(url, audit_key=AuditKey(b"b" * 32), group_commit=group_commit)
    waits: list[float] = []

    async def client(count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            await store.audit("verdict", actor="relay", transaction_id="t", details=DETAILS)
            waits.append(time.perf_counter() - started)

    per_client = max(1, messages // concurrency)
    started = time.perf_counter()
    await asyncio.gather(*(client(per_client) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    check = await store.verify_audit()
    await store.close()
    assert check.ok
    waits.sort()
    p95 = waits[int(len(waits) * 0.95)]
    return (
        f"| {'on' if group_commit else 'off'} | {concurrency} | {len(waits) / elapsed:,.0f} | "
        f"{statistics.mean(waits) * 1000:.2f} | {p95 * 1000:.2f} |"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--postgres", help="postgresql:// URL of an empty schema to fill")
    args = parser.parse_args()
    stores: list[tuple[str, str | None]] = [("SQLite (synchronous=FULL)", None)]
    if args.postgres:
        stores.append(("PostgreSQL (synchronous_commit=on)", args.postgres))
    for name, pg in stores:
        print(f"\n{name}, {args.messages} records per row\n")
        print("| group commit | concurrent | records/s | mean wait ms | p95 wait ms |")
        print("|---|---|---|---|---|")
        for concurrency in (1, 8, 32, 64):
            for group in (False, True):
                with tempfile.TemporaryDirectory() as tmp:
                    url = pg or f"sqlite:///{tmp}/bench.db"
                    if pg is None:
                        row = await _run(
                            url, group_commit=group, concurrency=concurrency,
                            messages=args.messages,
                        )  # fmt: skip
                    else:
                        from tests.support.store import postgres_schema

                        with postgres_schema() as fresh:
                            row = await _run(
                                fresh, group_commit=group, concurrency=concurrency,
                                messages=args.messages,
                            )  # fmt: skip
                print(row, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
