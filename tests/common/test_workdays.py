"""Chinese working days against the State Council's published arrangements (国办发明电〔2024〕12号 for
2025, 国办发明电〔2025〕7号 for 2026): holidays off, adjusted weekends worked, year ends handled."""

import datetime as dt

import pytest

from scoring.common.workdays import add_working_days, covered, is_working_day, working_days_between

D = dt.date.fromisoformat


@pytest.mark.parametrize(
    "day, working",
    [
        ("2025-01-26", True),
        ("2025-01-28", False),
        ("2025-02-04", False),
        ("2025-02-05", True),
        ("2025-02-08", True),
        ("2025-09-28", True),
        ("2025-10-08", False),
        ("2025-10-11", True),
        ("2026-02-14", True),
        ("2026-02-15", False),
        ("2026-02-23", False),
        ("2026-02-24", True),
        ("2026-02-28", True),
        ("2026-09-20", True),
        ("2026-10-07", False),
        ("2026-10-08", True),
        ("2026-10-10", True),
        ("2026-11-28", False),
        ("2026-11-30", True),
    ],
)
def test_holidays_and_adjusted_working_weekends(day, working):
    assert is_working_day(D(day)) is working


def test_deadlines_across_spring_festival_and_national_day():
    # Objection filed the Friday before the 2026 Spring Festival: 3 working days run over the
    # adjusted Saturday 14 Feb and resume after the holiday.
    assert add_working_days(D("2026-02-13"), 1) == D("2026-02-14")
    assert add_working_days(D("2026-02-13"), 3) == D("2026-02-25")
    assert add_working_days(D("2026-09-30"), 3) == D("2026-10-10")
    assert working_days_between(D("2026-02-13"), D("2026-02-25")) == 3
    assert working_days_between(D("2026-02-25"), D("2026-02-13")) == -3
    assert add_working_days(D("2026-02-15"), 0) == D("2026-02-15")


def test_a_year_without_published_data_falls_back_to_weekdays_and_says_so():
    """Only the freshness gate uses the fallback (it reports covered()); deadlines are strict."""
    assert covered(D("2026-12-31")) and not covered(D("2027-01-04"))
    assert is_working_day(D("2027-01-04")) and not is_working_day(D("2027-01-09"))


def test_the_config_calendar_is_used_before_the_package_and_agrees_with_it(tmp_path, monkeypatch):
    """config/calendar/2026.yaml copies the State Council's 2026 notice; it must agree with the
    package day by day. A year added as data (here a made-up 2027 file in a test folder) is used
    at once, with its source."""
    import chinese_calendar

    from scoring.common import workdays as w

    d = D("2026-01-01")
    while d.year == 2026:
        assert w.is_working_day(d) is bool(chinese_calendar.is_workday(d)), d
        d += dt.timedelta(days=1)
    assert w.source_of(2026).startswith("config/calendar/2026.yaml: 国务院办公厅")
    assert w.source_of(2027) is None and not covered(D("2027-01-04"))
    (tmp_path / "2027.yaml").write_text(
        "year: 2027\nsource: test notice\nholidays: ['2027-02-05..2027-02-11']\n"
        "workdays: ['2027-02-13']\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("CREDIT_CALENDAR_DIR", str(tmp_path))
    assert w.source_of(2027) == "config/calendar/2027.yaml: test notice"
    assert not w.is_working_day(D("2027-02-08")) and w.is_working_day(D("2027-02-13"))
    assert w.add_working_days(D("2027-02-04"), 1, strict=True) == D("2027-02-12")
