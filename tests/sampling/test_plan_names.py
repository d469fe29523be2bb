"""A plan's task name and period name its files: they are refused unless they are a plain
file-name part and a calendar month; ratios are given once per tier and "-0" is 0."""

from __future__ import annotations

import pytest

from scoring.sampling.rules import SamplingRefused, check_task, parse_ratios, period_days


@pytest.mark.parametrize(
    "task", ["x/../../etc", "a\nb", "..", ".", "", "a b", "a\\b", "a" * 65, "\u202etask", None]
)
def test_task_names_that_are_not_a_file_name_part_are_refused(task):
    with pytest.raises(SamplingRefused, match="bad task name"):
        check_task(task)


@pytest.mark.parametrize("task", ["routine", "专项-2026.1", "night_2", "a" * 64])
def test_plain_task_names_are_kept(task):
    assert check_task(task) == task


@pytest.mark.parametrize("period", ["2026-13", "0001-01", "2026-01\n", "9999-12", "2026-1", "x"])
def test_periods_outside_the_calendar_are_refused(period):
    with pytest.raises(SamplingRefused, match="bad period"):
        period_days(period)


def test_a_tier_given_twice_is_refused_and_minus_zero_is_zero():
    with pytest.raises(SamplingRefused, match="twice"):
        parse_ratios("A=0.9,A=0.03,B=0.1,C=0.4,D=0.8")
    assert parse_ratios("A=-0,B=0.10,C=0.4,D=-0.000") == {
        "A": "0",
        "B": "0.1",
        "C": "0.4",
        "D": "0",
    }


def test_commit_refuses_a_task_that_would_leave_the_home(tmp_path):
    from scoring.history.store import Store
    from scoring.sampling.plans import commit_plan

    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}", tmp_path)
    with pytest.raises(SamplingRefused, match="bad task name"):
        commit_plan(store, "hrb-samr", "A=0.03,B=0.1,C=0.4,D=0.8", task="x/../../../../tmp/evil")
    assert not any(p.name == "evil" for p in tmp_path.parent.rglob("evil"))
