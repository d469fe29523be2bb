"""Publicity periods in the engine's int32 day numbers: which day each record stops being
published (Art. 37), and the per-item table the engine reads on an as-of date."""

from __future__ import annotations

import numpy as np
import pandas as pd

from scoring.common.catalogue import Catalogue
from scoring.common.law import GRADES, months_table, period_bounds, period_sets, set_index_on
from scoring.evaluation.lookup import category_codes

PUB_KINDS = ("none", "rules", "fixed", "listed", "validity")


def add_months(dates: np.ndarray, months: np.ndarray) -> np.ndarray:
    """dates + months, clipped to the end of the month (like DateOffset(months=...)), vectorised."""
    d = np.asarray(dates, dtype="datetime64[D]")
    ym = d.astype("datetime64[M]")
    day = (d - ym.astype("datetime64[D]")).astype(np.int64)
    target = ym + np.asarray(months, dtype=np.int64).astype("timedelta64[M]")
    dim = ((target + 1).astype("datetime64[D]") - target.astype("datetime64[D]")).astype(np.int64)
    out = target.astype("datetime64[D]") + np.minimum(day, dim - 1).astype("timedelta64[D]")
    return np.where(np.isnat(d), np.datetime64("NaT", "D"), out)


def add_months_by_table(
    days: np.ndarray, group: np.ndarray, group_months: np.ndarray
) -> np.ndarray:
    """days[i] + group_months[group[i]] months on int32 day numbers (NA_DAY kept), for millions of
    rows: dates span a few thousand days and there are few groups, so each (group, day) pair is
    computed once and gathered."""
    valid = days != NA_DAY
    if not valid.any():
        return days.copy()
    lo, hi = int(days[valid].min()), int(days[valid].max())
    span = np.arange(lo, hi + 1).astype("datetime64[D]")
    table = np.stack([add_months(span, np.full(len(span), m)) for m in group_months]).astype(
        np.int64
    )
    table = np.concatenate(
        [table.astype(np.int32), np.full((len(group_months), 1), NA_DAY, np.int32)], axis=1
    )
    offset = days - np.int32(lo)
    offset[~valid] = hi - lo + 1  # the NA column
    return table[group, offset]


def item_table(catalogue: Catalogue, policy, as_of) -> pd.DataFrame:
    """One row per item code (sorted), with everything the engine needs on the as-of date."""
    rules = catalogue.rules_in_force(pd.Timestamp(as_of).date())
    pol = policy.items_frame().set_index("item_code")
    dims = {d: i for i, d in enumerate(policy.dimension_ids)}
    codes = sorted(set(catalogue.item_codes) | set(pol.index))
    rows = []
    for code in codes:
        spec = next((i for i in catalogue.items if i["code"] == code), {})
        pub = spec.get("publicity", "none")
        kind = pub if isinstance(pub, str) else "fixed"
        sev = spec.get("severity", "none")
        months = {
            "rules": rules[sev]["max_months"] if sev in rules else 0,
            "fixed": pub["months"] if isinstance(pub, dict) else 0,
            "listed": spec.get("listing_max_months") or 1200,
        }.get(kind, 0)  # no term: 100 years
        p = pol.loc[code] if code in pol.index else None
        rows.append(
            {
                "item_code": code,
                "pub_kind": PUB_KINDS.index(kind),
                "months": int(months),
                "grade": GRADES.index(sev) if sev in GRADES else -1,
                "scored": p is not None,
                "points": float(p["points"]) if p is not None else 0.0,
                "half_life_months": float(p["half_life_months"]) if p is not None else np.nan,
                "dim": dims.get(p["dimension"], -1) if p is not None else -1,
                "severe_list": code in set(policy.doc["overrides"]["severe_list_items"]),
                "finding_required": bool(spec.get("finding_required", False)),
                "reason_code": p["reason_code"] if p is not None else "",
                "text_zh": p["text_zh"] if p is not None else code,
                "text_en_one": p["text_en_one"] if p is not None else code,
                "text_en_many": p["text_en_many"] if p is not None else code,
            }
        )
    return pd.DataFrame(rows)


NA_DAY = np.iinfo(np.int32).min  # "no date" in the engine's int32 day numbers


