"""Staging of change feeds: a correction, revocation, objection, repair or positive-information
opt-out of one record typed into stg_change rows. Pure functions of a RawFile: no I/O."""

from __future__ import annotations

import pandas as pd

from scoring.common import codes
from scoring.common.text import identity_text
from scoring.intake.readers import RawFile
from scoring.intake.staging import provenance_columns
from scoring.intake.values import clean_text, parse_amounts, parse_dates

CHANGE_OPS = {
    "更正": "correct",
    "撤销": "revoke",
    "异议申请": "objection_filed",
    "异议受理": "objection_filed",
    "异议标注": "objection",
    "异议办结": "objection_closed",
    "异议处理": "objection_closed",
    "信用修复": "repair",
    # Art. 37 ¶1: the entity asks that its positive information not be published (and withdraws
    # that request); entity-level, keyed by the request's number and the entity's code.
    "不公示守信信息": "positive_optout",
    "撤回不公示守信信息": "positive_optin",
}
STG_CHANGE_COLUMNS = [
    "source_file",
    "line_no",
    "provider",
    "delivered_on",
    "op",
    "doc_number",
    "subject_code",
    "item_code",
    "effective_date",
    "result",
    "new_decision_date",
    "new_publicity_end_date",
    "new_item_code",
    "new_grade",
    "new_amount_yuan",
    "new_subject_code",
    "new_removal_date",
    "assisted",
    "assist_notified",
    "assist_replied",
    "excluded_days",
    "record_key",
    "bad_values",
]
GRADE_WORDS = {
    "轻微": "minor",
    "轻微失信": "minor",
    "一般": "general",
    "一般失信": "general",
    "严重": "severe",
    "严重失信": "severe",
}


def stage_changes(raw: RawFile, delivered_on: pd.Timestamp) -> pd.DataFrame:
    """Typed change rows (stg_change): one correction, revocation, objection or repair of one record."""
    f = raw.rows
    out = provenance_columns(raw, delivered_on)
    op_text = clean_text(f["op"])
    out["op"] = (
        op_text.map(CHANGE_OPS, na_action="ignore").astype("string").where(op_text.notna(), pd.NA)
    )
    out["op"] = out["op"].where(op_text.isna() | out["op"].notna(), "unknown:" + op_text)
    out["doc_number"] = clean_text(f["doc_number"])
    out["subject_code"] = codes.normalise_code(f["subject_code"])
    out["item_code"] = clean_text(f["item_code"]).str.upper()
    bad = pd.Series("", index=f.index, dtype="string")
    for col, src in (
        ("effective_date", "effective_date"),
        ("new_decision_date", "new_decision_date"),
        ("new_publicity_end_date", "new_publicity_end"),
        ("new_removal_date", "new_removal_date"),
        ("assist_notified", "assist_notified"),
        ("assist_replied", "assist_replied"),
    ):
        # Columns a layout version before 2022-07-01 does not have are empty.
        d, d_bad = parse_dates(f[src] if src in f else pd.Series(pd.NA, index=f.index))
        out[col] = d
        bad = bad.where(~d_bad, bad + col + ";")
    out["result"] = clean_text(f["result"])
    out["new_item_code"] = clean_text(f["new_item_code"]).str.upper()
    grade_text = clean_text(f["new_grade"])
    out["new_grade"] = grade_text.map(GRADE_WORDS, na_action="ignore").astype("string")
    bad = bad.where(~(grade_text.notna() & out["new_grade"].isna()), bad + "new_grade;")
    amt, amt_bad = parse_amounts(f["new_amount_yuan"])
    out["new_amount_yuan"] = amt
    bad = bad.where(~amt_bad, bad + "new_amount_yuan;")
    out["new_subject_code"] = codes.normalise_code(f["new_subject_code"]).astype("string")
    assisted = clean_text(f["assisted"])
    out["assisted"] = assisted.isin(["是", "需要", "Y", "y", "1", "true", "True"]).to_numpy(
        dtype=bool
    )
    days_text = clean_text(
        f["excluded_days"] if "excluded_days" in f else pd.Series(pd.NA, index=f.index)
    )
    days = pd.to_numeric(days_text, errors="coerce")
    days_bad = days_text.notna() & (days.isna() | (days < 0) | (days % 1 != 0))
    out["excluded_days"] = days.where(~days_bad).astype("Int64")
    bad = bad.where(~days_bad, bad + "excluded_days;")
    out["record_key"] = (
        identity_text(out["doc_number"]).fillna("") + "|" + out["subject_code"].fillna("")
    ).astype("string")
    out["bad_values"] = bad.mask(bad == "", pd.NA)
    return out[STG_CHANGE_COLUMNS].reset_index(drop=True)
