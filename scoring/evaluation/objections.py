"""Objections (异议) on a working-day calendar: an objection MARKS a record, it never lifts it.

《黑龙江省社会信用条例》 第三十九条第二款: "属于本单位处理范围的，应当自收到异议申请之日起一个工作日内
作出异议标注，并在三个工作日内作出处理决定；……需要其他单位协助核查的，应当在七个工作日内作出处理决定，
协助单位应当自收到核查通知之日起两个工作日内反馈核查结果。检验、检测、检疫、鉴定和专家评审所需时间不计入
异议处理时间。"
第三十五条第二款: an objection to a severe-dishonesty listing is decided "自收到异议申请之日起三个工作日内"
(no extension for assistance).
第二十八条第三款: "被人民法院纳入失信被执行人名单的信用主体，应当被认定为严重失信主体" -- the listing is
the court's; an objection to it is recorded and referred to the court, never decided here.

Only a decision changes the record: upheld withdraws it from the decision's effective date, rejected
leaves it as it was. Deadlines are counted strictly: a year without a holiday arrangement gives no
deadline and ``calendar_unknown`` instead of a guess (scoring.common.workdays).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scoring.common import workdays
from scoring.common.law import (
    COURT_LISTING_ITEMS,
    OBJECTION_OPS,
    SEVERE_LIST_ITEMS,
    decision_result,
)

MARK_DAYS, DECIDE_DAYS, ASSISTED_DAYS, ASSIST_REPLY_DAYS, SEVERE_LIST_DAYS = 1, 3, 7, 2, 3
COLUMNS = [
    "record_key",
    "received",
    "marked",
    "mark_due",
    "mark_late",
    "decided",
    "result",
    "assisted",
    "excluded_days",
    "decision_due",
    "decision_late",
    "assist_notified",
    "assist_replied",
    "assist_due",
    "assist_late",
    "severe_list",
    "court_listing",
    "calendar_unknown",
    "state",
    "provider",
]


def shift_working(dates: pd.Series, n: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    """(dates + n working days, calendar_unknown), computed once per distinct (date, n). A count
    that needs a year no calendar covers gives NaT and True."""
    d = pd.to_datetime(dates)
    out = pd.Series(pd.NaT, index=d.index, dtype="datetime64[s]")
    unknown = np.zeros(len(d), dtype=bool)
    ok = d.notna().to_numpy()
    if not ok.any():
        return out, unknown
    pairs = pd.DataFrame({"d": d[ok].dt.date, "n": np.asarray(n)[ok].astype(int)})
    table = {}
    for a, b in pairs.drop_duplicates().itertuples(index=False):
        try:
            table[(a, b)] = pd.Timestamp(workdays.add_working_days(a, b, strict=True))
        except workdays.CalendarUnknown:
            table[(a, b)] = pd.NaT
    vals = [table[(a, b)] for a, b in pairs.itertuples(index=False)]
    out[ok] = vals
    unknown[np.flatnonzero(ok)] = pd.isna(pd.Series(vals, dtype="datetime64[s]")).to_numpy()
    return out.astype("datetime64[s]"), unknown


def _late(done: pd.Series, due: pd.Series, day: pd.Timestamp) -> np.ndarray:
    """Done after its due date, or not done and the due date has passed."""
    done, due = pd.to_datetime(done), pd.to_datetime(due)
    return (due.notna() & ((done.notna() & (done > due)) | (done.isna() & (due < day)))).to_numpy()


def _events(changes: pd.DataFrame, day: pd.Timestamp) -> pd.DataFrame:
    ev = changes[changes["op"].isin(OBJECTION_OPS)].copy()
    ev["effective_date"] = pd.to_datetime(ev["effective_date"])
    ev = ev[ev["effective_date"] <= day]
    ev["_o"] = ev["op"].map({op: i for i, op in enumerate(OBJECTION_OPS)})
    return ev.sort_values(["record_key", "effective_date", "_o"], kind="stable")


def _cycle(ev: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, set]:
    """The latest cycle per record: events after its last decision (pending), else that
    decision's cycle. Returns (cycle events, decisions, pending keys)."""
    is_dec = (ev["op"] == "objection_closed").to_numpy()
    last_dec = ev["effective_date"].where(is_dec).groupby(ev["record_key"]).transform("max")
    open_after = ev[~is_dec & (last_dec.isna() | (ev["effective_date"] > last_dec)).to_numpy()]
    decided = ev[is_dec].drop_duplicates("record_key", keep="last").set_index("record_key")
    pending = set(open_after["record_key"])
    opened = ev[~is_dec]
    cyc = pd.concat([open_after, opened[~opened["record_key"].isin(pending)]])
    return cyc, decided, pending


def _optional(frame: pd.DataFrame, col: str, default) -> pd.Series:
    return frame[col] if col in frame else pd.Series(default, index=frame.index)


