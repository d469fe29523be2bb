"""The run report's hit rate by tier counts only randomly drawn inspections."""

import pandas as pd

from scoring.reporting.report import random_hit_rate_by_tier

RESULTS = pd.DataFrame({"uscc": ["E1", "E2", "E3", "E4"], "tier": ["A", "A", "D", "D"]})


def test_only_inspections_from_a_double_random_plan_count():
    ins = pd.DataFrame(
        {
            "uscc": ["E1", "E2", "E3", "E4", "E1", "E2"],
            "inspection_date": ["2026-07-10"] * 5 + ["2026-05-01"],
            "problem_found": [0, 1, 1, 0, 1, 1],
            "plan_id": ["P1", "P1", "P1", None, "", "P0"],
        }
    )  # complaint-driven: no plan; one too early
    hit, note = random_hit_rate_by_tier(ins, RESULTS, "2026-06-30")
    assert hit.loc["A", "mean"] == 0.5 and hit.loc["A", "size"] == 2
    assert hit.loc["D", "mean"] == 1.0 and hit.loc["D", "size"] == 1
    assert "3 randomly drawn" in note and "2 others left out" in note


def test_untagged_inspections_show_no_hit_rate():
    ins = pd.DataFrame({"uscc": ["E1"], "inspection_date": ["2026-07-10"], "problem_found": [1]})
    hit, note = random_hit_rate_by_tier(ins, RESULTS, "2026-06-30")
    assert hit is None and "not a random sample" in note
