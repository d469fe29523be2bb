"""Reasons: the top contributions per entity in fixed bilingual wording, the no-negative-record
reason, and the policy's signals as extra (entity, rule) groups beside the records'."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from scoring.evaluation.lookup import arrow_array
from scoring.evaluation.publicity import day_numbers
from scoring.evaluation.signals import policy_signals, signal_values

NO_RECORD_REASON = "R000 暂无计分信用记录 / no credit records count on this date"


def add_signal_groups(
    policy,
    ent: pd.DataFrame,
    items: pd.DataFrame,
    as_of: pd.Timestamp,
    g_ent,
    g_item,
    g_n,
    g_sum,
    g_latest,
):
    """The policy's signals (scoring/evaluation/signals.py) as extra (entity, rule) groups beside
    the records', so they enter the dimension sums, the caps and the reasons like items do. A
    signal whose data the store does not have (representative changes) stops the run: ValueError."""
    # A signal at 0 points changes nothing and is no reason (a candidate may keep one "considered").
    sig = {k: v for k, v in policy_signals(policy.doc).items() if v["points"]}
    as_day = int((as_of.normalize() - pd.Timestamp("1970-01-01")).days)
    n_ent = len(ent)
    reg = day_numbers(ent, "registered_date")
    pairs = pd.DataFrame(
        {
            "row": g_ent,
            "item_code": items["item_code"].to_numpy()[g_item],
            "age_days": as_day - g_latest.astype(np.int64),
        }
    )
    values = signal_values(sig, np.full(n_ent, as_day), reg, pairs, None)
    dims = {d: i for i, d in enumerate(policy.dimension_ids)}
    extra = pd.DataFrame(
        [
            {
                "item_code": k,
                "pub_kind": -1,
                "months": 0,
                "grade": -1,
                "scored": True,
                "points": float(v["points"]),
                "half_life_months": np.nan,
                "dim": dims[v["dimension"]],
                "severe_list": False,
                "reason_code": v.get("reason", ""),
                "text_zh": v.get("zh", k),
                "text_en_one": (v.get("en") or [k, k])[0],
                "text_en_many": (v.get("en") or [k, k])[1],
                "signal": True,
            }
            for k, v in sig.items()
        ]
    )
    items = pd.concat([items.assign(signal=False), extra], ignore_index=True)
    first = len(items) - len(sig)
    e, j = np.nonzero(values)
    v = values[e, j]
    g_ent = np.r_[g_ent, e]
    g_item = np.r_[g_item, first + j].astype(np.int64)
    g_n = np.r_[g_n, np.round(v).astype(g_n.dtype)]
    g_sum = np.r_[g_sum, v * extra["points"].to_numpy()[j]]
    g_latest = np.r_[g_latest, np.full(len(e), as_day, dtype=g_latest.dtype)]
    order = np.lexsort((g_item, g_ent))  # entity, then item order, as the record groups are
    return g_ent[order], g_item[order], g_n[order], g_sum[order], g_latest[order], items


def say_no_negative(reasons, clean: np.ndarray, has_records: np.ndarray, text: str):
    """The no-negative-record reason first for clean entities (alone when they have no record)."""
    arr = arrow_array(pd.Series(reasons))
    lead = pa.scalar(text, type=arr.type)
    joined = pc.binary_join_element_wise(lead, arr, pa.scalar(" | ", type=arr.type))
    out = pc.if_else(pa.array(clean & ~has_records), lead, pc.if_else(pa.array(clean), joined, arr))
    return pd.arrays.ArrowStringArray(out)


def format_reasons(
    g_ent, g_item, g_n, g_sum, g_latest, items: pd.DataFrame, n_ent: int, top_n: int
):
    """Top contributions per entity with fixed bilingual wording, ranked by absolute effect
    (ties by item code). ``g_*`` are per (entity, item) groups in entity order. Texts are built
    once per distinct (item, count, date), then taken and joined per entity in Arrow's C++."""
    if not len(g_ent):
        return pd.arrays.ArrowStringArray(
            pa.array(np.full(n_ent, NO_RECORD_REASON, dtype=object), pa.string())
        )
    # Rank key, unique within an entity: larger |contribution| (to 1e-6 points) first, then item code.
    bits = max(1, int(len(items) - 1).bit_length())
    q = np.minimum(np.round(np.abs(g_sum) * 1e6), (1 << 31) - 1).astype(np.int64)
    rank_key = (q << bits) | ((1 << bits) - 1 - g_item)
    starts = np.flatnonzero(np.r_[True, g_ent[1:] != g_ent[:-1]])
    seg_len = np.diff(np.r_[starts, len(g_ent)])
    # Rank k: each entity's best remaining group (top_n passes of a segment max, no sort).
    chosen, ranks = [], []
    for k in range(top_n):
        best = np.maximum.reduceat(rank_key, starts)
        hit = np.flatnonzero((rank_key == np.repeat(best, seg_len)) & (rank_key >= 0))
        rank_key[hit] = -1
        chosen.append(hit)
        ranks.append(np.full(len(hit), k, dtype=np.int64))
    pick, rank = np.concatenate(chosen), np.concatenate(ranks)
    e = g_ent[pick]
    # One text per distinct (item, count, latest date): pack the triple into one integer key.
    packed = (
        (g_item[pick].astype(np.int64) << 42)
        | (np.minimum(g_n[pick], (1 << 21) - 1).astype(np.int64) << 21)
        | (g_latest[pick].astype(np.int64) + (1 << 20))
    )
    codes_, uniq = pd.factorize(packed, sort=True)
    u = pd.DataFrame(
        {
            "it": uniq >> 42,
            "n": (uniq >> 21) & ((1 << 21) - 1),
            "d": (uniq & ((1 << 21) - 1)) - (1 << 20),
        }
    )
    date = pd.to_datetime(u["d"].to_numpy().astype("datetime64[D]")).strftime("%Y-%m-%d")
    ni = u["n"].astype(str)
    row = items.iloc[u["it"].to_numpy()].reset_index(drop=True)
    en = np.where(u["n"] == 1, row["text_en_one"], row["text_en_many"])
    texts = (
        row["reason_code"]
        + " "
        + row["text_zh"]
        + ni
        + " 条，最近 "
        + date
        + " / "
        + ni
        + " "
        + en
        + ", latest "
        + date
    )
    if "signal" in row:  # a policy signal is a rule on the as-of date, not a count of records
        rule = row["reason_code"] + " " + row["text_zh"] + " / " + en
        texts = texts.where(~row["signal"].fillna(False).astype(bool), rule)
    texts = texts.tolist() + [NO_RECORD_REASON]
    # Each entity's texts in rank order (ranks are dense), or the no-record text: one list per entity.
    per_entity = np.bincount(e, minlength=n_ent)
    offsets = np.r_[0, np.cumsum(np.maximum(per_entity, 1))]
    take = np.full(offsets[-1], len(texts) - 1, dtype=np.int64)
    take[offsets[e] + rank] = codes_
    text_bytes = np.array([len(t.encode()) for t in texts], dtype=np.int64)
    big = int(text_bytes[take].sum()) + 3 * len(take) >= (1 << 31) - 1
    dictionary = pa.array(texts, type=pa.large_string() if big else pa.string())
    small = len(take) < (1 << 31) - 1
    lists = (pa.ListArray if small else pa.LargeListArray).from_arrays(
        pa.array(offsets, pa.int32() if small else pa.int64()), pc.take(dictionary, pa.array(take))
    )
    return pd.arrays.ArrowStringArray(pc.binary_join(lists, " | "))
