"""Business time for hold expiry: a Friday-evening hold must not expire over the weekend.

The store uses this when a message is held, to set its ``expires_at``; nothing else here
touches the queue.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sendguard.queue.jpholidays import is_japanese_holiday
from sendguard.queue.settings import QueueSettings

_MAX_DAYS = 3660  # ten years: a bound, so a misconfigured calendar cannot loop for ever


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """Which days are business days and which hours of them count."""

    zone: ZoneInfo
    weekend: frozenset[int]
    holidays: frozenset[dt.date]
    start_hour: int = 0
    end_hour: int = 24
    japanese_holidays: bool = False

    @classmethod
    def from_settings(cls, settings: QueueSettings) -> BusinessCalendar:
        """The calendar configured in the queue settings."""
        return cls(
            zone=ZoneInfo(settings.timezone),
            weekend=frozenset(settings.weekend),
            holidays=frozenset(settings.holidays),
            start_hour=settings.business_hours_start,
            end_hour=settings.business_hours_end,
            japanese_holidays=settings.japanese_holidays,
        )

    def is_business_day(self, day: dt.date) -> bool:
        """Not a weekend day, not a listed holiday, not a Japanese holiday (when enabled)."""
        if day.weekday() in self.weekend or day in self.holidays:
            return False
        return not (self.japanese_holidays and is_japanese_holiday(day))

    def add_business_hours(self, start: dt.datetime, hours: float) -> dt.datetime:
        """The instant `hours` of business time after `start` (UTC, aware)."""
        remaining = dt.timedelta(hours=hours)
        cursor = start.astimezone(self.zone)
        for _ in range(_MAX_DAYS):
            day = cursor.date()
            midnight = dt.datetime.combine(day, dt.time(), tzinfo=self.zone)
            if self.is_business_day(day):
                opens = midnight + dt.timedelta(hours=self.start_hour)
                closes = midnight + dt.timedelta(hours=self.end_hour)
                begin = max(cursor, opens)
                if begin < closes:
                    available = closes - begin
                    if remaining <= available:
                        return (begin + remaining).astimezone(dt.UTC)
                    remaining -= available
            cursor = midnight + dt.timedelta(days=1)
        raise ValueError("business calendar has no business days in ten years")
