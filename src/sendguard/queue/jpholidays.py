"""Japanese national holidays (国民の祝日) for the hold-expiry business calendar, from the
`jpholiday` package.

Used by `queue.calendar` when ``queue.japanese_holidays`` is on. jpholiday follows the 祝日法
and its special laws, one-off days included (the 2019 enthronement days, the Olympic moves
of 2020 and 2021), with 振替休日 and 国民の休日; a new one-off day arrives with a package
update instead of an edit here. Company days off (年末年始, 夏季休暇) are not national
holidays: list them in ``queue.holidays``.

Chosen over `holidays` (the same days) because importing that one loads every country
(~20 MB and ~0.2 s per relay process). jpholiday works day by day through every law
(0.1–0.7 ms the first time a process asks about a day, ~0.1 s for a whole year), so days are
asked one at a time and remembered: a day asked again costs ~0.15 µs, half what the
hand-written rules cost; a hold asks about the few days until it expires
(docs/benchmarks.md, "Libraries in place of hand-written code").
"""

from __future__ import annotations

import datetime as dt
from functools import cache, lru_cache

import jpholiday


@lru_cache(maxsize=8192)  # the calendar asks about the days around now: a few years at most
def is_japanese_holiday(day: dt.date) -> bool:
    """True on a national holiday of Japan."""
    return bool(jpholiday.is_holiday(day))


@cache
def japanese_holidays(year: int) -> frozenset[dt.date]:
    """Every national holiday of `year`, with 振替休日 and 国民の休日."""
    return frozenset(day for day, _name in jpholiday.year_holidays(year))
