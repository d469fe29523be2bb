"""The change feed's context for its contract (stg_change): does the record it names exist; may it
be repaired and from when (the minimum period for its grade under the set in force on its decision
date); does an objection decision follow a filing; are its dates in order."""

from __future__ import annotations

import pandas as pd

from scoring.common.catalogue import Catalogue
from scoring.common.law import decision_result, non_repairable, period_bounds


def annotate_changes(
    stg_chg: pd.DataFrame,
    known: pd.DataFrame,
    cat: Catalogue,
    stored_changes: pd.DataFrame | None = None,
    opens: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Add what the stg_change contract checks: does the record exist; may it be repaired and from
    when (the minimum period for its grade under the set in force on its decision date); does an
    objection decision follow a filing or mark of the same record; is the change dated on or after
    the record's decision; is a corrected item a catalogue item. ``opens``: the filings and marks
    (record_key, op, effective_date) of the whole delivery when ``stg_chg`` is one chunk of it;
    by default the filings are the rows of ``stg_chg`` itself."""
    c = stg_chg.copy()
    ref = known.set_index("record_key")
    # A request not to publish positive information (Art. 37 ¶1) is about the entity, not a record.
    entity_level = c["op"].isin(["positive_optout", "positive_optin"]).fillna(False)
    c["record_known"] = c["record_key"].isin(ref.index) | entity_level

    def look(col):
        if col not in ref:
            return pd.Series(pd.NA, index=c.index)
        return pd.Series(ref[col].reindex(c["record_key"].to_numpy()).to_numpy(), index=c.index)

    item = look("item_code")
    decided = pd.to_datetime(look("decision_date")).astype("datetime64[s]")
    severity = item.map({i["code"]: i["severity"] for i in cat.items})
    grade = look("grade").astype("string").fillna(severity.astype("string"))
    repairable = (
        item.map({i["code"]: bool(i.get("repairable")) for i in cat.items})
        .fillna(True)
        .astype(bool)
    )
    repairable &= ~non_repairable(
        pd.DataFrame({"penalty_category": look("penalty_category"), "provider": look("provider")}),
        cat.doc,
    )
    is_repair = (c["op"] == "repair").fillna(False).to_numpy()
    c["repair_allowed"] = ~is_repair | repairable.to_numpy()
    lo, _, _ = period_bounds(cat.doc, decided, grade, look("provider"), look("violation_type"))
    earliest = pd.Series(pd.NaT, index=c.index, dtype="datetime64[s]")
    for m in sorted(set(lo[is_repair])):
        sel = is_repair & (lo == m)
        earliest[sel] = decided[sel] + pd.DateOffset(months=int(m))
    c["repair_earliest_date"] = earliest
    c["record_decision_date"] = decided
    is_dec = (c["op"] == "objection_closed").fillna(False).to_numpy()
    c["objection_opened"] = ~is_dec | _opened_before(c, stored_changes, opens)
    c["result_known"] = ~is_dec | decision_result(c["result"]).notna().to_numpy()
    new_item = (
        c["new_item_code"]
        if "new_item_code" in c
        else pd.Series(pd.NA, index=c.index, dtype="string")
    )
    c["new_item_known"] = (new_item.isna() | new_item.isin(cat.item_codes)).to_numpy()
    c["change_key"] = (
        c["record_key"].fillna("")
        + "|"
        + c["op"].fillna("")
        + "|"
        + c["effective_date"].dt.strftime("%Y-%m-%d").fillna("")
    ).astype("string")
    stored_keys = (
        set(stored_changes["change_key"])
        if stored_changes is not None and len(stored_changes)
        else set()
    )
    c["seen_before"] = c["change_key"].isin(stored_keys)
    return c


def _opened_before(c: pd.DataFrame, stored_changes: pd.DataFrame | None, opens=None):
    """Per change: a filing or mark of the same record (stored, or in this delivery) is dated on or
    before it; an objection decision needs one."""
    stored = (
        stored_changes.reindex(columns=["record_key", "op", "effective_date"])
        if stored_changes is not None and len(stored_changes)
        else None
    )
    staged = c if opens is None else opens
    prior = pd.concat([stored, staged[["record_key", "op", "effective_date"]]])
    first_open = (
        prior[prior["op"].isin(["objection_filed", "objection"])]
        .groupby("record_key")["effective_date"]
        .min()
    )
    opened_at = pd.to_datetime(
        pd.Series(first_open.reindex(c["record_key"].to_numpy()).to_numpy(), index=c.index)
    )
    return (opened_at.notna() & (opened_at <= c["effective_date"])).to_numpy()
