"""The composite public credit evaluation (公共信用综合评价): which records count on an as-of date,
what each contributes, the score, the tier A-D and the reasons.

Pure functions on frames; the policy is data (config/policy/*.yaml). Everything is vectorised:
there is no per-entity Python loop, so a province of millions rescores in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from scoring.common.catalogue import Catalogue
from scoring.common.config import CONFIG_DIR, content_hash, load_document
from scoring.common.law import GRADES, months_table, period_sets
from scoring.evaluation import canonical
from scoring.evaluation.objections import objection_calendar
from scoring.evaluation.signals import check_signals, policy_signals, signal_values
from scoring.history.policy_registry import approval, in_force_entry, seed_entries

DEFAULT_POLICY = CONFIG_DIR / "policy" / "v1.yaml"
DAYS_PER_MONTH = 30.4375
OUTPUT_SCHEMA_VERSION = "entity_score/1"
NO_RECORD_REASON = "R000 暂无计分信用记录 / no credit records count on this date"


@dataclass(frozen=True)
class Policy:
    doc: dict
    sha256: str
    # The registry entry it was chosen by (None: a policy file given directly).
    approval: dict | None = field(default=None, compare=False, hash=False)

    @classmethod
    def load(cls, path: Path | str = DEFAULT_POLICY) -> Policy:
        return cls.from_doc(load_document(path))

    @classmethod
    def from_doc(cls, doc: dict) -> Policy:
        p = cls(doc=doc, sha256=content_hash(doc))
        p.validate()
        return p

    def validate(self) -> None:
        dims = {d["id"] for d in self.doc["dimensions"]}
        for code, spec in self.doc["items"].items():
            if spec["dimension"] not in dims:
                raise ValueError(f"policy item {code}: unknown dimension {spec['dimension']}")
        cuts = [t["min_score"] for t in self.doc["tiers"]]
        if cuts != sorted(cuts, reverse=True) or [t["tier"] for t in self.doc["tiers"]] != [
            "A",
            "B",
            "C",
            "D",
        ]:
            raise ValueError("policy tiers must be A, B, C, D with falling cut scores")
        check_signals(self.doc)

    @classmethod
    def in_force(cls, as_of, registry: list[dict]) -> Policy:
        """The policy of the registry entry in force on the as-of date (``registry``: the entries
        of scoring.history.policy_registry as the run knows them), checked against its hash and
        carrying its approval."""
        entry = in_force_entry(registry, as_of)
        policy = cls.from_doc(entry["document"])
        if policy.sha256 != entry["sha256"]:
            raise ValueError(
                f"policy {entry['policy']} does not match the approved hash in the policy registry"
            )
        return replace(policy, approval=approval(entry, registry))

    @classmethod
    def shipped_in_force(cls, as_of) -> Policy:
        """The policy the shipped seed (config/policy/history.yaml) puts in force on a date, for
        callers with no store: the synthetic world's simulation, tests of the scoring rules."""
        return cls.in_force(as_of, seed_entries())

    @property
    def dimension_ids(self) -> list[str]:
        return [d["id"] for d in self.doc["dimensions"]]

    def items_frame(self) -> pd.DataFrame:
        rows = [
            {
                "item_code": code,
                "dimension": s["dimension"],
                "points": float(s["points"]),
                "half_life_months": (
                    np.nan if s.get("half_life_months") is None else float(s["half_life_months"])
                ),
                "reason_code": s["reason"],
                "text_zh": s["zh"],
                "text_en_one": s["en"][0],
                "text_en_many": s["en"][1],
            }
            for code, s in self.doc["items"].items()
        ]
        return pd.DataFrame(rows).sort_values("item_code", ignore_index=True)


# --------------------------------------------------------------------------- rights of the evaluated

CORRECTABLE = {
    "new_decision_date": "decision_date",
    "new_publicity_end_date": "publicity_end_date",
    "new_item_code": "item_code",
    "new_grade": "grade",
    "new_amount_yuan": "amount_yuan",
    "new_removal_date": "removal_date",
}


