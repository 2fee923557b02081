"""Libraries in place of hand-written code: each call sendguard makes, against the
hand-written version it replaced (kept below for this comparison only).

Run: ``.venv/bin/python tests/bench/bench_libraries.py`` (not collected by pytest). Runs of
the two versions alternate; the best run of each is reported, in ns per call: the Japanese
holiday look-up of the hold-expiry calendar (hot: a day asked before; cold: the first ask of
a day in the process), a queue id, the homoglyph skeleton of a domain, and the bounded edit
distance `lookalike-domain` computes for each candidate of its deletion index.
"""

from __future__ import annotations

import datetime as dt
import secrets
import sys
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sendguard.detect.similarity import distance, skeleton
from sendguard.queue.codec import new_queue_id
from sendguard.queue.jpholidays import is_japanese_holiday

DOMAINS = ["tanaka-shoji.co.jp", "gmаil.com", "mitsubishi-corp.jp", "ехаmple.co.jp", "yahoo.co.jp"]
PAIRS = [
    ("tanaka-shoji", "tanaka-shouji"),
    ("mitsubishi", "mitsubsihi"),
    ("example", "exmaple"),
    ("gmail", "gmial"),
    ("nttdocomo", "docomo"),
]

# ------------------------------------------------------------ the hand-written versions

_FIXED = ((1, 1), (2, 11), (2, 23), (4, 29), (5, 3), (5, 4), (5, 5), (8, 11), (11, 3), (11, 23))
_MONDAYS = ((1, 2), (7, 3), (9, 3), (10, 2))


def _nth_monday(year: int, month: int, nth: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(7 - first.weekday()) % 7 + 7 * (nth - 1))


@cache
def _old_holidays(year: int) -> frozenset[dt.date]:
    days = {dt.date(year, m, d) for m, d in _FIXED}
    days |= {_nth_monday(year, m, n) for m, n in _MONDAYS}
    shift = 0.242194 * (year - 1980) - (year - 1980) // 4
    days |= {dt.date(year, 3, int(20.8431 + shift)), dt.date(year, 9, int(23.2488 + shift))}
    one = dt.timedelta(days=1)
    rest = days | {d + one for d in days if d + one not in days and d + 2 * one in days}
    for day in sorted(days):
        if day.weekday() == 6:
            substitute = day + one
            while substitute in rest:
                substitute += one
            rest.add(substitute)
    return frozenset(rest)


def old_is_holiday(day: dt.date) -> bool:
    return day in _old_holidays(day.year)


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def old_queue_id(now: dt.datetime) -> str:
    value = (int(now.timestamp() * 1000) << 80) | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


_OLD_TABLE = str.maketrans("аеорсхуіјѕԁһӏԛԝьοαεικνρτυχ01ı", "aeopcxyijsdhlqwbOaeikvptuxoli")


def old_skeleton(text: str) -> str:
    out = text.lower().translate(_OLD_TABLE).lower()
    for many, one in (("rn", "m"), ("vv", "w"), ("cl", "d")):
        out = out.replace(many, one)
    return out


def old_distance(a: str, b: str, bound: int) -> int:
    if abs(len(a) - len(b)) > bound:
        return bound + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > bound:
            return bound + 1
        prev2, prev = prev, cur
    return prev[-1]


# ------------------------------------------------------------ measuring


def compare(
    old: Callable[[], object], new: Callable[[], object], number: int
) -> tuple[float, float]:
    """Best of 15 alternating runs of `number` calls each, in ns per call."""
    runs: tuple[list[float], list[float]] = ([], [])
    for _ in range(15):
        for fn, out in ((old, runs[0]), (new, runs[1])):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            out.append((time.perf_counter() - start) / number * 1e9)
    return min(runs[0]), min(runs[1])


def cold(fn: Callable[[dt.date], bool], first: dt.date) -> float:
    """ns per day for the first ask of each of 730 days."""
    days = [first + dt.timedelta(days=i) for i in range(730)]
    start = time.perf_counter()
    for day in days:
        fn(day)
    return (time.perf_counter() - start) / len(days) * 1e9


def main() -> None:
    day = dt.date(2026, 11, 23)
    now = dt.datetime.now(dt.UTC)
    old_is_holiday(day)
    is_japanese_holiday(day)
    rows = [
        ("holiday look-up, cold", (cold(old_is_holiday, dt.date(2031, 1, 1)),
                                   cold(is_japanese_holiday, dt.date(2031, 1, 1)))),
        ("holiday look-up, hot", compare(lambda: old_is_holiday(day),
                                         lambda: is_japanese_holiday(day), 100_000)),
        ("queue id", compare(lambda: old_queue_id(now), lambda: new_queue_id(now), 10_000)),
        ("skeleton of a domain", tuple(t / len(DOMAINS) for t in compare(
            lambda: [old_skeleton(d) for d in DOMAINS],
            lambda: [skeleton(d) for d in DOMAINS], 5_000))),
        ("edit distance, bound 2", tuple(t / len(PAIRS) for t in compare(
            lambda: [old_distance(a, b, 2) for a, b in PAIRS],
            lambda: [distance(a, b, 2) for a, b in PAIRS], 2_000))),
    ]  # fmt: skip
    print(f"{'ns per call':24} {'hand-written':>13} {'library':>10}")
    for name, (old, new) in rows:
        print(f"{name:24} {old:13.0f} {new:10.0f}")


if __name__ == "__main__":
    main()
