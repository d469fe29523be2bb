"""Hand policy vs learned candidate in a known world: the report answers the regulator's
question side by side, with the oracle as the ceiling, and is reproducible."""

from __future__ import annotations

import pytest

from scoring.world.experiment import run_experiment
from scoring.world.province import build_world


@pytest.fixture(scope="module")
def report():
    return run_experiment(build_world(2000, 11), resamples=60)


def test_report_side_by_side_with_the_oracle_as_ceiling(report):
    c = report["comparison"]["policies"]
    assert set(c) == {"hand", "candidate", "candidate_items_only", "oracle"}
    for k in ("hand", "candidate", "oracle"):
        assert 0 < c[k]["auc"] < 1 and set(c[k]["hit_rate_by_tier"]) == set("ABCD")
        assert c[k]["problems_per_100"] > 0 and c[k]["problems_per_100_truth"] > 0
    # The truth's own risk ranks inspections better than any policy over records.
    assert c["oracle"]["auc"] > max(c["hand"]["auc"], c["candidate"]["auc"])
    for k in ("candidate", "oracle"):
        v = c[k]["vs_hand"]
        for metric in ("auc", "problems_per_100", "problems_per_100_truth"):
            lo, hi = v[metric]["ci95"]
            assert lo <= v[metric]["difference"] <= hi
    # Same capacity: the candidate's cut scores keep the hand policy's tier shares, so the ratios
    # give (nearly) the same number of inspections.
    assert c["candidate"]["inspections_share"] == pytest.approx(
        c["hand"]["inspections_share"], rel=0.15
    )
    ins = report["inspections"]
    assert ins["train"] + ins["test"] == ins["random"] and ins["complaint_driven"] > 0
    assert set(report["psi"]) == {
        "hand_vs_candidate_test",
        "candidate_train_vs_test",
        "hand_train_vs_test",
    }
    assert report["what_changed"] and all(
        s["text"] and s["evidence"] for s in report["what_changed"]
    )
    # The candidate may read what the hand policy cannot: each signal is either given points or
    # said to be left at zero, in words with its evidence; the items-only candidate is the control.
    assert report["signals"] == [
        "ARREARS_CLUSTER_6_MONTHS",
        "LEGAL_REP_CHANGES_12_MONTHS",
        "REGISTERED_12_TO_24_MONTHS",
        "REGISTERED_24_TO_36_MONTHS",
        "REGISTERED_UNDER_12_MONTHS",
    ]
    texts = " ".join(s["text"] for s in report["what_changed"])
    assert texts.count("New, not in the hand policy") + texts.count(
        "left at 0 points"
    ) == 5 or texts.startswith("No change")
    assert "vs_hand" in c["candidate_items_only"]


def test_report_is_reproducible(report):
    again = run_experiment(build_world(2000, 11), resamples=60)
    assert again["comparison"] == report["comparison"]
    assert again["candidate"].sha256 == report["candidate"].sha256
