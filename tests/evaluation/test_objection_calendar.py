"""Art. 39 deadlines in Chinese working days across the 2025 and 2026 Spring Festival and National
Day arrangements (the days themselves: tests/common/test_workdays.py), and where an objection
stands on a date."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from scoring.common import workdays
from scoring.evaluation.objections import objection_calendar

D = dt.date.fromisoformat


@pytest.mark.parametrize(
    "received,n,due",
    [
        (
            "2025-01-27",
            1,
            "2025-02-05",
        ),  # mark within 1 working day across the 2025 Spring Festival
        ("2025-01-24", 1, "2025-01-26"),  # Friday -> the adjusted working Sunday
        ("2026-02-12", 3, "2026-02-24"),  # decide within 3: Fri 13, Sat 14 (working), Tue 24
        ("2026-02-27", 1, "2026-02-28"),  # Friday -> adjusted working Saturday
        ("2025-09-26", 3, "2025-09-30"),  # Fri 26 -> Sun 28 (working), Mon 29, Tue 30
        ("2025-09-26", 4, "2025-10-09"),  # ... then 10-01..10-08 off: Thu 10-09
        ("2026-09-29", 7, "2026-10-14"),  # assisted: 30, 10-08, 09, 10 (Sat, working), 12, 13, 14
    ],
)
def test_art39_deadlines_span_holidays(received, n, due):
    assert workdays.add_working_days(D(received), n) == D(due)


def _events(rows):
    df = pd.DataFrame(rows, columns=["record_key", "op", "effective_date", "result"])
    df["effective_date"] = pd.to_datetime(df["effective_date"])
    df["provider"] = "samr"
    return df


def test_objection_states_over_time():
    ev = _events(
        [
            ("k1", "objection_filed", "2026-02-12", None),
            ("k1", "objection", "2026-02-13", None),
            ("k2", "objection_filed", "2026-06-01", None),
            ("k2", "objection_closed", "2026-06-04", "维持"),
            ("k3", "objection", "2026-06-01", None),
            ("k3", "objection_closed", "2026-06-03", "采纳"),
            ("k4", "objection_filed", "2026-06-01", None),
            ("k4", "objection_closed", "2026-06-02", "部分采纳"),
        ]
    )
    at = lambda day: objection_calendar(ev, day).set_index("record_key")  # noqa: E731
    s = at("2026-02-24")
    assert s.loc["k1", "state"] == "pending" and s.loc["k1", "decision_due"] == pd.Timestamp(
        "2026-02-24"
    )
    assert s.loc["k1", "mark_due"] == pd.Timestamp("2026-02-13")
    assert at("2026-02-25").loc["k1", "state"] == "overdue"
    s = at("2026-06-03")
    assert s.loc["k2", "state"] == "pending" and s.loc["k3", "state"] == "upheld"
    s = at("2026-06-04")
    assert s.loc["k2", "state"] == "rejected" and s.loc["k4", "state"] == "partly"
    assert "k2" not in at("2026-05-31").index


def test_a_new_objection_after_a_decision_opens_a_new_cycle():
    ev = _events(
        [
            ("k", "objection_filed", "2026-06-01", None),
            ("k", "objection_closed", "2026-06-02", "维持"),
            ("k", "objection_filed", "2026-07-01", None),
        ]
    )
    s = objection_calendar(ev, "2026-07-02").set_index("record_key")
    assert s.loc["k", "state"] == "pending" and s.loc["k", "received"] == pd.Timestamp("2026-07-01")


def test_court_listing_objections_are_referred_and_severe_list_ones_get_three_days():
    """Art. 28 ¶3: the court decides objections to its listing (referred, no platform deadline,
    never withdrawn by a platform decision); Art. 35: three working days for a severe listing,
    assistance or not; Art. 39: seven when assisted, plus recorded testing/expert-review days."""
    ev = _events(
        [
            ("court", "objection_filed", "2026-06-01", None),
            ("court2", "objection_filed", "2026-06-01", None),
            ("court2", "objection_closed", "2026-06-03", "采纳"),
            ("list", "objection_filed", "2026-06-01", None),
            ("plain", "objection_filed", "2026-06-01", None),
        ]
    )
    ev["assisted"] = True
    ev["excluded_days"] = [0, 0, 0, 0, 2]
    s = objection_calendar(
        ev, "2026-06-30", severe_keys={"court", "court2", "list"}, court_keys={"court", "court2"}
    ).set_index("record_key")
    assert s.loc["court", "state"] == "overdue" and bool(s.loc["court", "court_listing"])
    assert s.loc["court", "decision_due"] == pd.Timestamp("2026-06-04")
    assert (
        objection_calendar(ev, "2026-06-02", court_keys={"court"})
        .set_index("record_key")
        .loc["court", "state"]
        == "referred"
    )
    assert s.loc["court2", "state"] == "referred"  # the platform's "upheld" does not lift it
    assert s.loc["list", "decision_due"] == pd.Timestamp("2026-06-04")  # 3, not 7
    assert s.loc["list", "state"] == "overdue"
    # assisted: 7 working days (06-02..06-10), plus 2 excluded days: 06-12
    assert s.loc["plain", "decision_due"] == pd.Timestamp("2026-06-12")
    assert s.loc["plain", "mark_due"] == pd.Timestamp("2026-06-02")
    assert bool(s.loc["plain", "mark_late"])  # never marked, the day has passed


def test_a_deadline_in_a_year_without_a_calendar_is_flagged_never_guessed():
    """2027: no State Council notice is in config/calendar/ nor in the pinned package. An
    objection filed 2027-02-03 (in what will be the Spring Festival week) gets no due date and
    calendar_unknown, and is never called overdue."""
    ev = _events([("k", "objection_filed", "2027-02-03", None)])
    s = objection_calendar(ev, "2027-03-01").set_index("record_key")
    assert bool(s.loc["k", "calendar_unknown"]) and pd.isna(s.loc["k", "decision_due"])
    assert s.loc["k", "state"] == "pending"
    with pytest.raises(workdays.CalendarUnknown, match="config/calendar/2027.yaml"):
        workdays.add_working_days(D("2027-02-03"), 3, strict=True)
