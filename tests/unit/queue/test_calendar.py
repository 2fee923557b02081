"""Business time for hold expiry: weekends, Japanese holidays, company days off, office hours."""

from __future__ import annotations

import datetime as dt

import pytest

from sendguard.queue.calendar import BusinessCalendar
from sendguard.queue.jpholidays import japanese_holidays
from sendguard.queue.settings import QueueSettings

JST = dt.timezone(dt.timedelta(hours=9))


def _cal(**settings: object) -> BusinessCalendar:
    return BusinessCalendar.from_settings(QueueSettings.model_validate(settings))


def test_japanese_holidays_2026_match_the_cabinet_office_list() -> None:
    """2026: 18 days, with 振替休日 on 6 May and 国民の休日 on 22 September (Silver Week)."""
    expected = [
        "01-01", "01-12", "02-11", "02-23", "03-20", "04-29", "05-03", "05-04", "05-05",
        "05-06", "07-20", "08-11", "09-21", "09-22", "09-23", "10-12", "11-03", "11-23",
    ]  # fmt: skip
    assert sorted(d.strftime("%m-%d") for d in japanese_holidays(2026)) == expected


@pytest.mark.parametrize(
    ("year", "substitutes"),
    [(2025, ["02-24", "05-06", "11-24"]), (2027, ["03-22"])],
)
def test_sunday_holidays_move_to_monday(year: int, substitutes: list[str]) -> None:
    """A holiday on a Sunday gives the next free weekday off (振替休日)."""
    days = {d.strftime("%m-%d") for d in japanese_holidays(year)}
    assert set(substitutes) <= days


def test_friday_evening_hold_skips_weekend_and_holiday() -> None:
    """24 business hours from Friday 20 Nov 2026 18:00 JST end Tuesday 18:00 (Monday is 祝日)."""
    start = dt.datetime(2026, 11, 20, 18, 0, tzinfo=JST)
    assert _cal().add_business_hours(start, 24) == dt.datetime(2026, 11, 24, 18, 0, tzinfo=JST)
    plain = _cal(japanese_holidays=False)
    assert plain.add_business_hours(start, 24) == dt.datetime(2026, 11, 23, 18, 0, tzinfo=JST)


def test_company_days_off_are_skipped() -> None:
    """Listed holidays (年末年始) do not count: 24 h from 30 Dec ends 5 Jan 2027."""
    cal = _cal(holidays=["2026-12-31", "2027-01-02", "2027-01-03"])
    start = dt.datetime(2026, 12, 30, 10, 0, tzinfo=JST)
    # 31 Dec listed, 1 Jan 祝日, 2–3 Jan weekend and listed, 4 Jan Monday counts.
    assert cal.add_business_hours(start, 24) == dt.datetime(2027, 1, 4, 10, 0, tzinfo=JST)


def test_office_hours_count_only_inside_the_window() -> None:
    """With 9–18 office hours, 9 business hours from Friday 17:00 end Monday 17:00."""
    cal = _cal(business_hours_start=9, business_hours_end=18, japanese_holidays=False)
    start = dt.datetime(2026, 11, 20, 17, 0, tzinfo=JST)
    assert cal.add_business_hours(start, 9) == dt.datetime(2026, 11, 23, 17, 0, tzinfo=JST)
    before_opening = dt.datetime(2026, 11, 24, 6, 0, tzinfo=JST)
    assert cal.add_business_hours(before_opening, 1) == dt.datetime(2026, 11, 24, 10, 0, tzinfo=JST)


def test_calendar_settings_are_validated() -> None:
    """An empty window, a week of weekends, or an unknown zone is refused with the reason."""
    with pytest.raises(ValueError, match="business_hours_start must be before"):
        QueueSettings(business_hours_start=18, business_hours_end=9)
    with pytest.raises(ValueError, match="cannot cover every day"):
        QueueSettings(weekend=(0, 1, 2, 3, 4, 5, 6))
    with pytest.raises(ValueError, match="unknown time zone"):
        QueueSettings(timezone="Asia/Edo")
    with pytest.raises(ValueError, match="32 bytes"):
        QueueSettings(encryption_key="c2hvcnQ=")


@pytest.mark.parametrize(
    ("day", "holiday"),
    [
        ("2019-04-30", True),  # 国民の休日 between 昭和の日 and the enthronement day
        ("2019-05-01", True),  # 天皇の即位の日 (a law of its own, that year only)
        ("2019-05-02", True),  # 国民の休日
        ("2019-10-22", True),  # 即位礼正殿の儀
        ("2020-07-24", True),  # スポーツの日 moved to the Olympic opening
        ("2020-10-12", False),  # ... and so not in October that year
        ("2021-07-22", True),  # 海の日 moved
        ("2021-08-09", True),  # 山の日 moved to 8 August, a Sunday: 振替休日
        ("2021-10-11", False),
    ],
)
def test_one_off_holidays_come_from_their_own_laws(day: str, holiday: bool) -> None:
    """Days no yearly rule gives: the 2019 enthronement and the Olympic moves of 2020/2021."""
    date = dt.date.fromisoformat(day)
    assert (date in japanese_holidays(date.year)) is holiday
    assert _cal().is_business_day(date) is (not holiday and date.weekday() < 5)


def test_a_hold_before_golden_week_2019_waits_for_its_ten_days_off() -> None:
    """24 business hours from Friday 26 April 2019 end on Tuesday 7 May: 27 April to 6 May
    were all days off (weekend, 昭和の日, 国民の休日, 即位の日, 国民の休日, 憲法記念日 ...)."""
    start = dt.datetime(2019, 4, 26, 10, 0, tzinfo=JST)
    assert _cal().add_business_hours(start, 24) == dt.datetime(2019, 5, 7, 10, 0, tzinfo=JST)
