"""The reference draw: rounding on the whole tier, exclusions replaced, recusal, units, balance,
and a commitment that fixes everything but the later published value."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.sampling import doublerandom as dr
from scoring.sampling.commit import (
    commit_plan,
    draw_plan,
    exclusions_from_history,
    sample_population,
)
from scoring.sampling.rules import SamplingRefused

SCRIPT = Path(dr.__file__)


def _population(n=400, seed=0):
    tiers = (
        ["A"] * (n // 2)
        + ["B"] * (n // 4)
        + ["C"] * (n // 8)
        + ["D"] * (n - n // 2 - n // 4 - n // 8)
    )
    return pd.DataFrame({"uscc": [f"9123010{seed}{i:010d}X" for i in range(n)], "tier": tiers})


def _inspectors(n=6, units=3, conflicts=None):
    ids = [f"I{j:02d}" for j in range(n)]
    return pd.DataFrame(
        {
            "inspector_id": ids,
            "unit": [f"U{j % units}" for j in range(n)],
            "conflicts": [tuple((conflicts or {}).get(i, ())) for i in ids],
        }
    )


@pytest.mark.parametrize(
    "ratio,n,k",
    [
        ("0.05", 10, 1),
        ("0.05", 9, 0),
        ("0.15", 10, 2),
        ("0.285", 200, 57),
        ("1", 7, 7),
        ("0", 1000, 0),
        ("0.61", 1, 1),
        ("0.333", 3, 1),
    ],
)
def test_rounding_is_half_up_in_exact_decimals(ratio, n, k):
    assert dr.tier_count(ratio, n) == k


def test_ratio_applies_to_the_whole_tier_and_exclusions_are_replaced():
    pop = _population()
    excl = pd.DataFrame(
        {"uscc": pop["uscc"][pop["tier"] == "C"].head(20), "reason": "recently_inspected"}
    )
    ratios = {"A": "0.05", "B": "0.2", "C": "0.5", "D": "0.8"}
    committed = commit_plan(pop, ratios, agency_id="x", period="2026-07", exclusions=excl)
    drawn, record = draw_plan(committed, pop, "published-later")
    full = pop["tier"].value_counts()
    for t in "ABCD":
        assert (drawn["tier"] == t).sum() == dr.tier_count(
            ratios[t], int(full[t])
        )  # not N minus exclusions
    assert not set(drawn["uscc"]) & set(excl["uscc"])
    skipped = record["draw"]["skipped"]
    assert skipped and {s["reason"] for s in skipped} == {"recently_inspected"}
    # each skipped one is replaced by the next in the random order: the tier's full order under the
    # same seed (ratio 1, nothing excluded) without the excluded, cut at k
    whole = {**committed["ingredients"], "ratios": {**ratios, "C": "1"}, "exclusions": []}
    c_pos = [
        d["position"] for d in dr.draw(whole, record["draw"]["seed"])["drawn"] if d["tier"] == "C"
    ]
    c_uscc = pop["uscc"][pop["tier"] == "C"].sort_values().tolist()
    c_order = [c_uscc[p] for p in c_pos]
    k = dr.tier_count("0.5", int(full["C"]))
    expected = [u for u in c_order if u not in set(excl["uscc"])][:k]
    assert drawn[drawn["tier"] == "C"]["uscc"].tolist() == expected
    cut = c_order.index(expected[-1])
    assert {c_uscc[s["position"]] for s in skipped} == set(c_order[:cut]) & set(excl["uscc"])


def test_the_seed_comes_only_from_the_later_published_value():
    pop = _population()
    committed = commit_plan(pop, "A=0.05,B=0.2,C=0.5,D=0.8", agency_id="x", period="2026-07")
    assert "seed" not in json.dumps(committed["ingredients"])
    a, _ = draw_plan(committed, pop, "hash-of-night-1")
    b, _ = draw_plan(committed, pop, "hash-of-night-1")
    c, _ = draw_plan(committed, pop, "hash-of-night-2")
    assert a["uscc"].tolist() == b["uscc"].tolist() != c["uscc"].tolist()


def test_a_changed_population_or_ingredient_is_refused_at_draw():
    pop = _population()
    committed = commit_plan(pop, "A=0.05,B=0.2,C=0.5,D=0.8", agency_id="x", period="2026-07")
    with pytest.raises(SamplingRefused, match="frame hash"):
        draw_plan(committed, pop.iloc[1:], "v")
    committed["ingredients"]["ratios"]["D"] = "1"
    with pytest.raises(SamplingRefused, match="commitment hash"):
        draw_plan(committed, pop, "v")


@settings(max_examples=60, deadline=None)
@given(st.integers(3, 9), st.integers(1, 30), st.text(min_size=1, max_size=8), st.data())
def test_recused_inspectors_are_never_drawn(n_insp, n_ent, value, data):
    pop = pd.DataFrame({"uscc": [f"E{i:03d}" for i in range(n_ent)], "tier": "D"})
    ids = [f"I{j:02d}" for j in range(n_insp)]
    conflicts = {
        i: [
            (u, "kin") for u in data.draw(st.lists(st.sampled_from(list(pop["uscc"])), unique=True))
        ]
        for i in ids
    }
    reg = _inspectors(n_insp, 2, conflicts)
    committed = commit_plan(
        pop, {"A": 0, "B": 0, "C": 0, "D": 1}, agency_id="x", period="2026-07", inspectors=reg
    )
    free = {u: [i for i in ids if u not in {c for c, _ in conflicts[i]}] for u in pop["uscc"]}
    if any(len(v) < 2 for v in free.values()):
        with pytest.raises(SamplingRefused, match="after recusals"):
            draw_plan(committed, pop, value)
        return
    drawn, _ = draw_plan(committed, pop, value)
    for row in drawn.itertuples():
        assert len(set(row.inspectors)) == 2
        assert not set(row.inspectors) & {
            i for i in ids if row.uscc in {c for c, _ in conflicts[i]}
        }
        assert set(row.recused) == {i for i in ids if row.uscc in {c for c, _ in conflicts[i]}}


def test_teams_come_from_different_units_and_workloads_balance():
    pop = _population(200)
    committed = commit_plan(
        pop,
        {"A": "0.05", "B": "0.2", "C": "0.6", "D": "1"},
        agency_id="x",
        period="2026-07",
        inspectors=_inspectors(7, 3),
    )
    drawn, _ = draw_plan(committed, pop, "v")
    assert all(len(set(u)) == 2 for u in drawn["units"])
    load = pd.Series([i for team in drawn["inspectors"] for i in team]).value_counts()
    assert len(load) == 7 and load.max() - load.min() <= 1
    one_unit = commit_plan(
        pop,
        {"A": "0.05", "B": "0.2", "C": "0.6", "D": "1"},
        agency_id="x",
        period="2026-07",
        inspectors=_inspectors(4, 1),
    )
    drawn1, _ = draw_plan(
        one_unit, pop, "v"
    )  # where the register doesn't allow two units, one is fine
    assert all(len(t) == 2 for t in drawn1["inspectors"])


def test_exclusions_from_history_by_reason():
    pop = pd.DataFrame({"uscc": ["E1", "E2", "E3", "E4"], "tier": ["A", "A", "D", "D"]})
    ins = pd.DataFrame(
        {
            "uscc": ["E1", "E2", "E3", "E3", "E4"],
            "decision_date": ["2026-06-01", "2025-12-01", "2025-09-01", "2026-01-10", "2025-01-01"],
        }
    )
    got = exclusions_from_history(pop, ins, "2026-06-30", 90, {"A": 1, "D": 2}).set_index("uscc")[
        "reason"
    ]
    assert got.to_dict() == {
        "E1": "recently_inspected",
        "E2": "frequency_cap",
        "E3": "frequency_cap",
    }


def test_sample_population_one_call():
    pop = _population()
    out = sample_population(
        pop, {"A": 0.03, "B": 0.1, "C": 0.4, "D": 0.8}, "v", agency_id="x", period="2026-07"
    )
    assert list(out.columns[:4]) == ["uscc", "tier", "position", "rank"]
    assert out["commitment_sha256"].nunique() == 1 and out["seed"].nunique() == 1


def _public_doc(value="night-2-output-hash"):
    pop = _population()
    reg = _inspectors(6, 3, {"I00": [(pop["uscc"][399], "kin")]})
    committed = commit_plan(
        pop,
        "A=0.05,B=0.2,C=0.5,D=0.8",
        agency_id="x",
        period="2026-07",
        inspectors=reg,
        exclusions=pd.DataFrame({"uscc": pop["uscc"][::7], "reason": "recently_inspected"}),
    )
    _, record = draw_plan(committed, pop, value)
    return {**committed, **record}


def test_the_standalone_script_verifies_alone(tmp_path):
    """An outsider's machine: only the script and the public file, Python's standard library, -I."""
    (tmp_path / "doublerandom.py").write_bytes(SCRIPT.read_bytes())
    doc = _public_doc()
    doc["abandoned"] = [_public_doc("an-earlier-night")]
    (tmp_path / "plan.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    ok = subprocess.run(
        [sys.executable, "-I", "doublerandom.py", "plan.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and ok.stdout.strip() == "identical", ok.stdout + ok.stderr
    doc["draw"]["drawn"][0]["position"] += 1
    doc["abandoned"][0]["ingredients"]["ratios"]["A"] = "0.04"
    (tmp_path / "plan.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    bad = subprocess.run(
        [sys.executable, "-I", "doublerandom.py", "plan.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1
    assert "draw: drawn differ" in bad.stdout and "abandoned draw 1: ingredients" in bad.stdout


def test_workloads_stay_balanced_when_some_inspectors_are_recused_from_many_targets():
    pop = _population(200)
    d_and_c = pop["uscc"][pop["tier"].isin(["C", "D"])].tolist()
    d = pop["uscc"][pop["tier"] == "D"].tolist()
    reg = _inspectors(
        6, 3, {"I00": [(u, "prior_case") for u in d], "I03": [(u, "kin") for u in d_and_c[::2]]}
    )
    committed = commit_plan(
        pop,
        {"A": "0.05", "B": "0.2", "C": "0.6", "D": "1"},
        agency_id="x",
        period="2026-07",
        inspectors=reg,
    )
    drawn, _ = draw_plan(committed, pop, "v")
    load = pd.Series([i for team in drawn["inspectors"] for i in team]).value_counts()
    assert load.max() - load.min() <= 1
    assert (
        drawn["recused"].map(len).sum() > 40
    )  # 25 D targets without I00, about half of C and D without I03


def test_a_plan_made_with_another_algorithm_version_is_named_not_misjudged():
    doc = _public_doc()
    doc["ingredients"]["algorithm"] = "double-random-sha256/2"
    assert dr.verify(doc) == [
        f"draw: made with double-random-sha256/2; this script is {dr.ALGORITHM}"
    ]