def _by_key(values: pd.Series, keys: pd.Series) -> np.ndarray:
    """``values`` (indexed by record key) looked up for each key; missing keys give NA. Works for
    empty lookups of any dtype (Series.map with an empty datetime Series raises TypeError)."""
    return values.reindex(keys.to_numpy()).to_numpy()


def apply_changes(records: pd.DataFrame, changes: pd.DataFrame, as_of) -> pd.DataFrame:
    """Apply the corrections, revocations, objections and repairs known at the cutoff.

    ``changes`` holds only what was known by the cutoff, so the as-known-then view is the old one.
    A correction (Art. 38) replaces any field it carries -- item, grade, amount, dates, subject --
    and a revocation withdraws the record, both from when they were learned, whatever the as-of
    date; a repair applies from its date; an objection (Art. 39) follows its working-day calendar
    (objections.objection_calendar): pending until decided, upheld without a correction withdraws
    the record as of the decision, rejected lets it count again from the decision. Adds: status,
    corrected, repaired_date, objection_pending, objection_state.
    """
    r = records.copy(deep=False)  # copy-on-write: the caller's frame is never modified
    r["status"] = "active"
    r["corrected"] = False
    r["repaired_date"] = pd.Series(pd.NaT, index=r.index, dtype="datetime64[s]")
    r["objection_pending"] = False
    r["objection_state"] = pd.Series(pd.NA, index=r.index, dtype="string")
    if changes is None or changes.empty or r.empty:
        return r
    order = [
        c for c in ("known_from", "batch_id", "source_file", "line_no") if c in changes.columns
    ]
    ch = changes.sort_values(order, kind="stable")
    key = r["record_key"]
    r.loc[key.isin(set(ch.loc[ch["op"] == "revoke", "record_key"])).to_numpy(), "status"] = (
        "revoked"
    )
    cor = ch[ch["op"] == "correct"]
    if len(cor):
        for new, col in CORRECTABLE.items():
            if new not in cor:
                continue
            latest = (
                cor[cor[new].notna()]
                .drop_duplicates("record_key", keep="last")
                .set_index("record_key")[new]
            )
            if latest.empty:
                continue
            v = pd.Series(_by_key(latest, key), index=r.index)
            if col.endswith("_date"):
                old = pd.to_datetime(r[col]) if col in r else pd.Series(pd.NaT, index=r.index)
                r[col] = old.where(v.isna(), pd.to_datetime(v)).astype("datetime64[s]")
            else:
                old = r[col] if col in r else pd.Series(pd.NA, index=r.index, dtype=v.dtype)
                r[col] = old.where(v.isna(), v)
        if "new_subject_code" in cor:
            latest = cor[cor["new_subject_code"].notna()].drop_duplicates("record_key", keep="last")
            v = pd.Series(
                _by_key(latest.set_index("record_key")["new_subject_code"], key),
                index=r.index,
                dtype="string",
            )
            person = v.str.fullmatch(r"\d{17}[\dX]").fillna(False) & (
                r["subject_type"] == "natural"
            ).fillna(False)
            r["uscc"] = r["uscc"].astype("string").where(v.isna() | person, v)
            if "id_number" in r:
                r["id_number"] = r["id_number"].astype("string").where(~person, v)
        r["corrected"] = key.isin(set(cor["record_key"])).to_numpy()
    rep = ch[ch["op"] == "repair"].groupby("record_key")["effective_date"].min()
    r["repaired_date"] = pd.to_datetime(
        pd.Series(_by_key(pd.to_datetime(rep), key), index=r.index)
    ).astype("datetime64[s]")
    cal = objection_calendar(ch, as_of).set_index("record_key")
    if len(cal):
        state = pd.Series(_by_key(cal["state"], key), index=r.index, dtype="string")
        r["objection_state"] = state
        r["objection_pending"] = state.isin(["pending", "overdue"]).to_numpy()
        withdrawn = (state == "upheld").fillna(False).to_numpy() & ~r["corrected"].to_numpy(
            dtype=bool
        )
        r.loc[withdrawn & (r["status"] == "active").to_numpy(), "status"] = "objection_upheld"
    return r


