"""The change feed's context for its contract (stg_change): does the record it names exist, may it
be repaired, and from when (the minimum publicity period under the rules in force)."""
from __future__ import annotations

import pandas as pd

from scoring.common.catalogue import Catalogue


def annotate_changes(stg_chg: pd.DataFrame, known: pd.DataFrame, cat: Catalogue, stored_change_keys: set) -> pd.DataFrame:
    """Add what the stg_change contract checks: does the record exist, may it be repaired, and
    from when (the minimum publicity period under the rules in force on the repair date)."""
    c = stg_chg.copy()
    ref = known.set_index("record_key")
    c["record_known"] = c["record_key"].isin(ref.index)
    item = c["record_key"].map(ref["item_code"])
    decided = pd.to_datetime(c["record_key"].map(ref["decision_date"]))
    repairable = item.map({i["code"]: bool(i.get("repairable")) for i in cat.items}).fillna(True)
    c["repair_allowed"] = (c["op"] != "repair").fillna(True) | repairable.astype(bool)
    severity = item.map({i["code"]: i["severity"] for i in cat.items})
    rule_id = cat.rule_id_on(c["effective_date"].fillna(pd.Timestamp("1970-01-01")))
    rules = cat.rule_frame().set_index(["rule_id", "severity"])["min_months"]
    months = pd.Series([rules.get((r, s), 0) if isinstance(s, str) else 0 for r, s in zip(rule_id, severity)],
                       index=c.index)
    earliest = pd.Series(pd.NaT, index=c.index, dtype="datetime64[s]")
    is_repair = (c["op"] == "repair").fillna(False).to_numpy()
    for m in sorted(months[is_repair].unique()):
        sel = is_repair & (months == m).to_numpy()
        earliest[sel] = decided[sel] + pd.DateOffset(months=int(m))
    c["repair_earliest_date"] = earliest
    c["change_key"] = (c["record_key"].fillna("") + "|" + c["op"].fillna("") + "|"
                       + c["effective_date"].dt.strftime("%Y-%m-%d").fillna("")).astype("string")
    c["seen_before"] = c["change_key"].isin(stored_change_keys)
    return c
