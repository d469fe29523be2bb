"""Bad lifecycle input is quarantined with a reason, never a crash: an objection decision without a
filing, a decision nobody can read, a removal before the listing, a correction of a record that
never existed or to an item that does not exist, a change dated before its record."""

from __future__ import annotations

import pandas as pd
import pytest

from scoring.common.catalogue import Catalogue
from scoring.quality.changes import annotate_changes
from scoring.quality.validate import gx_context, validate_table

CAT = Catalogue.load()
U = "91330100799655058B"


@pytest.fixture(scope="module")
def gx():
    return gx_context(None)


def _changes(rows):
    cols = [
        "op",
        "doc_number",
        "effective_date",
        "result",
        "new_item_code",
        "new_decision_date",
        "new_publicity_end_date",
    ]
    df = pd.DataFrame([dict(zip(cols, r)) for r in rows]).reindex(columns=cols)
    n = len(df)
    df["source_file"], df["line_no"], df["provider"] = "ndrc/x.csv", range(2, n + 2), "ndrc"
    df["delivered_on"] = pd.Timestamp("2026-06-30")
    df["subject_code"] = U
    df["item_code"] = "PENALTY_GENERAL"
    df["bad_values"] = pd.NA
    for c in ("effective_date", "new_decision_date", "new_publicity_end_date", "delivered_on"):
        df[c] = pd.to_datetime(df[c]).astype("datetime64[s]")
    for c in (
        "op",
        "doc_number",
        "result",
        "new_item_code",
        "subject_code",
        "item_code",
        "bad_values",
    ):
        df[c] = df[c].astype("string")
    df["record_key"] = (df["doc_number"] + "|" + U).astype("string")
    return df


KNOWN = pd.DataFrame(
    {
        "record_key": [f"D1|{U}", f"D2|{U}", f"D3|{U}"],
        "item_code": "PENALTY_GENERAL",
        "decision_date": pd.to_datetime(["2026-01-10"] * 3),
        "grade": "general",
        "provider": "samr",
        "penalty_category": "罚款",
    }
)
STORED = pd.DataFrame(
    {
        "record_key": [f"D3|{U}"],
        "op": ["objection_filed"],
        "effective_date": pd.to_datetime(["2026-05-01"]),
        "change_key": ["x"],
    }
)

CASES = [
    # row, expected reason ("" = accepted)
    (
        ("objection_closed", "D1", "2026-06-01", "维持", None, None, None),
        "objection_decision_without_filing",
    ),
    (
        ("objection_closed", "D3", "2026-06-01", "维持", None, None, None),
        "",
    ),  # filed in an earlier delivery
    (
        ("objection_closed", "D3", "2026-06-02", "看情况", None, None, None),
        "unknown_objection_result",
    ),
    (("correct", "NEVER", "2026-06-01", None, None, None, None), "unknown_record"),
    (("correct", "D2", "2026-06-01", None, "NO_SUCH_ITEM", None, None), "unknown_item"),
    (("correct", "D2", "2026-06-03", None, None, "2026-03-01", "2026-02-01"), "dates_out_of_order"),
    (("revoke", "D2", "2025-12-31", None, None, None, None), "dates_out_of_order"),
    (("objection_filed", "D2", "2026-06-05", None, None, None, None), ""),
]


def test_bad_lifecycle_changes_are_quarantined_with_their_reason(gx):
    stg = annotate_changes(_changes([c[0] for c in CASES]), KNOWN, CAT, STORED)
    reasons = list(
        validate_table(gx, "stg_change", stg, CAT, "2026-06-30", "t", with_docs=False).reasons
    )
    for (row, want), got in zip(CASES, reasons):
        assert (want in got.split(",")) if want else got == "", (row, got)


def test_objection_decision_before_its_filing_in_the_same_delivery(gx):
    stg = annotate_changes(
        _changes(
            [
                ("objection_closed", "D2", "2026-06-01", "采纳", None, None, None),
                ("objection_filed", "D2", "2026-06-03", None, None, None, None),
            ]
        ),
        KNOWN,
        CAT,
        None,
    )
    reasons = list(
        validate_table(gx, "stg_change", stg, CAT, "2026-06-30", "t", with_docs=False).reasons
    )
    assert reasons[0] == "objection_decision_without_filing" and reasons[1] == ""


def _stg_record(**cols):
    n = len(next(iter(cols.values())))
    base = {
        "source_file": ["court/x.csv"] * n,
        "line_no": list(range(2, n + 2)),
        "provider": ["court"] * n,
        "layout": ["court_dishonest_debtor"] * n,
        "delivered_on": [pd.Timestamp("2026-06-30")] * n,
        "item_code": ["DISHONEST_DEBTOR"] * n,
        "subject_type": ["legal"] * n,
        "subject_name": ["某公司"] * n,
        "uscc": [U] * n,
        "id_number": [None] * n,
        "legal_rep_name": [None] * n,
        "legal_rep_id_number": [None] * n,
        "doc_number": [f"（2026）黑执{i}" for i in range(n)],
        "penalty_category": [None] * n,
        "amount_yuan": [None] * n,
        "decision_date": [pd.Timestamp("2026-03-01")] * n,
        "publicity_end_date": [pd.NaT] * n,
        "valid_to_date": [pd.NaT] * n,
        "authority_name": ["某法院"] * n,
        "inspection_result": [None] * n,
        "grade": [None] * n,
        "removal_date": [pd.NaT] * n,
        "bad_values": [None] * n,
        "registered_date": [pd.Timestamp("2020-01-01")] * n,
        "seen_before": [False] * n,
    }
    base.update(cols)
    df = pd.DataFrame(base)
    for c in (
        "decision_date",
        "publicity_end_date",
        "valid_to_date",
        "registered_date",
        "delivered_on",
        "removal_date",
    ):
        df[c] = pd.to_datetime(df[c]).astype("datetime64[s]")
    for c in (
        "uscc",
        "id_number",
        "doc_number",
        "item_code",
        "subject_type",
        "penalty_category",
        "bad_values",
        "grade",
    ):
        df[c] = df[c].astype("string")
    df["amount_yuan"] = df["amount_yuan"].astype("float64")
    df["record_key"] = (df["doc_number"] + "|" + df["uscc"]).astype("string")
    return df


def test_removal_dates_are_checked_against_the_listing(gx):
    df = _stg_record(removal_date=[pd.Timestamp("2026-02-01"), pd.Timestamp("2026-03-01"), pd.NaT])
    reasons = list(
        validate_table(gx, "stg_record", df, CAT, "2026-06-30", "t", with_docs=False).reasons
    )
    assert reasons == ["removal_before_listing", "", ""]
