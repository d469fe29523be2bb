"""The legal-lifecycle table: one row per rule, each with its dates and what the evaluation must
say as of several dates around each boundary (counted or not, why, and the entity's tier).

Rules and sources (README, "How the law is applied"):
  listing     a court listing counts from publication until the court removes it; no invented end
  list_end    a listing ends at an end date only when the source gives one
  art35       an upheld objection to a severe listing removes it as of the decision
  art39       objections mark a record, never suspend it: it counts while pending or overdue;
              upheld withdraws from the decision; deadlines in Chinese working days
  art38       corrections replace what was known from when they were learned; revocations withdraw
  periods     a record's period follows the set in force on its decision date (2019 / Order 58 /
              Order 36), publication stops at the maximum
  repair      a repaired record stops counting from the repair date
Each row is (rule, as_of, known_by, record, expected counts, expected reason, expected tier).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scoring.common.catalogue import Catalogue
from scoring.evaluation.evaluate import Policy, apply_changes, classify_records, score_entities

CAT = Catalogue.load()
POL = Policy.shipped_in_force("2026-06-30")


def _uscc(i: int) -> str:
    from scoring.common.codes import make_uscc

    return str(
        make_uscc(
            np.array(["9"]),
            np.array(["1"]),
            np.array(["230102"]),
            np.array([[2, 0, 0, 0, 0, 0, 0, i]]),
        )[0]
    )


A, B = _uscc(1), _uscc(2)

# Records: key -> (entity, item, decision date, publicity/listing end given by the source,
#                  removal date, grade)
RECORDS = {
    "COURT_REMOVED": (A, "DISHONEST_DEBTOR", "2025-11-11", None, "2026-03-02", None),
    "COURT_OPEN": (A, "DISHONEST_DEBTOR", "2023-01-05", None, None, None),
    "COURT_TERM": (A, "DISHONEST_DEBTOR", "2024-03-01", "2026-03-01", None, None),
    "LIST_ART35": (A, "SEVERE_DISHONESTY_LIST", "2026-02-10", None, None, None),
    "OBJ_PENDING": (A, "PENALTY_GENERAL", "2026-01-20", None, None, None),
    "OBJ_REJECTED": (A, "PENALTY_GENERAL", "2026-05-04", None, None, None),
    "OBJ_UPHELD": (A, "PENALTY_GENERAL", "2026-05-04", None, None, None),
    "OBJ_UPHELD_CORR": (A, "PENALTY_SEVERE", "2026-05-04", None, None, "severe"),
    "CORR_ITEM": (A, "PENALTY_GENERAL", "2026-01-15", None, None, None),
    "CORR_SUBJECT": (A, "PENALTY_GENERAL", "2026-01-15", None, None, None),
    "REVOKED": (A, "TAX_ARREARS", "2026-01-15", None, None, None),
    "MINOR_O58": (A, "INSPECTION_FAIL", "2026-03-31", None, None, None),
    "MINOR_O36": (A, "INSPECTION_FAIL", "2026-04-01", None, None, None),
    "GEN_MAX": (A, "PENALTY_GENERAL", "2025-06-30", None, None, None),
    "SEV_2019": (A, "PENALTY_SEVERE", "2023-04-30", None, None, "severe"),
    "SEV_O58": (A, "PENALTY_SEVERE", "2023-05-01", None, None, "severe"),
    "WARN_O36": (A, "PENALTY_GENERAL", "2026-04-01", None, None, "minor"),
    "REPAIRED": (A, "PENALTY_GENERAL", "2025-09-01", None, None, None),
}

# Changes: (key, op, effective date, known from, extra fields)
CHANGES = [
    # Art. 35: objection to a severe listing filed Thu 2026-02-12; three working days span the
    # 2026 Spring Festival (Sat 02-14 is a working day, 02-15..02-23 off): due Tue 02-24.
    ("LIST_ART35", "objection_filed", "2026-02-12", "2026-02-12", {}),
    ("LIST_ART35", "objection", "2026-02-13", "2026-02-13", {}),
    ("LIST_ART35", "objection_closed", "2026-02-24", "2026-02-24", {"result": "采纳"}),
    # Art. 39: filed 2026-02-12, never decided: pending until 02-24, overdue from 02-25.
    ("OBJ_PENDING", "objection_filed", "2026-02-12", "2026-02-12", {}),
    ("OBJ_PENDING", "objection", "2026-02-13", "2026-02-13", {}),
    ("OBJ_REJECTED", "objection_filed", "2026-06-01", "2026-06-01", {}),
    ("OBJ_REJECTED", "objection", "2026-06-02", "2026-06-02", {}),
    ("OBJ_REJECTED", "objection_closed", "2026-06-04", "2026-06-04", {"result": "维持"}),
    ("OBJ_UPHELD", "objection_filed", "2026-06-01", "2026-06-01", {}),
    ("OBJ_UPHELD", "objection_closed", "2026-06-04", "2026-06-04", {"result": "采纳"}),
    ("OBJ_UPHELD_CORR", "objection_filed", "2026-06-01", "2026-06-01", {}),
    ("OBJ_UPHELD_CORR", "objection_closed", "2026-06-04", "2026-06-04", {"result": "部分采纳"}),
    (
        "OBJ_UPHELD_CORR",
        "correct",
        "2026-06-04",
        "2026-06-05",
        {"new_item_code": "PENALTY_GENERAL", "new_grade": "general"},
    ),
    # Art. 38: a correction may change the item or the subject; learned on 2026-03-10.
    ("CORR_ITEM", "correct", "2026-03-09", "2026-03-10", {"new_item_code": "COURT_JUDGMENT"}),
    ("CORR_SUBJECT", "correct", "2026-03-09", "2026-03-10", {"new_subject_code": B}),
    ("REVOKED", "revoke", "2026-03-09", "2026-03-10", {}),
    ("REPAIRED", "repair", "2026-05-20", "2026-05-21", {}),
]


def _records() -> pd.DataFrame:
    rows = [(k, *v) for k, v in RECORDS.items()]
    df = pd.DataFrame(
        rows,
        columns=[
            "doc_number",
            "uscc",
            "item_code",
            "decision_date",
            "publicity_end_date",
            "removal_date",
            "grade",
        ],
    )
    df["record_key"] = df["doc_number"] + "|" + df["uscc"]
    df["subject_type"] = "legal"
    df["provider"] = "samr"
    for c in ("decision_date", "publicity_end_date", "removal_date"):
        df[c] = pd.to_datetime(df[c]).astype("datetime64[s]")
    df["valid_to_date"] = pd.Series(pd.NaT, index=df.index, dtype="datetime64[s]")
    df["grade"] = df["grade"].astype("string")
    return df


def _changes(known_by) -> pd.DataFrame:
    keys = {k: f"{k}|{v[0]}" for k, v in RECORDS.items()}
    rows = []
    for key, op, eff, known, extra in CHANGES:
        rows.append(
            {
                "record_key": keys[key],
                "op": op,
                "effective_date": eff,
                "known_from": known,
                "provider": "samr",
                **extra,
            }
        )
    df = pd.DataFrame(rows)
    for c in ("effective_date", "known_from"):
        df[c] = pd.to_datetime(df[c]).astype("datetime64[s]")
    return df[df["known_from"] <= pd.Timestamp(known_by)].reset_index(drop=True)


def _entities():
    return pd.DataFrame(
        {
            "uscc": [A, B],
            "subject_name": ["甲", "乙"],
            "division_code": "230102",
            "industry": "F",
            "eval_class": "legal_person",
            "entity_status": "存续",
            "registered_date": pd.Timestamp("2018-01-01"),
        }
    )


def _evaluate(as_of, known_by, keys):
    """Classify only the records named (so one rule's tier is not another rule's override)."""
    rec = _records()
    rec = rec[rec["doc_number"].isin(keys)].reset_index(drop=True)
    applied = apply_changes(rec, _changes(known_by), as_of)
    cls = classify_records(applied, CAT, POL, as_of).set_index("doc_number")
    tiers = score_entities(_entities(), applied, CAT, POL, as_of).set_index("uscc")["tier"]
    return cls, tiers


TABLE = [
    # rule, record, as_of, known_by, counts, reason, tier of A
    ("listing", "COURT_REMOVED", "2025-11-10", "2026-06-30", False, "not_yet_decided", None),
    ("listing", "COURT_REMOVED", "2025-11-11", "2026-06-30", True, None, "D"),
    ("listing", "COURT_REMOVED", "2026-03-01", "2026-06-30", True, None, "D"),
    ("listing", "COURT_REMOVED", "2026-03-02", "2026-06-30", False, "removed_from_list", None),
    (
        "listing",
        "COURT_OPEN",
        "2025-01-05",
        "2026-06-30",
        True,
        None,
        "D",
    ),  # 24 months: still listed
    ("listing", "COURT_OPEN", "2026-06-30", "2026-06-30", True, None, "D"),
    ("list_end", "COURT_TERM", "2026-02-28", "2026-06-30", True, None, "D"),
    ("list_end", "COURT_TERM", "2026-03-01", "2026-06-30", True, None, "D"),  # its last day counts
    ("list_end", "COURT_TERM", "2026-03-02", "2026-06-30", False, "expired", None),
    ("art35", "LIST_ART35", "2026-02-11", "2026-06-30", True, None, "D"),
    ("art35", "LIST_ART35", "2026-02-13", "2026-06-30", True, None, "D"),  # marked, still listed
    ("art35", "LIST_ART35", "2026-02-23", "2026-06-30", True, None, "D"),
    ("art35", "LIST_ART35", "2026-02-24", "2026-06-30", False, "objection_upheld", None),
    ("art35", "LIST_ART35", "2026-03-31", "2026-06-30", False, "objection_upheld", None),
    ("art39", "OBJ_PENDING", "2026-02-11", "2026-06-30", True, None, None),
    ("art39", "OBJ_PENDING", "2026-02-24", "2026-06-30", True, None, None),  # marked, counts
    ("art39", "OBJ_PENDING", "2026-02-25", "2026-06-30", True, None, None),  # overdue, counts
    ("art39", "OBJ_REJECTED", "2026-05-31", "2026-06-30", True, None, None),
    ("art39", "OBJ_REJECTED", "2026-06-03", "2026-06-30", True, None, None),
    ("art39", "OBJ_REJECTED", "2026-06-04", "2026-06-30", True, None, None),
    ("art39", "OBJ_UPHELD", "2026-06-03", "2026-06-30", True, None, None),
    ("art39", "OBJ_UPHELD", "2026-06-04", "2026-06-30", False, "objection_upheld", None),
    ("art39", "OBJ_UPHELD_CORR", "2026-06-04", "2026-06-30", True, None, None),
    ("art38", "CORR_ITEM", "2026-03-09", "2026-03-09", True, None, None),
    ("art38", "CORR_ITEM", "2026-03-10", "2026-03-10", False, "no_department_finding", None),
    ("art38", "REVOKED", "2026-03-31", "2026-03-09", True, None, None),
    ("art38", "REVOKED", "2026-03-31", "2026-03-10", False, "revoked", None),
    (
        "periods",
        "MINOR_O58",
        "2026-06-30",
        "2026-06-30",
        True,
        None,
        None,
    ),  # Order 58: up to 12 months
    ("periods", "MINOR_O58", "2029-03-31", "2026-06-30", True, None, None),  # Order 58: 3 years
    ("periods", "MINOR_O58", "2029-04-01", "2026-06-30", False, "expired", None),
    (
        "periods",
        "MINOR_O36",
        "2026-06-30",
        "2026-06-30",
        True,
        None,
        None,
    ),  # Order 36: up to 3 months
    ("periods", "MINOR_O36", "2026-07-01", "2026-06-30", True, None, None),
    ("periods", "MINOR_O36", "2026-07-02", "2026-06-30", False, "expired", None),
    ("periods", "GEN_MAX", "2028-06-30", "2026-06-30", True, None, None),  # Order 58: 3 years
    ("periods", "GEN_MAX", "2028-07-01", "2026-06-30", False, "expired", None),
    ("periods", "SEV_2019", "2026-04-30", "2026-06-30", True, None, None),
    ("periods", "SEV_2019", "2026-05-01", "2026-06-30", False, "expired", None),
    ("periods", "WARN_O36", "2026-06-30", "2026-06-30", False, "minor_record", None),  # Order 36
    ("periods", "WARN_O36", "2026-07-02", "2026-06-30", False, "expired", None),
    ("repair", "REPAIRED", "2026-05-19", "2026-06-30", True, None, None),
    ("repair", "REPAIRED", "2026-05-20", "2026-06-30", False, "repaired", None),
    (
        "repair",
        "REPAIRED",
        "2026-05-20",
        "2026-05-20",
        True,
        None,
        None,
    ),  # not yet known: still counts
]


@pytest.mark.parametrize(
    "rule,key,as_of,known_by,counts,reason,tier",
    TABLE,
    ids=[f"{r[0]}-{r[1]}-{r[2]}-k{r[3]}" for r in TABLE],
)
def test_legal_lifecycle(rule, key, as_of, known_by, counts, reason, tier):
    cls, tiers = _evaluate(as_of, known_by, [key])
    row = cls.loc[key]
    assert bool(row["counts"]) is counts
    assert (None if pd.isna(row["excluded_because"]) else row["excluded_because"]) == reason
    if tier is not None:
        assert tiers[A] == tier
    elif RECORDS[key][1] in ("DISHONEST_DEBTOR", "SEVERE_DISHONESTY_LIST"):
        assert tiers[A] != "D"  # the override ends with the listing


def test_corrections_change_the_item_and_the_subject_from_when_learned():
    cls, _ = _evaluate("2026-03-31", "2026-03-09", ["CORR_ITEM", "CORR_SUBJECT"])
    assert (
        cls.loc["CORR_ITEM", "item_code"] == "PENALTY_GENERAL"
        and cls.loc["CORR_SUBJECT", "uscc"] == A
    )
    cls, tiers = _evaluate("2026-03-31", "2026-03-10", ["CORR_ITEM", "CORR_SUBJECT"])
    assert cls.loc["CORR_ITEM", "item_code"] == "COURT_JUDGMENT" and bool(
        cls.loc["CORR_ITEM", "corrected"]
    )
    assert cls.loc["CORR_SUBJECT", "uscc"] == B  # the record moved to the right entity


def test_partly_upheld_objection_counts_in_its_corrected_form():
    cls, _ = _evaluate("2026-06-30", "2026-06-30", ["OBJ_UPHELD_CORR"])
    assert cls.loc["OBJ_UPHELD_CORR", "item_code"] == "PENALTY_GENERAL"
    assert cls.loc["OBJ_UPHELD_CORR", "grade"] == "general"


def test_periods_follow_the_set_in_force_on_the_decision_date():
    # Decided the day before Order 58: severe minimum 6 months (2019); under Order 58 every penalty
    # has 3 months to 3 years; Order 36 brings back the split and a minor class.
    from scoring.common.law import period_bounds

    d = pd.Series(pd.to_datetime(["2023-04-30", "2023-05-01", "2026-03-31", "2026-04-01"]))
    lo, hi, rule = period_bounds(CAT.doc, d, pd.Series(["severe", "severe", "minor", "minor"]))
    assert list(lo) == [6, 3, 3, 0] and list(hi) == [36, 36, 36, 3]
    assert list(rule) == [
        "ndrc-2019",
        "ndrc-order-58-2023",
        "ndrc-order-58-2023",
        "ndrc-order-36-2025",
    ]


def test_apply_changes_without_any_repair_does_not_raise():
    """Regression: an entity whose change history had no repair made apply_changes raise
    TypeError (mapping record keys through an empty datetime Series)."""
    rec = _records()
    ch = _changes("2026-06-30")
    ch = ch[ch["op"] != "repair"].reset_index(drop=True)
    out = apply_changes(rec, ch, "2026-06-30")
    assert out["repaired_date"].isna().all() and (out["status"] == "revoked").sum() == 1
    # and the caller's frame is untouched
    assert "status" not in rec.columns