def day_numbers(frame: pd.DataFrame, col: str) -> np.ndarray:
    """A date column as int32 days since 1970-01-01 (NA_DAY where missing): half the memory of
    datetime64 and plain integer comparisons."""
    if col not in frame:
        return np.full(len(frame), NA_DAY, dtype=np.int32)
    d = pd.to_datetime(frame[col]).to_numpy()
    per_day = np.timedelta64(1, "D") // np.timedelta64(1, np.datetime_data(d.dtype)[0])
    raw = d.view(np.int64)
    out = (raw // per_day).astype(np.int32)  # floor: days before 1970 stay on their own date
    out[raw == np.iinfo(np.int64).min] = NA_DAY  # NaT
    return out


def to_dates(days: np.ndarray) -> np.ndarray:
    out = days.astype(np.int64).astype("datetime64[D]")
    out[days == NA_DAY] = np.datetime64("NaT")
    return out


def publicity_until(
    records: pd.DataFrame,
    items: pd.DataFrame,
    catalogue: Catalogue,
    _item_idx: np.ndarray | None = None,
    _dec: np.ndarray | None = None,
) -> np.ndarray:
    """The day each record stops being published (int32 days; NA_DAY = no end).

    Rule-governed records: the maximum for the record's grade (its own, else the item's) under the
    period set in force on its DECISION date; a shorter end the provider gives wins. Listings: the
    end the source gives (or the catalogue's maximum for the list), never an invented term.
    Licences: their validity. Shared by the engine and calibration."""
    item_idx = (
        category_codes(records["item_code"], items["item_code"]).astype(np.int16)
        if _item_idx is None
        else _item_idx
    )
    known = item_idx >= 0
    ii = np.where(known, item_idx, 0).astype(np.int16)
    pub_kind = np.where(known, items["pub_kind"].to_numpy(dtype=np.int8)[ii], 0).astype(np.int8)
    dec = day_numbers(records, "decision_date") if _dec is None else _dec
    until = add_months_by_table(dec, ii, items["months"].to_numpy())
    rules = pub_kind == PUB_KINDS.index("rules")
    if rules.any():
        rows = np.flatnonzero(rules)
        grade = items["grade"].to_numpy()[ii[rows]]
        if "grade" in records:
            own = category_codes(records["grade"], GRADES, rows)
            grade = np.where(own >= 0, own, grade)
        grade = np.where(grade >= 0, grade, GRADES.index("general"))
        starts = np.array(
            [
                (pd.Timestamp(str(r["effective_from"])) - pd.Timestamp("1970-01-01")).days
                for r in period_sets(catalogue.doc)
            ]
        )
        set_idx = np.clip(np.searchsorted(starts, dec[rows], side="right") - 1, 0, len(starts) - 1)
        group = (set_idx * len(GRADES) + grade).astype(np.int64)
        until[rows] = add_months_by_table(dec[rows], group, months_table(catalogue.doc).reshape(-1))
    given = day_numbers(records, "publicity_end_date")
    listed = pub_kind == PUB_KINDS.index("listed")
    shorter = (rules | listed) & (given != NA_DAY) & (given < until)
    until[shorter] = given[shorter]
    validity = pub_kind == PUB_KINDS.index("validity")
    until[validity] = day_numbers(records, "valid_to_date")[validity]
    until[pub_kind == PUB_KINDS.index("none")] = NA_DAY
    return until


def _rule_grades(records: pd.DataFrame, catalogue: Catalogue) -> tuple[np.ndarray, np.ndarray]:
    """(rows governed by the period sets, their grade: own, else the item's severity)."""
    spec = {i["code"]: i for i in catalogue.items}
    item = records["item_code"].astype("string").fillna("")
    # Asked once per distinct item (a few dozen), not once per record.
    codes, items = pd.factorize(item.to_numpy(dtype=object))
    per_item = [spec.get(c, {}) for c in items]
    rules = np.array([i.get("publicity") == "rules" for i in per_item], dtype=bool)[codes]
    sev = pd.Series(
        np.array([i.get("severity", "general") for i in per_item], dtype=object)[codes],
        index=item.index,
        dtype=object,
    )
    own = (
        records["grade"].astype("string")
        if "grade" in records
        else pd.Series(pd.NA, index=item.index)
    )
    grade = own.where(own.isin(GRADES), sev).fillna("general")
    return rules, grade.to_numpy(dtype=object)


def repair_days(records: pd.DataFrame, catalogue: Catalogue, dec: np.ndarray) -> np.ndarray:
    """The day each repair takes effect (int32; NA_DAY = none): its date, but never before the
    minimum publicity period has run (Order 58 / Order 36: 最短公示期届满后，方可申请信用修复), with
    the set's field minimum (Order 58: one year for work safety and the other named fields)."""
    rep = day_numbers(records, "repaired_date")
    has = rep != NA_DAY
    if not has.any():
        return rep
    rules, grade = _rule_grades(records, catalogue)
    rows = np.flatnonzero(has & rules & (dec != NA_DAY))
    if len(rows):
        dates = pd.Series(to_dates(dec[rows]))
        prov = records["provider"].to_numpy()[rows] if "provider" in records else None
        kind = records["violation_type"].to_numpy()[rows] if "violation_type" in records else None
        lo, _, _ = period_bounds(catalogue.doc, dates, grade[rows], prov, kind)
        earliest = _months_after(dec[rows], lo)
        rep = rep.copy()
        rep[rows] = np.maximum(rep[rows], earliest)
    return rep


def _months_after(days: np.ndarray, months: np.ndarray) -> np.ndarray:
    """days + months (per row) on int32 day numbers, each distinct month count computed once."""
    out = np.empty(len(days), dtype=np.int32)
    for m in np.unique(months):
        hit = months == m
        out[hit] = add_months_by_table(
            days[hit], np.zeros(hit.sum(), dtype=np.int64), np.array([m])
        )
    return out


def minor_records(records: pd.DataFrame, catalogue: Catalogue, dec: np.ndarray) -> np.ndarray:
    """Records graded minor (轻微失信) under a period set with a minor class (Order 36 from
    2026-04-01: "轻微失信信息原则上不予公示"): kept and shown with their period of at most three
    months, never scored as a general record."""
    if "grade" not in records:
        return np.zeros(len(records), dtype=bool)
    minor = (records["grade"].astype("string") == "minor").fillna(False).to_numpy(dtype=bool)
    if not minor.any():
        return minor
    sets = period_sets(catalogue.doc)
    has_minor = np.array([bool(r.get("minor_class", False)) for r in sets])
    idx = set_index_on(catalogue.doc, pd.Series(to_dates(dec)))
    return minor & has_minor[idx] & (dec != NA_DAY)
