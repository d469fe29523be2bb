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

from scoring.common.catalogue import Catalogue
from scoring.common.config import CONFIG_DIR, content_hash, load_document
from scoring.evaluation import canonical
from scoring.evaluation.lookup import arrow_array, category_codes, positions  # noqa: F401 (re-exported)
from scoring.evaluation.publicity import (  # noqa: F401 (re-exported)
    NA_DAY,
    PUB_KINDS,
    add_months,
    day_numbers,
    item_table,
    minor_records,
    publicity_until,
    repair_days,
    to_dates,
)
from scoring.evaluation.reasons import (  # noqa: F401 (re-exported)
    NO_RECORD_REASON,
    add_signal_groups,
    format_reasons,
    say_no_negative,
)
from scoring.evaluation.rights import apply_changes  # noqa: F401 (re-exported)
from scoring.evaluation.signals import check_signals, policy_signals
from scoring.history.policy_registry import approval, in_force_entry, seed_entries

DEFAULT_POLICY = CONFIG_DIR / "policy" / "v1.yaml"
DAYS_PER_MONTH = 30.4375
# The shipped v1 and v2 (config/policy/history.yaml) predate the rule that an objection marks and
# never suspends; their hashes are pinned in the registry and in past manifests, so they keep
# loading and their ``pending_objection: suspend`` is ignored. Any other document is refused.
GRANDFATHERED_SUSPEND = frozenset(
    {
        "968af1fc8e35841dd601c06a2e67a7bda45425206c666ccbdca5bafff37453f2",
        "3c85c23ecadc35afe26182bd6c2b3a61578fc70a36aa5ea904db70cd5a074bdb",
    }
)
OUTPUT_SCHEMA_VERSION = "entity_score/1"


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
        asks = (self.doc.get("overrides") or {}).get("pending_objection", "count")
        if asks != "count" and self.sha256 not in GRANDFATHERED_SUSPEND:
            raise ValueError(
                f"policy asks pending_objection: {asks}; 《黑龙江省社会信用条例》 Art. 39 has an "
                "objection marked (异议标注), never suspended: use pending_objection: count"
            )

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


# --------------------------------------------------------------------------- which records count

EXCLUSION_ORDER = (
    "not_yet_decided",
    "superseded",
    "revoked",
    "objection_upheld",
    "removed_from_list",
    "repaired",
    "expired",
    "minor_record",
    "no_department_finding",
    "not_scored_item",
    "not_an_entity",
)


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

    # Art. 39: an objection marks the record (flags, explain, publication); it never suspends it.
    pending = (
        records["objection_pending"].fillna(False).to_numpy(dtype=bool)
        if "objection_pending" in records
        else np.zeros(n, dtype=bool)
    )
    repair_from = repair_days(records, catalogue, dec)

    def removed():
        r = day_numbers(records, "removal_date")
        return (r != NA_DAY) & (r <= as_day)

    conditions = [
        lambda: (dec == NA_DAY) | (dec > as_day),
        lambda: is_("status", "superseded"),
        lambda: is_("status", "revoked"),
        lambda: is_("status", "objection_upheld"),
        removed,
        lambda: (repair_from != NA_DAY) & (repair_from <= as_day),
        # Published through its last day (Civil Code Arts. 201-203: the period's last day counts).
        lambda: (until != NA_DAY) & (until < as_day),
        lambda: minor_records(records, catalogue, dec),
        lambda: items["finding_required"].to_numpy(dtype=bool)[ii] & known,
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
    r["publicity_until"] = to_dates(a["until"])
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
    dim, score = _scores(policy, items, g_ent, g_item, g_sum, n_ent)

    tier, on_list, capped, cap_ids, insufficient = _tiers(
        policy, ent, items, score, g_ent, g_item, has_records, as_of_ts
    )
    out = _result_frame(
        ent, score, tier, dim, dims, on_list, capped, cap_ids, insufficient, objection
    )
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


def _result_frame(ent, score, tier, dim, dims, on_list, capped, cap_ids, insufficient, objection):
    """The result columns before the reasons; flags and override as categorical codes (no
    per-entity strings)."""
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
    return out


def _scores(policy: Policy, items, g_ent, g_item, g_sum, n_ent: int):
    """Dimension sums clipped to their bounds, and the 0-1000 score rounded half up."""
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
    return dim, score


def _tiers(policy: Policy, ent, items, score, g_ent, g_item, has_records, as_of_ts):
    """Tier by cut score, then the caps, the severe-list override and insufficient information.
    Returns (tier, on_list, capped: 1-based cap index or 0, cap ids, insufficient)."""
    n_ent = len(ent)
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
    return tier, on_list, capped, cap_ids, insufficient


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