# --------------------------------------------------------------------------- which records count

EXCLUSION_ORDER = (
    "not_yet_decided",
    "superseded",
    "revoked",
    "objection_upheld",
    "removed_from_list",
    "repaired",
    "objection_pending",
    "expired",
    "not_scored_item",
    "not_an_entity",
)
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


def item_table(catalogue: Catalogue, policy: Policy, as_of) -> pd.DataFrame:
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


def _to_dates(days: np.ndarray) -> np.ndarray:
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


def _classify(
    records: pd.DataFrame, items: pd.DataFrame, policy: Policy, as_of, catalogue: Catalogue
) -> dict[str, np.ndarray]:
    """The engine behind classify_records: int arrays only, no copies of the frame."""
    as_day = np.int32((pd.Timestamp(as_of).normalize() - pd.Timestamp("1970-01-01")).days)
    n = len(records)
    item_idx = category_codes(records["item_code"], items["item_code"]).astype(np.int16)
    known = item_idx >= 0
    ii = np.where(known, item_idx, 0).astype(np.int16)
    dec = day_numbers(records, "decision_date")
    until = publicity_until(records, items, catalogue, _item_idx=item_idx, _dec=dec)

    def is_(col, value):
        return (
            (records[col] == value).fillna(False).to_numpy(dtype=bool)
            if col in records
            else np.zeros(n, bool)
        )

    pending = (
        records["objection_pending"].fillna(False).to_numpy(dtype=bool)
        if "objection_pending" in records
        else np.zeros(n, dtype=bool)
    )
    suspend = policy.doc["overrides"].get("pending_objection", "suspend") == "suspend"

    def repaired():
        r = day_numbers(records, "repaired_date")
        return (r != NA_DAY) & (r <= as_day)

    def removed():
        r = day_numbers(records, "removal_date")
        return (r != NA_DAY) & (r <= as_day)

    conditions = [
        lambda: (dec == NA_DAY) | (dec > as_day),
        lambda: is_("status", "superseded"),
        lambda: is_("status", "revoked"),
        lambda: is_("status", "objection_upheld"),
        removed,
        repaired,
        lambda: pending & suspend,
        lambda: (until != NA_DAY) & (until <= as_day),
        lambda: ~(known & items["scored"].to_numpy(dtype=bool)[ii]),
        lambda: (records["subject_type"] == "natural").fillna(True).to_numpy(dtype=bool),
    ]
    excluded = np.full(n, -1, dtype=np.int8)
    for code in range(len(conditions) - 1, -1, -1):  # the first applicable reason wins
        excluded[conditions[code]()] = code
    counts = excluded < 0
    del conditions
    # Decay and points only for the records that count (usually a minority of a long history).
    rows = np.flatnonzero(counts)
    c_ii = ii[rows]
    half_life = items["half_life_months"].to_numpy(dtype=np.float64)[c_ii]
    age = np.clip((as_day - dec[rows]).astype(np.float64), 0, None)
    with np.errstate(invalid="ignore"):
        w = np.where(np.isnan(half_life), 1.0, np.power(0.5, age / (half_life * DAYS_PER_MONTH)))
    del half_life, age
    return {
        "item_idx": item_idx,
        "counts": counts,
        "excluded": excluded,
        "until": until,
        "decision": dec,
        "objection": pending,
        "rows": rows,
        "weight": w,
        "points": items["points"].to_numpy(dtype=np.float64)[c_ii] * w,
    }


