"""Japanese national holidays (国民の祝日), computed, for the hold-expiry business calendar.

Used by `queue.calendar` when ``queue.japanese_holidays`` is on. Rules of the 祝日法 as
amended in 2018 (天皇誕生日 on 23 February, スポーツの日), valid from 2022: the one-off
moves of the 2020 and 2021 Olympic years are not modelled. Equinox days use the
astronomical approximation published for 1980–2099. Company days off (年末年始, 夏季休暇)
are not national holidays: list them in ``queue.holidays``.
"""

from __future__ import annotations

import datetime as dt
from functools import cache

_FIXED = ((1, 1), (2, 11), (2, 23), (4, 29), (5, 3), (5, 4), (5, 5), (8, 11), (11, 3), (11, 23))
# (month, which Monday): 成人の日, 海の日, 敬老の日, スポーツの日 (Happy Monday system)
_MONDAYS = ((1, 2), (7, 3), (9, 3), (10, 2))


def _nth_monday(year: int, month: int, nth: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(7 - first.weekday()) % 7 + 7 * (nth - 1))


def _equinoxes(year: int) -> tuple[dt.date, dt.date]:
    """春分の日 and 秋分の日 by the standard approximation (1980–2099)."""
    shift = 0.242194 * (year - 1980) - (year - 1980) // 4
    return dt.date(year, 3, int(20.8431 + shift)), dt.date(year, 9, int(23.2488 + shift))


@cache
def japanese_holidays(year: int) -> frozenset[dt.date]:
    """Every national holiday of `year`, with 振替休日 and 国民の休日."""
    days = {dt.date(year, m, d) for m, d in _FIXED}
    days |= {_nth_monday(year, m, n) for m, n in _MONDAYS}
    days |= set(_equinoxes(year))
    one = dt.timedelta(days=1)
    # 国民の休日: a day whose day before and day after are both 祝日 is a holiday too.
    citizens = {d + one for d in days if d + one not in days and d + 2 * one in days}
    rest = days | citizens
    # 振替休日: a 祝日 on a Sunday moves to the next day that is not already a holiday.
    for day in sorted(days):
        if day.weekday() == 6:
            substitute = day + one
            while substitute in rest:
                substitute += one
            rest.add(substitute)
    return frozenset(rest)


def is_japanese_holiday(day: dt.date) -> bool:
    """True on a national holiday of Japan."""
    return day in japanese_holidays(day.year)
