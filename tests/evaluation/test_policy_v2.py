"""Policy v2's rules, one entity per rule, on hand-built records (as of the demo date)."""

import numpy as np
import pandas as pd
import pytest

from scoring.common.catalogue import Catalogue
from scoring.common.config import CONFIG_DIR
from scoring.evaluation.evaluate import Policy, apply_changes, score_entities

AS_OF = "2026-06-30"
V1 = Policy.load(CONFIG_DIR / "policy" / "v1.yaml")
V2 = Policy.load(CONFIG_DIR / "policy" / "v2.yaml")
CAT = Catalogue.load(CONFIG_DIR / "catalogue" / "v2.yaml")
POSITIVES = [
    ("COMMENDATION", 100),
    ("VOLUNTEER_CHARITY", 90),
    ("TAX_CREDIT_A", 71),
    ("COMMITMENT_KEPT", 40),
    ("INSPECTION_PASS", 30),
]


def _uscc(i: int) -> str:
    from scoring.common.codes import make_uscc

    return str(
        make_uscc(
            np.array(["9"]),
            np.array(["1"]),
            np.array(["230102"]),
            np.array([[2, 0, 0, 0, 0, 0, i // 10, i % 10]]),
        )[0]
    )


def score(stories: dict[str, list[tuple[str, int]]], policy=V2, as_of=AS_OF) -> pd.DataFrame:
    """stories: name -> [(item, age in days)]; every entity registered long ago. Indexed by name."""
    names = list(stories)
    codes = {n: _uscc(i + 1) for i, n in enumerate(names)}
    ent = pd.DataFrame(
        {
            "uscc": [codes[n] for n in names],
            "subject_name": names,
            "division_code": "230102",
            "industry": "F",
            "eval_class": "legal_person",
            "entity_status": "存续",
            "registered_date": pd.Timestamp("2015-01-01"),
        }
    )
    rows = [(n, item, age, k) for n in names for k, (item, age) in enumerate(stories[n])]
    dec = pd.Timestamp(as_of) - pd.to_timedelta([r[2] for r in rows], unit="D")
    rec = pd.DataFrame(
        {
            "record_key": [f"K{r[3]}-{r[1]}|{codes[r[0]]}" for r in rows],
            "uscc": [codes[r[0]] for r in rows],
            "item_code": [r[1] for r in rows],
            "subject_type": "legal",
            "decision_date": dec,
            "publicity_end_date": pd.Series(pd.NaT, index=range(len(rows)), dtype="datetime64[ns]"),
            "valid_to_date": dec + pd.Timedelta(days=1500),
        }
    )
    out = score_entities(ent, apply_changes(rec, None, as_of), CAT, policy, as_of)
    return out.assign(story=out["uscc"].map({v: k for k, v in codes.items()})).set_index("story")


def test_a_clean_entity_is_a_and_its_explanation_says_why():
    r = score({"no records": [], "only neutral records": [("LICENCE", 100), ("COMMITMENT", 50)]})
    for story in r.index:
        assert r.loc[story, "tier"] == "A", story
        assert r.loc[story, "reasons"].startswith(
            "R030 无计分的负面信用记录 / no negative credit record in force"
        )
    # Under v1 the same clean entity was B: the flaw v2 fixes.
    assert score({"no records": []}, policy=V1).loc["no records", "tier"] == "B"


def test_licences_carry_no_points():
    r = score({"clean": [], "forty licences": [("LICENCE", 10 + i) for i in range(40)]})
    assert r.loc["forty licences", "score"] == r.loc["clean", "score"]
    assert r.loc["forty licences", "tier"] == r.loc["clean", "tier"] == "A"
    v1 = score({"clean": [], "forty licences": [("LICENCE", 10 + i) for i in range(40)]}, policy=V1)
    assert v1.loc["forty licences", "score"] > v1.loc["clean", "score"]  # v1 rewarded volume


def test_commitment_kept_is_positive_breached_negative_signing_neutral():
    r = score(
        {
            "clean": [],
            "signed": [("COMMITMENT", 60)],
            "kept": [("COMMITMENT", 60), ("COMMITMENT_KEPT", 20)],
            "breached": [("COMMITMENT", 60), ("COMMITMENT_BREACH", 20)],
        }
    )
    assert r.loc["signed", "score"] == r.loc["clean", "score"]
    assert r.loc["kept", "score"] > r.loc["clean", "score"] and "R006" in r.loc["kept", "reasons"]
    assert r.loc["breached", "score"] < r.loc["clean", "score"] and r.loc["breached", "tier"] == "B"
    assert "R030" not in r.loc["breached", "reasons"]


def test_tax_credit_grade_a_is_positive_and_expires_after_a_year():
    r = score({"clean": [], "tax A": [("TAX_CREDIT_A", 71)], "old tax A": [("TAX_CREDIT_A", 440)]})
    assert (
        r.loc["tax A", "score"] > r.loc["clean", "score"]
        and "R007 纳税信用A级" in r.loc["tax A", "reasons"]
    )
    assert r.loc["old tax A", "score"] == r.loc["clean", "score"]  # 12 months' publicity are over


def test_positive_points_cannot_lift_an_active_severe_record_above_c():
    r = score(
        {
            "severe": [("PENALTY_SEVERE", 200)],
            "severe and every positive": [("PENALTY_SEVERE", 200)] + POSITIVES,
            "falsification and positives": [("FALSIFICATION", 100)] + POSITIVES,
            "positives only": POSITIVES,
        }
    )
    assert r.loc["severe", "tier"] == "C"
    capped = r.loc["severe and every positive"]
    assert capped["score"] >= V2.doc["tiers"][1]["min_score"]  # the points alone would make it B...
    assert (
        capped["tier"] == "C" and capped["override"] == "severe_record_cap"
    )  # ...the cap keeps it C
    assert r.loc["falsification and positives", "tier"] == "C"
    assert r.loc["positives only", "tier"] == "A" and r.loc["positives only", "override"] == ""


def test_a_severe_record_no_longer_in_force_no_longer_caps():
    # Severe penalties are published at most 36 months (NDRC Order 36): after that, A again.
    r = score({"old severe": [("PENALTY_SEVERE", 1200)] + POSITIVES})
    assert r.loc["old severe", "tier"] == "A" and r.loc["old severe", "override"] == ""


@pytest.mark.parametrize("listing", ["DISHONEST_DEBTOR", "SEVERE_DISHONESTY_LIST"])
def test_a_listing_stays_d_while_active_whatever_the_positives(listing):
    r = score({"listed": [(listing, 300)] + POSITIVES})
    assert (
        r.loc["listed", "tier"] == "D" and r.loc["listed", "override"] == "severe_dishonesty_list"
    )


def test_v1_output_has_no_trace_of_the_new_rules():
    """v1's published columns keep their old categories and texts (nights before v2 stay byte-identical)."""
    r = score(
        {"severe and positives": [("PENALTY_SEVERE", 200)] + POSITIVES, "none": []}, policy=V1
    )
    assert set(r["override"].astype(str)) == {""}
    assert r.loc["none", "reasons"].startswith("R000")


def test_the_migration_names_entities_moving_two_tiers_or_more():
    from scoring.evaluation.migration import compare

    base = pd.DataFrame(
        {
            "uscc": ["u1", "u2", "u3", "u4"],
            "name": ["甲", "乙", "丙", "丁"],
            "score": [600, 700, 500, 900],
            "override": "",
            "reasons": ["r1", "r2", "r3", "r4"],
        }
    )
    old = base.assign(tier=pd.Categorical(["C", "B", "D", "A"], categories=list("ABCD")))
    new = base.assign(tier=pd.Categorical(["A", "B", "B", "C"], categories=list("ABCD")))
    m = compare(old, new.iloc[::-1])  # matched by USCC, not by row order
    assert m["matrix"]["C"]["A"] == 1 and m["matrix"]["D"]["B"] == 1 and m["matrix"]["A"]["C"] == 1
    assert [x["uscc"] for x in m["movers"]] == ["u4", "u1", "u3"] and m["movers_2plus"] == 3
    assert m["up"] == 2 and m["down"] == 1 and m["same"] == 1
    assert m["new_shares"] == {"A": 0.25, "B": 0.5, "C": 0.25, "D": 0.0}
