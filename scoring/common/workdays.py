"""Chinese working days: weekends and public holidays off, plus the adjusted working weekends the
State Council announces each year (国务院办公厅关于YYYY年部分节假日安排的通知).

Where a year's arrangement comes from, first match wins:
1. ``config/calendar/YYYY.yaml`` -- the notice as data, with its source and date, so an operator can
   add a year the day the notice is published without waiting for a package release;
2. the pinned ``chinesecalendar`` package's table.

Deadlines in the Regulation (objections: mark within 1 working day, decide within 3 or 7; revocation
within 1) are counted with ``strict=True``: a day in a year neither source covers raises
``CalendarUnknown`` so the deadline is flagged "calendar unknown", never guessed. The feed-freshness
gate keeps its Monday-Friday fallback and says so (``covered``).
"""

from __future__ import annotations

import datetime as dt
import os
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import chinese_calendar
import yaml

CALENDAR_VERSION = metadata.version("chinesecalendar")
_FIRST_YEAR, _LAST_YEAR = min(chinese_calendar.holidays).year, max(chinese_calendar.holidays).year
CALENDAR_DIR = Path(__file__).resolve().parents[2] / "config" / "calendar"


class CalendarUnknown(ValueError):
    """A working-day count needs a year whose holiday arrangement no source has."""

    def __init__(self, year: int):
        super().__init__(
            f"no holiday arrangement for {year}: add config/calendar/{year}.yaml from the State "
            f"Council's notice (国务院办公厅关于{year}年部分节假日安排的通知)"
        )
        self.year = year


_CALENDAR_DIR_TEXT = str(CALENDAR_DIR)


def _days(spec) -> set[dt.date]:
    """Dates from a list of 'YYYY-MM-DD' or 'YYYY-MM-DD..YYYY-MM-DD' (inclusive) entries."""
    out: set[dt.date] = set()
    for item in spec or []:
        a, _, b = str(item).partition("..")
        d, end = dt.date.fromisoformat(a), dt.date.fromisoformat(b or a)
        while d <= end:
            out.add(d)
            d += dt.timedelta(days=1)
    return out


@lru_cache(maxsize=64)
def _config_year(folder: str, year: int) -> dict | None:
    path = Path(folder) / f"{year}.yaml"
    if not path.is_file():
        return None
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if int(doc.get("year", -1)) != year or not doc.get("source"):
        raise ValueError(f"{path}: needs year: {year} and the notice it copies as source")
    return {
        "source": doc["source"],
        "holidays": frozenset(_days(doc.get("holidays"))),
        "workdays": frozenset(_days(doc.get("workdays"))),
    }


def config_year(year: int) -> dict | None:
    """The notice for ``year`` from config/calendar/, or None."""
    # Asked once per day counted: the folder's name, not a Path, is the cache key.
    return _config_year(os.environ.get("CREDIT_CALENDAR_DIR") or _CALENDAR_DIR_TEXT, year)


def source_of(year: int) -> str | None:
    """Where the year's arrangement comes from, or None when no source has it."""
    doc = config_year(year)
    if doc is not None:
        return f"config/calendar/{year}.yaml: {doc['source']}"
    if _FIRST_YEAR <= year <= _LAST_YEAR:
        return f"chinesecalendar {CALENDAR_VERSION}"
    return None


def covered(day: dt.date) -> bool:
    """Whether a source has the State Council's arrangement for this day's year."""
    return source_of(day.year) is not None


def is_working_day(day: dt.date, strict: bool = False) -> bool:
    """Working day under the arrangement; outside every known year Monday-Friday, or
    CalendarUnknown when ``strict``."""
    doc = config_year(day.year)
    if doc is not None:
        if day in doc["workdays"]:
            return True
        return day.weekday() < 5 and day not in doc["holidays"]
    if _FIRST_YEAR <= day.year <= _LAST_YEAR:
        return _package_working(day)
    if strict:
        raise CalendarUnknown(day.year)
    return day.weekday() < 5


@lru_cache(maxsize=8192)
def _package_working(day: dt.date) -> bool:
    return bool(chinese_calendar.is_workday(day))


def add_working_days(day: dt.date, n: int, strict: bool = False) -> dt.date:
    """The n-th working day after `day` (n ≥ 0; n = 0 gives `day` itself)."""
    if n < 0:
        raise ValueError(f"n must be ≥ 0, got {n}")
    d = day
    while n:
        d += dt.timedelta(days=1)
        n -= is_working_day(d, strict)
    return d


def working_days_between(start: dt.date, end: dt.date) -> int:
    """Working days in the half-open interval (start, end]; negative when end precedes start."""
    if end < start:
        return -working_days_between(end, start)
    return sum(
        is_working_day(start + dt.timedelta(days=i)) for i in range(1, (end - start).days + 1)
    )