def classify_records(
    records: pd.DataFrame, catalogue: Catalogue, policy: Policy, as_of
) -> pd.DataFrame:
    """Annotate each record with whether it counts on ``as_of`` and, if not, why.

    ``records`` holds the versions visible at the knowledge cutoff, after apply_changes.
    Adds: counts, excluded_because, publicity_until (under the rules in force on the as-of date:
    Art. 37; NDRC Order 36 from 2026-04-01), weight (time decay) and points.
    """
    a = _classify(records, item_table(catalogue, policy, as_of), policy, as_of, catalogue)
    r = records.copy(deep=False)
    names = np.array(EXCLUSION_ORDER, dtype=object)
    r["excluded_because"] = pd.Series(
        np.where(a["excluded"] >= 0, names[np.clip(a["excluded"], 0, None)], None),
        index=r.index,
        dtype="string",
    )
    r["counts"] = a["counts"]
    r["objection_flag"] = a["objection"]
    r["publicity_until"] = _to_dates(a["until"])
    for col in ("weight", "points"):
        full = np.zeros(len(r))
        full[a["rows"]] = a[col]
        r[col] = full
    return r


# --------------------------------------------------------------------------- scores, tiers, reasons


def evaluate_inputs(
    entities: pd.DataFrame,
    records: pd.DataFrame,
    changes: pd.DataFrame,
    catalogue: Catalogue,
    policy: Policy,
    as_of,
) -> pd.DataFrame:
    """The whole evaluation from what was known: apply the rights of the evaluated, then score."""
    return score_entities(
        entities, apply_changes(records, changes, as_of), catalogue, policy, as_of
    )


def _arrow(s: pd.Series):
    """The Arrow array behind a string Series (no copy when it is Arrow-backed already)."""
    arr = getattr(s.array, "_pa_array", None)
    return arr if arr is not None else pa.array(s.astype("string").array._pa_array)


def positions(values: pd.Series, index: pd.Series, rows: np.ndarray | None = None) -> np.ndarray:
    """Position in ``index`` of each value (of ``values[rows]`` if given; -1 if absent), with one
    Arrow hash lookup (the value set's table is built once)."""
    arr = _arrow(values)
    if rows is not None:
        arr = arr.take(pa.array(rows))
    if not len(arr):
        return np.zeros(0, dtype=np.int32)
    return (
        pc.index_in(arr, value_set=_arrow(index))
        .fill_null(-1)
        .to_numpy(zero_copy_only=False)
        .astype(np.int32)
    )


def category_codes(values: pd.Series, categories, rows: np.ndarray | None = None) -> np.ndarray:
    """``pd.Categorical(values, categories=categories).codes`` (of ``values[rows]`` if given) by
    one Arrow hash lookup: a text column is not turned into Python objects first, and a
    categorical column is looked up by its categories only."""
    categories = pd.Series(list(categories), dtype="string")
    if isinstance(values.dtype, pd.CategoricalDtype):
        lookup = (
            positions(pd.Series(values.cat.categories.astype("string")), categories)
            if len(values.cat.categories)
            else np.zeros(0, dtype=np.int32)
        )
        codes = values.cat.codes.to_numpy()
        if rows is not None:
            codes = codes[rows]
        return np.where(codes >= 0, lookup[np.maximum(codes, 0)] if len(lookup) else -1, -1).astype(
            np.int32
        )
    return positions(values, categories, rows)


DENSE_GROUP_LIMIT = 1 << 28  # (entity, item) cells: 2 GB of dense tables at most


def _group_records(
    ent_idx: np.ndarray,
    item_idx: np.ndarray,
    points: np.ndarray,
    decision: np.ndarray,
    n_ent: int,
    n_items: int,
):
    """Per (entity, item) with counting records, in entity-then-item order: number of records,
    sum of points (added in record order) and latest decision day."""
    key = ent_idx.astype(np.int64) * n_items + item_idx
    if n_ent * n_items <= DENSE_GROUP_LIMIT:  # dense tables beat sorting tens of millions of keys
        size = n_ent * n_items
        counts = np.bincount(key, minlength=size)
        g_key = np.flatnonzero(counts)
        g_n = counts[g_key]
        del counts
        g_sum = np.bincount(key, weights=points, minlength=size)[g_key]
        latest = np.full(size, NA_DAY, dtype=np.int32)
        np.maximum.at(latest, key, decision)
        g_latest = latest[g_key]
        del latest
    else:
        order = np.argsort(key, kind="stable")
        key = key[order]
        starts = (
            np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, np.int64)
        )
        g_key = key[starts]
        g_n = np.diff(np.r_[starts, len(key)])
        g_sum = _sequential_sums(points[order], starts)
        g_latest = (
            np.maximum.reduceat(decision[order], starts) if len(key) else np.zeros(0, np.int32)
        )
    return g_key // n_items, (g_key % n_items).astype(np.int64), g_n, g_sum, g_latest


