"""Cost of a correspondent-history look-up at a realistic size (not collected by pytest).

    python tests/bench/bench_history.py [--rows 1000000] [--lookups 2000]

Fills a fresh SQLite store (the relay's schema and migrations) with `rows` history rows —
2,000 senders × 500 correspondents over 20,000 domains — then times
`HistoryStore.snapshot_sync` for messages of 1 and 5 external recipients, half of them new
to the sender (the expensive case: same-name, same-local-part and neighbour queries run).
Target: ≤ 1 ms per recipient. Also timed: recording (the background writer) per message.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sendguard.correspondence import Delivery, Recipient
from sendguard.history.store import HistoryStore

SENDERS = 2000
DOMAINS = 20000


def _address(i: int) -> tuple[str, str]:
    domain = f"company{i % DOMAINS}.co.jp"
    return f"person{i}@{domain}", domain


async def fill(store: HistoryStore, rows: int) -> None:
    """Bulk rows straight into the tables (recording them one by one would take an hour)."""
    per_sender = max(1, rows // SENDERS)
    now = dt.datetime.now(dt.UTC).isoformat()
    conn = store._conn
    conn.execute("BEGIN")
    rng = random.Random(1)
    batch = []
    for s in range(SENDERS):
        sender = f"user{s}@example-corp.co.jp"
        for _ in range(per_sender):
            address, domain = _address(rng.randrange(rows))
            local = address.partition("@")[0]
            batch.append(
                (sender, address, domain, local, f"name{local}", now, now, rng.randint(1, 30))
            )
        if len(batch) > 50000:
            conn.executemany(
                "INSERT OR IGNORE INTO history_recipient VALUES (?, ?, ?, ?, ?, ?, ?, ?)", batch
            )
            batch.clear()
    conn.executemany(
        "INSERT OR IGNORE INTO history_recipient VALUES (?, ?, ?, ?, ?, ?, ?, ?)", batch
    )
    conn.executemany(
        "INSERT INTO history_domain VALUES (?, ?, ?, ?)",
        [(f"company{d}.co.jp", now, now, 50) for d in range(DOMAINS)],
    )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")


def time_lookups(store: HistoryStore, lookups: int, width: int) -> list[float]:
    """Milliseconds per recipient for `lookups` snapshots of `width` recipients each."""
    rng = random.Random(2)
    known = store._rows("SELECT sender, address, domain FROM history_recipient LIMIT 5000")
    out = []
    for _ in range(lookups):
        sender, address, domain = known[rng.randrange(len(known))]
        recipients = [Recipient(str(address), str(domain))]
        for j in range(width - 1):
            new, new_domain = _address(rng.randrange(10**7))
            recipients.append(Recipient(f"x{j}{new}", new_domain, "田中太郎"))
        started = time.perf_counter()
        store.snapshot_sync(str(sender), recipients, ["a" * 32])
        out.append((time.perf_counter() - started) * 1000 / width)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = await HistoryStore.open(f"sqlite:///{tmp}/bench.db")
        started = time.perf_counter()
        await fill(store, args.rows)
        rows = store._rows("SELECT COUNT(*) FROM history_recipient")[0][0]
        print(f"filled {rows:,} history rows in {time.perf_counter() - started:.0f} s")
        for width in (1, 5):
            per = time_lookups(store, args.lookups, width)
            p50 = statistics.median(per)
            p99 = sorted(per)[int(len(per) * 0.99)]
            print(f"snapshot, {width} recipient(s): {p50:.3f} ms/recipient median, {p99:.3f} p99")
        deliveries = [
            Delivery(
                key=f"bench{i}",
                sender=f"user{i % SENDERS}@example-corp.co.jp",
                at=dt.datetime.now(dt.UTC),
                recipients=(Recipient(*_address(i)),),
                threads=(f"t{i}",),
            )
            for i in range(2000)
        ]
        started = time.perf_counter()
        for i in range(0, len(deliveries), 200):
            await store.record(deliveries[i : i + 200])
        per_msg = (time.perf_counter() - started) * 1000 / len(deliveries)
        print(f"record (batches of 200): {per_msg:.3f} ms/message")
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
