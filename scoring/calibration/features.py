"""Point-in-time features: an entity's records as known and in force the day before an inspection,
and their decayed counts under a policy's half-lives."""

from __future__ import annotations

import numpy as np
import pandas as pd

from scoring.common.catalogue import Catalogue
from scoring.evaluation.evaluate import (
    DAYS_PER_MONTH,
    NA_DAY,
    Policy,
    day_numbers,
    item_table,
    publicity_until,
)

INSPECTION_ITEMS = ("INSPECTION_PASS", "INSPECTION_FAIL")
TIERS = ("A", "B", "C", "D")
# --------------------------------------------------------------------------- point-in-time features


def point_in_time_records(
    inspections: pd.DataFrame,
    records: pd.DataFrame,
    changes: pd.DataFrame,
    catalogue: Catalogue,
    policy: Policy,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The records behind each inspection's features, before decay: (rows, pairs, scored items).

    rows: one per inspection (uscc, decision_date, label). pairs: one per scored record known and
    in force the day before that inspection (row, item_code, age_days). Nothing dated or learned on
    or after the inspection day counts. Kept apart from decay so that half-lives can be learned
    without rebuilding the set.
    """
    items = item_table(catalogue, policy, "2100-01-01")
    scored = items[items["scored"] & ~items["item_code"].isin(INSPECTION_ITEMS)][
        "item_code"
    ].tolist()
    scored = sorted(set(scored) | {"INSPECTION_FAIL", "INSPECTION_PASS"})
    ins = inspections.reset_index(drop=True).assign(row=lambda d: np.arange(len(d)))
    as_day = day_numbers(
        ins.assign(d=pd.to_datetime(ins["decision_date"]) - pd.Timedelta(days=1)), "d"
    )
    rec = records[records["uscc"].isin(set(ins["uscc"]))]
    pairs = ins[["row", "uscc"]].merge(rec, on="uscc", how="inner")
    day = as_day[pairs["row"].to_numpy()]
    dec = day_numbers(pairs, "decision_date")
    # Publicity under the period set in force on each record's decision date (as the engine does).
    until = publicity_until(pairs, items, catalogue)
    # Valid time decides: a record counts if decided before the inspection day and still in force.
    # (Knowledge time cannot: the history before go-live was loaded in one backfill, so its
    # known_from is the load date. Everything used is known by the training cutoff.)
    ok = (dec != NA_DAY) & (dec < day + 1) & ((until == NA_DAY) | (until > day))
    if changes is not None and len(changes):
        ch = changes.assign(
            eff=day_numbers(changes, "effective_date"), kn=day_numbers(changes, "known_from")
        )
        for op in ("repair", "revoke"):
            c = ch[ch["op"] == op].groupby("record_key").agg(eff=("eff", "min"), kn=("kn", "min"))
            eff = pairs["record_key"].map(c["eff"]).fillna(NA_DAY).to_numpy(np.int64)
            kn = pairs["record_key"].map(c["kn"]).fillna(NA_DAY).to_numpy(np.int64)
            # A revoked record was never true; a repair counts from its date.
            hit = (kn != NA_DAY) & ((eff <= day) if op == "repair" else True)
            ok &= ~hit
    ok &= pairs["item_code"].isin(scored).to_numpy()
    age = np.clip(day - dec, 0, None)
    out_pairs = pd.DataFrame(
        {
            "row": pairs["row"].to_numpy()[ok],
            "item_code": pairs["item_code"].to_numpy()[ok],
            "age_days": age[ok].astype(np.int32),
        }
    )
    rows = ins[["uscc", "decision_date"]].copy()
    rows["label"] = (ins["item_code"] == "INSPECTION_FAIL").astype(int).to_numpy()
    return rows, out_pairs, scored


def decayed_counts(
    pairs: pd.DataFrame, n_rows: int, features: list[str], half_lives: dict
) -> np.ndarray:
    """Sum per row and item of 0.5 ** (age / half-life) (1 per record where the half-life is None
    or NaN): the engine's weight of each record on the day before the inspection."""
    col = pd.Categorical(pairs["item_code"], categories=features).codes
    half = np.array(
        [np.nan if half_lives.get(f) is None else float(half_lives[f]) for f in features]
    )[col]
    with np.errstate(invalid="ignore"):
        age = pairs["age_days"].to_numpy(np.float64)
        w = np.where(np.isnan(half), 1.0, np.power(0.5, age / (half * DAYS_PER_MONTH)))
    X = np.zeros((n_rows, len(features)))
    np.add.at(X, (pairs["row"].to_numpy(), col), w)
    return X


def policy_half_lives(policy: Policy) -> dict:
    return {code: spec.get("half_life_months") for code, spec in policy.doc["items"].items()}


def point_in_time_features(
    inspections: pd.DataFrame,
    records: pd.DataFrame,
    changes: pd.DataFrame,
    catalogue: Catalogue,
    policy: Policy,
) -> tuple[pd.DataFrame, list[str]]:
    """One row per inspection: decayed counts (the policy's half-lives) per scored item of the
    entity's records known and in force the day before the inspection, and the label."""
    rows, pairs, scored = point_in_time_records(inspections, records, changes, catalogue, policy)
    out = rows.copy()
    out[scored] = decayed_counts(pairs, len(rows), scored, policy_half_lives(policy))
    return out, scored
