"""Scoring in law: golden files on a small hand-built case, and properties on random ones."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring.common.catalogue import Catalogue
from scoring.evaluation.evaluate import (
    Policy,
    add_months,
    apply_changes,
    canonical_bytes,
    classify_records,
    score_entities,
)

GOLDEN = Path(__file__).parent / "golden"
# Each date under the catalogue and policy in force on it: v1 before 2026-06-01, v2 from then.
CAT, POL = Catalogue.in_force("2026-06-30"), Policy.shipped_in_force("2026-06-30")

# Five entities, each telling one story:
#   decay      two general penalties of different ages
#   boundary   a minor inspection finding decided 2025-12-01: its period follows the set in force on
#              its decision date (Order 58: up to 3 years), not Order 36 (3 months) in force later
#   repair     a severe penalty repaired on 2026-05-20
#   objection  a penalty under a pending objection (marked, still counting), and a corrected
#              tax-arrears record
#   listed     a dishonest judgment debtor with good records too
E = ["decay", "boundary", "repair", "objection", "listed"]


def _codes():
    from scoring.common.codes import make_uscc

    bodies = np.array([[1, 0, 0, 0, 0, 0, 0, i] for i in range(1, 6)])
    made = make_uscc(np.array(["9"] * 5), np.array(["1"] * 5), np.array(["230102"] * 5), bodies)
    return dict(zip(E, made))


U = _codes()


def _entities():
    return pd.DataFrame(
        {
            "uscc": list(U.values()),
            "subject_name": [f"测试{k}" for k in U],
            "division_code": "230102",
            "industry": "F",
            "eval_class": "legal_person",
            "entity_status": "存续",
            "registered_date": pd.Timestamp("2018-01-01"),
        }
    )


def _records():
    rows = [
        # key, entity, item, decision, publicity end
        ("P1", "decay", "PENALTY_GENERAL", "2026-05-30", "2027-05-30"),
        ("P2", "decay", "PENALTY_GENERAL", "2025-10-01", "2026-10-01"),
        ("I1", "boundary", "INSPECTION_FAIL", "2025-12-01", None),
        ("S1", "repair", "PENALTY_SEVERE", "2025-03-10", "2028-03-10"),
        ("L1", "repair", "LICENCE", "2024-01-01", None),
        ("O1", "objection", "PENALTY_GENERAL", "2026-02-01", "2027-02-01"),
        ("C1", "objection", "TAX_ARREARS", "2025-09-01", "2026-09-01"),
        ("D1", "listed", "DISHONEST_DEBTOR", "2025-11-11", None),
        ("G1", "listed", "COMMENDATION", "2025-06-01", "2028-06-01"),
        ("G2", "listed", "INSPECTION_PASS", "2026-01-10", "2027-01-10"),
    ]
    df = pd.DataFrame(
        rows, columns=["doc_number", "who", "item_code", "decision_date", "publicity_end_date"]
    )
    df["uscc"] = df["who"].map(U)
    df["record_key"] = df["doc_number"] + "|" + df["uscc"]
    df["subject_type"] = "legal"
    df["decision_date"] = pd.to_datetime(df["decision_date"])
    df["publicity_end_date"] = pd.to_datetime(df["publicity_end_date"])
    df["valid_to_date"] = pd.to_datetime(np.where(df["item_code"] == "LICENCE", "2029-01-01", None))
    return df.drop(columns="who")


def _changes():
    rows = [
        ("S1", "repair", "repair", "2026-05-20", None),
        ("O1", "objection", "objection", "2026-06-01", None),
        (
            "C1",
            "objection",
            "correct",
            "2026-03-01",
            "2026-06-01",
        ),  # publicity shortened: over by 06-30
    ]
    df = pd.DataFrame(
        rows, columns=["doc_number", "who", "op", "effective_date", "new_publicity_end_date"]
    )
    df["record_key"] = df["doc_number"] + "|" + df["who"].map(U)
    df["effective_date"] = pd.to_datetime(df["effective_date"])
    df["new_publicity_end_date"] = pd.to_datetime(df["new_publicity_end_date"])
    df["new_decision_date"] = pd.NaT
    df["known_from"] = pd.Timestamp("2026-06-15")
    return df.drop(columns="who")


def _score(as_of):
    rec = apply_changes(_records(), _changes(), as_of)
    return score_entities(
        _entities(), rec, Catalogue.in_force(as_of), Policy.shipped_in_force(as_of), as_of
    )


@pytest.mark.parametrize("as_of", ["2026-03-15", "2026-06-30"])
def test_golden_scores(as_of):
    got = canonical_bytes(_score(as_of))
    path = GOLDEN / f"scores_{as_of}.csv"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_bytes(got)
    assert got.decode("utf-8") == path.read_text(encoding="utf-8")


def test_the_stories_behind_the_golden_files():
    before, after = _score("2026-03-15").set_index("uscc"), _score("2026-06-30").set_index("uscc")
    cls = classify_records(
        apply_changes(_records(), _changes(), "2026-06-30"), CAT, POL, "2026-06-30"
    )
    why = dict(zip(cls["doc_number"], cls["excluded_because"]))
    # Decay: the newer penalty weighs more than the older one.
    w = dict(zip(cls["doc_number"], cls["weight"]))
    assert 0.9 < w["P1"] <= 1.0 and 0.5 < w["P2"] < 0.7
    # A minor record decided under Order 58 keeps its period (3 years) after Order 36 (3 months).
    assert "R011" in before.loc[U["boundary"], "reasons"]
    assert pd.isna(why["I1"]) and "R011" in after.loc[U["boundary"], "reasons"]
    # Repair: counts before the repair date, not after.
    assert "R013" in before.loc[U["repair"], "reasons"] and why["S1"] == "repaired"
    assert after.loc[U["repair"], "score"] > before.loc[U["repair"], "score"]
    # Objection pending: the record is marked, keeps counting (Art. 39 marks, never lifts) and the
    # entity is flagged; a correction shortened another record to expiry.
    assert pd.isna(why["O1"]) and "objection_pending" in after.loc[U["objection"], "flags"]
    assert (
        after.loc[U["objection"], "tier"] == "B" and "R012" in after.loc[U["objection"], "reasons"]
    )
    assert why["C1"] == "expired"
    # Severe-list override: D whatever the score.
    assert (
        after.loc[U["listed"], "tier"] == "D"
        and after.loc[U["listed"], "override"] == "severe_dishonesty_list"
    )
    assert after.loc[U["listed"], "score"] >= 400


def test_add_months_clips_to_month_end_like_dateoffset():
    d = pd.to_datetime(["2026-01-31", "2024-02-29", "2026-03-15", None])
    m = np.array([1, 12, -3, 5])
    got = add_months(d.to_numpy(dtype="datetime64[D]"), m)
    want = [
        d[i] + pd.DateOffset(months=int(m[i])) if not pd.isna(d[i]) else pd.NaT for i in range(4)
    ]
    assert list(pd.to_datetime(got)[:3]) == want[:3] and pd.isna(got[3])


# --------------------------------------------------------------------------- properties

NEGATIVE = [
    "PENALTY_GENERAL",
    "PENALTY_SEVERE",
    "TAX_ARREARS",
    "COURT_JUDGMENT",
    "INSPECTION_FAIL",
    "COMMITMENT_BREACH",
    "UTILITY_ARREARS",
    "FALSIFICATION",
    "REFUSE_TO_PERFORM",
]
ANY = NEGATIVE + ["LICENCE", "COMMITMENT", "COMMENDATION", "INSPECTION_PASS", "VOLUNTEER_CHARITY"]
record = st.tuples(st.sampled_from(ANY), st.integers(0, 1400), st.integers(30, 1200))


def _frame(recs, uscc):
    dec = pd.Timestamp("2026-06-30") - pd.to_timedelta([r[1] for r in recs], unit="D")
    return pd.DataFrame(
        {
            "record_key": [f"K{i}|{uscc}" for i in range(len(recs))],
            "uscc": uscc,
            "item_code": [r[0] for r in recs],
            "subject_type": "legal",
            "decision_date": dec,
            "publicity_end_date": dec + pd.to_timedelta([r[2] for r in recs], unit="D"),
            "valid_to_date": dec + pd.Timedelta(days=1000),
        }
    )


def _one(recs, repaired=()):
    ent = _entities().iloc[:1]
    rec = _frame(recs, ent["uscc"].iloc[0])
    ch = pd.DataFrame(
        {
            "record_key": [rec["record_key"].iloc[i] for i in repaired],
            "op": "repair",
            "effective_date": pd.Timestamp("2026-06-01"),
            "known_from": pd.Timestamp("2026-06-01"),
        }
    )
    rec = apply_changes(rec, ch, "2026-06-30")
    return int(score_entities(ent, rec, CAT, POL, "2026-06-30")["score"].iloc[0])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(record, max_size=12),
    st.sampled_from(NEGATIVE),
    st.integers(0, 1400),
    st.integers(30, 1200),
)
def test_more_negative_records_never_raise_a_score(recs, item, age, period):
    assert _one(recs + [(item, age, period)]) <= _one(recs)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record, min_size=1, max_size=12), st.data())
def test_a_repaired_record_never_lowers_a_score(recs, data):
    negatives = [i for i, r in enumerate(recs) if r[0] in NEGATIVE]
    if not negatives:
        return
    i = data.draw(st.sampled_from(negatives))
    assert _one(recs, repaired=[i]) >= _one(recs)


def test_sorted_and_dense_grouping_give_identical_results(monkeypatch):
    """Large provinces group (entity, item) cells by sorting instead of dense tables; both paths
    must agree to the byte, reasons included."""
    from bench.province import synthetic_province
    from scoring.evaluation import evaluate

    ent, rec = synthetic_province(5_000, 60_000, seed=11)
    dense = evaluate.score_entities(ent, rec, CAT, POL, "2026-06-30")
    monkeypatch.setattr(evaluate, "DENSE_GROUP_LIMIT", 0)
    sorted_ = evaluate.score_entities(ent, rec, CAT, POL, "2026-06-30")
    assert canonical_bytes(dense) == canonical_bytes(sorted_)
    assert (dense["reasons"] != evaluate.NO_RECORD_REASON).sum() > 100
