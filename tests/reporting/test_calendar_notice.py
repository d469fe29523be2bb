"""The night's first screen names a year no holiday calendar covers (deadlines there are flagged,
never guessed): the as-of year, the next one in December, and the years of flagged objections."""

import pandas as pd

from scoring.reporting.lifecycle import calendar_notice, missing_calendar_years


def test_missing_years_are_named(tmp_path):
    assert missing_calendar_years("2026-06-30", None) == []
    assert missing_calendar_years("2026-12-07", None) == [2027]  # deadlines run into January
    assert missing_calendar_years("2027-03-01", None) == [2027]
    obj = pd.DataFrame({"received": pd.to_datetime(["2026-12-30"]), "calendar_unknown": [True]})
    obj.to_parquet(tmp_path / "objections.parquet")
    (screen,) = calendar_notice("2026-11-02", tmp_path / "objections.parquet")
    assert "CALENDAR UNKNOWN for 2027" in screen and "config/calendar/2027.yaml" in screen
    assert "1 objection deadline(s)" in screen
    assert calendar_notice("2026-06-30", tmp_path / "none.parquet") == []