def _sequential_sums(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Segment sums added strictly in order (as bincount does), so both paths agree to the bit."""
    seg = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(values)]))
    return np.bincount(seg, weights=values, minlength=len(starts))


def active_entities(entities: pd.DataFrame, as_of) -> pd.DataFrame:
    """Entities registered by the as-of date and still in existence (存续), sorted by USCC."""
    active = (entities["entity_status"] == "存续").to_numpy(dtype=bool) & (
        pd.to_datetime(entities["registered_date"]) <= pd.Timestamp(as_of)
    ).to_numpy(dtype=bool)
    return entities[active].sort_values("uscc", ignore_index=True)


def score_entities(
    entities: pd.DataFrame, records: pd.DataFrame, catalogue: Catalogue, policy: Policy, as_of
) -> pd.DataFrame:
    """One row per active entity: score, dimension scores, tier, override, flags and reasons."""
    as_of_ts = pd.Timestamp(as_of)
    ent = active_entities(entities, as_of)
    n_ent = len(ent)
    items = item_table(catalogue, policy, as_of)
    n_items = len(items)
    a = _classify(records, items, policy, as_of, catalogue)
    # Entity positions only for the rows that matter: counting records and pending objections.
    need = np.flatnonzero(a["counts"] | a["objection"])
    e_need = positions(records["uscc"], ent["uscc"], need)
    e_rows = (
        e_need[np.isin(need, a["rows"], assume_unique=True)]
        if len(need) != len(a["rows"])
        else e_need
    )
    objection = np.zeros(n_ent, dtype=bool)
    obj = e_need[a["objection"][need] & (e_need >= 0)]
    objection[obj] = True
    ok = e_rows >= 0
    g_ent, g_item, g_n, g_sum, g_latest = _group_records(
        e_rows[ok],
        a["item_idx"][a["rows"][ok]].astype(np.int64),
        a["points"][ok],
        a["decision"][a["rows"][ok]],
        n_ent,
        n_items,
    )
    del a, need, e_need, e_rows, ok
    has_records = np.zeros(n_ent, dtype=bool)
    has_records[g_ent] = True
    # Learned candidates only (v1/v2 have none: no cost for them). The insufficient-information
    # rule below still looks at records only: a new entity with nothing that counts stays flagged.
    if any(v["points"] for v in policy_signals(policy.doc).values()):
        g_ent, g_item, g_n, g_sum, g_latest, items = add_signal_groups(
            policy, ent, items, as_of_ts, g_ent, g_item, g_n, g_sum, g_latest
        )

    dims = policy.dimension_ids
    g_dim = items["dim"].to_numpy()[g_item]
    dim_raw = np.bincount(
        g_ent * len(dims) + g_dim, weights=g_sum, minlength=n_ent * len(dims)
    ).reshape(n_ent, len(dims))
    bounds = np.array([(float(d["min"]), float(d["max"])) for d in policy.doc["dimensions"]])
    dim = np.clip(dim_raw, bounds[:, 0], bounds[:, 1])
    scale = policy.doc["scale"]
    total = float(scale["base"]) + dim.sum(axis=1)
    score = np.floor(np.clip(total, float(scale["min"]), float(scale["max"])) + 0.5).astype(
        np.int64
    )

    tiers = policy.doc["tiers"]
    tier = np.select([score >= t["min_score"] for t in tiers], [t["tier"] for t in tiers], "D")
    ov = policy.doc["overrides"]
    on_list = np.zeros(n_ent, dtype=bool)
    on_list[g_ent[items["severe_list"].to_numpy()[g_item]]] = True
    # Tier caps (v2): while a listed record counts, the entity is at best the cap's tier, whatever
    # its positive points. The override names the cap only where it changed the tier.
    capped = np.zeros(n_ent, dtype=np.int8)
    cap_ids = []
    for k, cap in enumerate(ov.get("tier_caps") or []):
        hit = np.zeros(n_ent, dtype=bool)
        hit[g_ent[np.isin(items["item_code"].to_numpy()[g_item], list(cap["items"]))]] = True
        lifted = hit & (tier < cap["max_tier"])  # "A" < "B" < "C" < "D": above the cap
        tier = np.where(lifted, cap["max_tier"], tier)
        capped[lifted & (capped == 0)] = k + 1
        cap_ids.append(cap["id"])
    tier = np.where(on_list, ov["severe_list_tier"], tier)
    new = (
        pd.to_datetime(ent["registered_date"])
        > as_of_ts - pd.Timedelta(days=int(ov["new_entity_days"]))
    ).to_numpy()
    insufficient = new & ~has_records
    tier = np.where(insufficient & ~on_list, ov["insufficient_information_tier"], tier)
    # Flags and override as categorical codes: no per-entity strings.
    flags = pd.Categorical.from_codes(
        np.array([0, 1, 3, 2], dtype=np.int8)[
            insufficient.astype(np.int8) + 2 * objection.astype(np.int8)
        ],
        categories=[
            "",
            "insufficient_information",
            "insufficient_information;objection_pending",
            "objection_pending",
        ],
    )

    out = pd.DataFrame(
        {
            "uscc": ent["uscc"].array,
            "name": ent["subject_name"].array,
            "division_code": ent["division_code"].array,
            "industry": ent["industry"].array,
            "eval_class": ent["eval_class"].array,
            "score": score,
            "tier": pd.Categorical(tier, categories=["A", "B", "C", "D"]),
        }
    )
    for j, d in enumerate(dims):
        out[f"dim_{d}"] = np.round(dim[:, j], 1) + 0.0  # +0.0 turns -0.0 into 0.0
    override = np.where(on_list, 1, np.where(capped > 0, capped + 1, 0)).astype(np.int8)
    out["override"] = pd.Categorical.from_codes(
        override, categories=["", "severe_dishonesty_list", *cap_ids]
    ).remove_unused_categories()
    out["flags"] = flags.remove_unused_categories()
    out["reasons"] = format_reasons(
        g_ent, g_item, g_n, g_sum, g_latest, items, n_ent, int(policy.doc["reasons"]["top_n"])
    )
    clean = policy.doc["reasons"].get("no_negative")
    if clean:  # say why a clean entity is clean, not only what would lower it
        negative = np.zeros(n_ent, dtype=bool)
        negative[g_ent[g_sum < 0]] = True
        out["reasons"] = say_no_negative(
            out["reasons"].array,
            ~negative,
            has_records,
            f"{clean['code']} {clean['zh']} / {clean['en']}",
        )
    return out


def add_signal_groups(
    policy: Policy,
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
    arr = _arrow(pd.Series(reasons))
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


# --------------------------------------------------------------------------- canonical output

CANONICAL_COLUMNS = [
    "uscc",
    "tier",
    "score",
    "dim_law_abiding",
    "dim_contracts_promises",
    "dim_qualifications_honours",
    "dim_social_responsibility",
    "dim_supervisory_risk",
    "override",
    "flags",
    "reasons",
]


def canonical_bytes(results: pd.DataFrame) -> bytes:
    """The canonical published result: sorted by USCC, fixed column order and float format, UTF-8, LF
    (scoring.evaluation.canonical defines it)."""
    return canonical.canonical_bytes(results, CANONICAL_COLUMNS)


def output_sha256(results: pd.DataFrame, path=None) -> str:
    """The sha256 of the canonical result (written to ``path`` as well, if given), in one pass."""
    return canonical.write_canonical(results, CANONICAL_COLUMNS, path)


def tier_counts(results: pd.DataFrame) -> dict[str, int]:
    vc = results["tier"].value_counts()
    return {t: int(vc.get(t, 0)) for t in "ABCD"}
