"""Chinese working days: weekends and public holidays off, plus the adjusted working weekends the
State Council announces each year (data from the pinned `chinesecalendar` package).

Deadlines in the Regulation (objections: mark within 1 working day, decide within 3 or 7; revocation
within 1) and feed freshness are counted here. A year the pinned data does not cover falls back to
Monday–Friday and `covered()` says so, so a report can flag it instead of a night failing.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from importlib import metadata

import chinese_calendar

CALENDAR_VERSION = metadata.version("chinesecalendar")
_FIRST_YEAR, _LAST_YEAR = min(chinese_calendar.holidays).year, max(chinese_calendar.holidays).year


def covered(day: dt.date) -> bool:
    """Whether the pinned calendar has the State Council's arrangement for this day's year."""
    return _FIRST_YEAR <= day.year <= _LAST_YEAR


@lru_cache(maxsize=8192)
def is_working_day(day: dt.date) -> bool:
    if covered(day):
        return bool(chinese_calendar.is_workday(day))
    return day.weekday() < 5


def add_working_days(day: dt.date, n: int) -> dt.date:
    """The n-th working day after `day` (n ≥ 0; n = 0 gives `day` itself)."""
    if n < 0:
        raise ValueError(f"n must be ≥ 0, got {n}")
    d = day
    while n:
        d += dt.timedelta(days=1)
        n -= is_working_day(d)
    return d


def working_days_between(start: dt.date, end: dt.date) -> int:
    """Working days in the half-open interval (start, end]; negative when end precedes start."""
    if end < start:
        return -working_days_between(end, start)
    return sum(
        is_working_day(start + dt.timedelta(days=i)) for i in range(1, (end - start).days + 1)
    )
