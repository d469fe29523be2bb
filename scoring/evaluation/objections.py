"""Objections (异议, Art. 39 and Art. 35 of the Heilongjiang Regulation) on a working-day calendar.

An objection is marked within 1 working day of receipt and decided within 3 working days (7 when
another unit must help; Art. 35: an objection to a severe-dishonesty listing within 3). Working
days are Chinese working days (scoring.common.workdays: public holidays off, adjusted working
weekends on), the same calendar as the nightly freshness gate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scoring.common import workdays
from scoring.common.law import OBJECTION_OPS, decision_result


def _shift_working(dates: pd.Series, n: np.ndarray) -> pd.Series:
    """dates + n working days, computed once per distinct (date, n)."""
    d = pd.to_datetime(dates)
    out = pd.Series(pd.NaT, index=d.index, dtype="datetime64[s]")
    ok = d.notna().to_numpy()
    if not ok.any():
        return out
    pairs = pd.DataFrame({"d": d[ok].dt.date, "n": np.asarray(n)[ok]})
    uniq = pairs.drop_duplicates()
    table = {
        (a, int(b)): pd.Timestamp(workdays.add_working_days(a, int(b)))
        for a, b in uniq.itertuples(index=False)
    }
    out[ok] = [table[(a, int(b))] for a, b in pairs.itertuples(index=False)]
    return out.astype("datetime64[s]")


def objection_calendar(
    changes: pd.DataFrame, as_of, mark_days: int = 1, decide_days: int = 3, assisted_days: int = 7
) -> pd.DataFrame:
    """Where each record's latest objection stands on ``as_of`` (events effective by then).

    One row per record_key with objection events: received (filing, else the mark), marked,
    decided, result (rejected / upheld / partly), mark_due and decision_due (working days after
    receipt; ``assisted`` objections get ``assisted_days``), and state: pending, overdue (pending
    past its decision deadline), upheld, rejected or partly.
    """
    cols = [
        "record_key",
        "received",
        "marked",
        "decided",
        "result",
        "assisted",
        "mark_due",
        "decision_due",
        "state",
        "provider",
    ]
    if changes is None or changes.empty or "op" not in changes:
        return pd.DataFrame(columns=cols)
    day = pd.Timestamp(as_of)
    ev = changes[changes["op"].isin(OBJECTION_OPS)].copy()
    ev["effective_date"] = pd.to_datetime(ev["effective_date"])
    ev = ev[ev["effective_date"] <= day]
    if ev.empty:
        return pd.DataFrame(columns=cols)
    ev["_o"] = ev["op"].map({op: i for i, op in enumerate(OBJECTION_OPS)})
    ev = ev.sort_values(["record_key", "effective_date", "_o"], kind="stable")
    is_dec = (ev["op"] == "objection_closed").to_numpy()
    # The latest cycle: events after the record's last decision, else that decision's cycle.
    last_dec = ev["effective_date"].where(is_dec).groupby(ev["record_key"]).transform("max")
    open_after = ev[~is_dec & (last_dec.isna() | (ev["effective_date"] > last_dec)).to_numpy()]
    decided = ev[is_dec].drop_duplicates("record_key", keep="last").set_index("record_key")
    opened = ev[~is_dec]
    keys = pd.Index(sorted(set(ev["record_key"])), name="record_key")
    out = pd.DataFrame(index=keys)
    pending_keys = set(open_after["record_key"])
    # Receipt: the cycle's filing, else its mark. For a decided cycle, the events up to the decision.
    cyc = pd.concat([open_after, opened[~opened["record_key"].isin(pending_keys)]])
    first = lambda op: cyc[cyc["op"] == op].groupby("record_key")["effective_date"].min()  # noqa: E731
    out["received"] = first("objection_filed").reindex(keys)
    out["marked"] = first("objection").reindex(keys)
    out["received"] = out["received"].fillna(out["marked"])
    out["decided"] = decided["effective_date"].reindex(keys)
    out.loc[out.index.isin(pending_keys), "decided"] = pd.NaT
    res = (
        decision_result(decided["result"])
        if "result" in decided
        else pd.Series(pd.NA, index=decided.index)
    )
    out["result"] = res.reindex(keys).astype("string")
    out.loc[out.index.isin(pending_keys), "result"] = pd.NA
    assisted = cyc.get("assisted", pd.Series(False, index=cyc.index)).fillna(False).astype(bool)
    out["assisted"] = (
        assisted.groupby(cyc["record_key"]).any().reindex(keys).fillna(False).astype(bool)
    )
    prov = ev.get("provider", pd.Series(pd.NA, index=ev.index)).groupby(ev["record_key"]).last()
    out["provider"] = prov.reindex(keys).astype("string")
    out["mark_due"] = _shift_working(out["received"], np.full(len(out), mark_days))
    out["decision_due"] = _shift_working(
        out["received"], np.where(out["assisted"], assisted_days, decide_days)
    )
    pend = out.index.isin(pending_keys)
    state = np.where(
        pend,
        np.where(out["decision_due"].notna() & (out["decision_due"] < day), "overdue", "pending"),
        out["result"].fillna("rejected").to_numpy(dtype=object),
    )
    out["state"] = pd.array(state, dtype="string")
    for c in ("received", "marked", "decided"):
        out[c] = pd.to_datetime(out[c]).astype("datetime64[s]")
    return out.reset_index()[cols]


def objections_of_the_night(rec: pd.DataFrame, chg: pd.DataFrame, as_of) -> pd.DataFrame:
    """Where every objection stands on the as-of date, with the provider of the record it is about
    (the unit that must decide it): what the run report lists as overdue per provider."""
    cal = objection_calendar(chg, as_of)
    prov = (
        rec.drop_duplicates("record_key", keep="last").set_index("record_key")["provider"]
        if len(rec) and "provider" in rec
        else pd.Series(dtype="string")
    )
    cal["record_provider"] = pd.Series(
        prov.reindex(cal["record_key"].to_numpy()).to_numpy(), index=cal.index, dtype="string"
    )
    return cal.sort_values("record_key", ignore_index=True)