def objection_calendar(
    changes: pd.DataFrame,
    as_of,
    severe_keys=frozenset(),
    court_keys=frozenset(),
) -> pd.DataFrame:
    """Where each record's latest objection stands on ``as_of`` (events effective by then).

    One row per record_key with objection events: received (filing, else the mark), marked and
    mark_due (1 working day), decided, result (rejected / upheld / partly), decision_due (3
    working days; 7 if assisted; 3 with no extension for a severe-list record in
    ``severe_keys``; plus recorded ``excluded_days`` of testing or expert review), the assisting
    unit's reply due 2 working days after its notice (when the notice is recorded), lateness of
    each, and state: pending, overdue (pending past its decision deadline), referred (a court
    listing in ``court_keys``: the court, its 认定单位, decides within Art. 35's three working days;
    past them it is overdue like any other), upheld, rejected or partly. calendar_unknown:
    a deadline fell in a year no holiday arrangement covers, so none is given.
    """
    if changes is None or changes.empty or "op" not in changes:
        return pd.DataFrame(columns=COLUMNS)
    day = pd.Timestamp(as_of)
    ev = _events(changes, day)
    if ev.empty:
        return pd.DataFrame(columns=COLUMNS)
    cyc, decided, pending = _cycle(ev)
    keys = pd.Index(sorted(set(ev["record_key"])), name="record_key")
    out = pd.DataFrame(index=keys)
    first = lambda op: cyc[cyc["op"] == op].groupby("record_key")["effective_date"].min()  # noqa: E731
    out["received"] = first("objection_filed").reindex(keys)
    out["marked"] = first("objection").reindex(keys)
    out["received"] = out["received"].fillna(out["marked"])
    pend = out.index.isin(pending)
    out["decided"] = decided["effective_date"].reindex(keys).where(~pend)
    res = decision_result(_optional(decided, "result", pd.NA))
    out["result"] = res.reindex(keys).astype("string").where(~pend, pd.NA)
    assisted = _optional(cyc, "assisted", False).fillna(False).astype(bool)
    out["assisted"] = assisted.groupby(cyc["record_key"]).any().reindex(keys, fill_value=False)
    excl = pd.to_numeric(_optional(cyc, "excluded_days", 0), errors="coerce").fillna(0)
    out["excluded_days"] = excl.groupby(cyc["record_key"]).max().reindex(keys, fill_value=0)
    for c in ("assist_notified", "assist_replied"):
        out[c] = pd.to_datetime(_optional(cyc, c, pd.NaT)).groupby(cyc["record_key"]).min()
        out[c] = out[c].reindex(keys)
    out["severe_list"] = out.index.isin(list(severe_keys))
    out["court_listing"] = out.index.isin(list(court_keys))
    prov = _optional(ev, "provider", pd.NA).groupby(ev["record_key"]).last()
    out["provider"] = prov.reindex(keys).astype("string")
    return _deadlines(out, day, pend)


def _deadlines(out: pd.DataFrame, day: pd.Timestamp, pend: np.ndarray) -> pd.DataFrame:
    n = len(out)
    out["mark_due"], unk_mark = shift_working(out["received"], np.full(n, MARK_DAYS))
    decide = np.where(
        out["severe_list"], SEVERE_LIST_DAYS, np.where(out["assisted"], ASSISTED_DAYS, DECIDE_DAYS)
    )
    decide = decide + out["excluded_days"].to_numpy(dtype=np.int64)
    out["decision_due"], unk_dec = shift_working(out["received"], decide)
    out["assist_due"], unk_assist = shift_working(
        out["assist_notified"], np.full(n, ASSIST_REPLY_DAYS)
    )
    court = out["court_listing"].to_numpy(dtype=bool)
    out["calendar_unknown"] = unk_mark | unk_dec | unk_assist
    out["mark_late"] = _late(out["marked"], out["mark_due"], day)
    out["decision_late"] = _late(out["decided"], out["decision_due"], day)
    out["assist_late"] = _late(out["assist_replied"], out["assist_due"], day)
    state = np.where(
        pend,
        np.where(out["decision_late"], "overdue", np.where(court, "referred", "pending")),
        out["result"].fillna("rejected").to_numpy(dtype=object),
    )
    # A court listing is never withdrawn by the platform's decision: the court removes it.
    state = np.where(court & ~pend & (state != "rejected"), "referred", state)
    out["state"] = pd.array(state, dtype="string")
    for c in ("received", "marked", "decided", "assist_notified", "assist_replied"):
        out[c] = pd.to_datetime(out[c]).astype("datetime64[s]")
    return out.reset_index()[COLUMNS]


def objections_of_the_night(rec: pd.DataFrame, chg: pd.DataFrame, as_of) -> pd.DataFrame:
    """Where every objection stands on the as-of date, with the provider of the record it is about
    (the unit that must decide it): what the run report lists as overdue per provider."""
    last = (
        rec.drop_duplicates("record_key", keep="last").set_index("record_key")
        if len(rec)
        else pd.DataFrame(columns=["provider", "item_code"])
    )
    items = last["item_code"] if "item_code" in last else pd.Series(dtype="string")
    cal = objection_calendar(
        chg,
        as_of,
        severe_keys=set(items.index[items.isin(SEVERE_LIST_ITEMS)]),
        court_keys=set(items.index[items.isin(COURT_LISTING_ITEMS)]),
    )
    prov = last["provider"] if "provider" in last else pd.Series(dtype="string")
    cal["record_provider"] = pd.Series(
        prov.reindex(cal["record_key"].to_numpy()).to_numpy(), index=cal.index, dtype="string"
    )
    return cal.sort_values("record_key", ignore_index=True)
