"""The composite public credit evaluation (公共信用综合评价): which records count on an as-of date,
what each contributes, the score, the tier A-D and the reasons.

Pure functions on frames; the policy is data (config/policy/*.yaml). Everything is vectorised:
there is no per-entity Python loop, so a province of millions rescores in seconds.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .catalogue import CONFIG_DIR, Catalogue, content_hash, load_document

DEFAULT_POLICY = CONFIG_DIR / "policy" / "v1.yaml"
DAYS_PER_MONTH = 30.4375
OUTPUT_SCHEMA_VERSION = "entity_score/1"
NO_RECORD_REASON = "R000 暂无计分信用记录 / no credit records count on this date"


@dataclass(frozen=True)
class Policy:
    doc: dict
    sha256: str

    @classmethod
    def load(cls, path: Path | str = DEFAULT_POLICY) -> "Policy":
        return cls.from_doc(load_document(path))

    @classmethod
    def from_doc(cls, doc: dict) -> "Policy":
        p = cls(doc=doc, sha256=content_hash(doc))
        p.validate()
        return p

    def validate(self) -> None:
        dims = {d["id"] for d in self.doc["dimensions"]}
        for code, spec in self.doc["items"].items():
            if spec["dimension"] not in dims:
                raise ValueError(f"policy item {code}: unknown dimension {spec['dimension']}")
        cuts = [t["min_score"] for t in self.doc["tiers"]]
        if cuts != sorted(cuts, reverse=True) or [t["tier"] for t in self.doc["tiers"]] != ["A", "B", "C", "D"]:
            raise ValueError("policy tiers must be A, B, C, D with falling cut scores")

    @property
    def dimension_ids(self) -> list[str]:
        return [d["id"] for d in self.doc["dimensions"]]

    def items_frame(self) -> pd.DataFrame:
        rows = [{"item_code": code, "dimension": s["dimension"], "points": float(s["points"]),
                 "half_life_months": (np.nan if s.get("half_life_months") is None else float(s["half_life_months"])),
                 "reason_code": s["reason"], "text_zh": s["zh"], "text_en_one": s["en"][0],
                 "text_en_many": s["en"][1]}
                for code, s in self.doc["items"].items()]
        return pd.DataFrame(rows).sort_values("item_code", ignore_index=True)


# --------------------------------------------------------------------------- rights of the evaluated

def apply_changes(records: pd.DataFrame, changes: pd.DataFrame, as_of) -> pd.DataFrame:
    """Apply the corrections, revocations, objections and repairs known at the cutoff.

    A revocation or correction applies from when we learned it (its presence in ``changes``, which
    holds only what was known by the cutoff), whatever the as-of date; a repair applies from its
    effective date; an objection is pending on the as-of date if its latest mark or closure
    effective by then is a mark. Adds: status, corrected, repaired_date, objection_pending.
    """
    as_of = pd.Timestamp(as_of)
    r = records.copy()
    r["status"] = "active"
    r["corrected"] = False
    r["repaired_date"] = pd.Series(pd.NaT, index=r.index, dtype="datetime64[s]")
    r["objection_pending"] = False
    if changes is None or changes.empty or r.empty:
        return r
    order = [c for c in ("known_from", "batch_id", "source_file", "line_no") if c in changes.columns]
    ch = changes.sort_values(order, kind="stable")
    key = r["record_key"]
    r.loc[key.isin(set(ch.loc[ch["op"] == "revoke", "record_key"])).to_numpy(), "status"] = "revoked"
    cor = ch[ch["op"] == "correct"].drop_duplicates("record_key", keep="last").set_index("record_key")
    if len(cor):
        for col, new in (("decision_date", "new_decision_date"), ("publicity_end_date", "new_publicity_end_date")):
            v = pd.to_datetime(key.map(cor[new]))
            r[col] = pd.to_datetime(r[col]).where(v.isna(), v).astype("datetime64[s]")
        r["corrected"] = key.isin(cor.index).to_numpy()
    rep = ch[ch["op"] == "repair"].groupby("record_key")["effective_date"].min()
    r["repaired_date"] = pd.to_datetime(key.map(rep)).astype("datetime64[s]")
    obj = ch[ch["op"].isin(["objection", "objection_closed"]) & (pd.to_datetime(ch["effective_date"]) <= as_of)]
    last = obj.sort_values(["effective_date"], kind="stable").drop_duplicates("record_key", keep="last")
    r["objection_pending"] = key.isin(set(last.loc[last["op"] == "objection", "record_key"])).to_numpy()
    return r


# --------------------------------------------------------------------------- which records count

EXCLUSION_ORDER = ("not_yet_decided", "superseded", "revoked", "repaired", "objection_pending",
                   "expired", "not_scored_item", "not_an_entity")


def classify_records(records: pd.DataFrame, catalogue: Catalogue, policy: Policy, as_of) -> pd.DataFrame:
    """Annotate each record with whether it counts on ``as_of`` and, if not, why.

    ``records`` holds the versions visible at the knowledge cutoff (the caller picked them);
    columns used: item_code, subject_type, decision_date, publicity_end_date, valid_to_date and,
    when present, status / repaired_date / objection_pending.
    Adds: counts (bool), excluded_because (str or NA), publicity_until (date), weight (decay).
    """
    as_of = pd.Timestamp(as_of)
    r = records.copy()
    n = len(r)
    items = catalogue.items_frame().set_index("item_code")
    pol = policy.items_frame().set_index("item_code")
    dec = pd.to_datetime(r["decision_date"])
    pub_kind = r["item_code"].map(items["publicity_kind"])
    severity = r["item_code"].map(items["severity"])

    # Publicity end under the rules in force on the as-of date (Art. 37; NDRC Order 36 from 2026-04-01).
    rules = catalogue.rules_in_force(as_of.date())
    max_months = severity.map({s: rules[s]["max_months"] for s in ("minor", "general", "severe")})
    until = pd.Series(pd.NaT, index=r.index, dtype="datetime64[s]")
    for months in sorted(pd.unique(max_months.dropna())):
        sel = ((pub_kind == "rules") & (max_months == months)).to_numpy()
        until[sel] = dec[sel] + pd.DateOffset(months=int(months))
    given_end = pd.to_datetime(r.get("publicity_end_date", pd.Series(pd.NaT, index=r.index)))
    until = until.where(~((pub_kind == "rules") & given_end.notna() & (given_end < until)), given_end)
    fixed = r["item_code"].map(items["publicity_months"])
    for months in sorted(pd.unique(fixed.dropna())):
        sel = ((pub_kind == "fixed") & (fixed == months)).to_numpy()
        until[sel] = dec[sel] + pd.DateOffset(months=int(months))
    listing = r["item_code"].map({i["code"]: i.get("listing_max_months") for i in catalogue.items})
    for months in sorted(pd.unique(listing.dropna())):
        sel = ((pub_kind == "listed") & (listing == months)).to_numpy()
        until[sel] = dec[sel] + pd.DateOffset(months=int(months))
    valid_to = pd.to_datetime(r.get("valid_to_date", pd.Series(pd.NaT, index=r.index)))
    sel = (pub_kind == "validity").to_numpy()
    until[sel] = valid_to[sel]
    r["publicity_until"] = until

    status = r["status"] if "status" in r else pd.Series("active", index=r.index)
    repaired = pd.to_datetime(r["repaired_date"]) if "repaired_date" in r else pd.Series(pd.NaT, index=r.index)
    pending = (r["objection_pending"].fillna(False).astype(bool) if "objection_pending" in r
               else pd.Series(False, index=r.index))
    suspend_pending = policy.doc["overrides"].get("pending_objection", "suspend") == "suspend"

    reasons = [
        ("not_yet_decided", (dec > as_of).fillna(True)),
        ("superseded", (status == "superseded").fillna(False)),
        ("revoked", (status == "revoked").fillna(False)),
        ("repaired", (repaired <= as_of).fillna(False)),
        ("objection_pending", pending & suspend_pending),
        ("expired", (until <= as_of).fillna(False) & (pub_kind != "none")),
        ("not_scored_item", ~r["item_code"].isin(pol.index)),
        ("not_an_entity", (r["subject_type"] == "natural").fillna(True)),
    ]
    excluded = pd.Series(pd.NA, index=r.index, dtype="string")
    for name, mask in reversed(reasons):  # the first applicable reason wins
        excluded = excluded.mask(mask.to_numpy(), name)
    r["excluded_because"] = excluded
    r["counts"] = excluded.isna().to_numpy()
    r["objection_flag"] = pending.to_numpy()

    half_life = r["item_code"].map(pol["half_life_months"])
    age_days = (as_of - dec).dt.days.clip(lower=0).astype("float64")
    weight = np.where(half_life.isna(), 1.0, np.power(0.5, age_days / (half_life * DAYS_PER_MONTH)))
    r["weight"] = np.where(r["counts"], weight, 0.0)
    r["points"] = r["item_code"].map(pol["points"]).fillna(0.0).to_numpy() * r["weight"]
    assert len(r) == n
    return r


# --------------------------------------------------------------------------- scores, tiers, reasons

def score_entities(entities: pd.DataFrame, records: pd.DataFrame, catalogue: Catalogue, policy: Policy,
                   as_of) -> pd.DataFrame:
    """One row per active entity: score, dimension scores, tier, override, flags and reasons."""
    as_of = pd.Timestamp(as_of)
    ent = entities[(entities["entity_status"] == "存续") &
                   (pd.to_datetime(entities["registered_date"]) <= as_of)]
    ent = ent.sort_values("uscc", ignore_index=True)
    cls = classify_records(records, catalogue, policy, as_of)
    c = cls[cls["counts"] & cls["uscc"].isin(ent["uscc"])]
    pol = policy.items_frame().set_index("item_code")
    dims = policy.dimension_ids

    per_item = (c.groupby(["uscc", "item_code"], sort=True, observed=True)
                .agg(n=("points", "size"), contribution=("points", "sum"), latest=("decision_date", "max"))
                .reset_index())
    per_item["dimension"] = per_item["item_code"].map(pol["dimension"])
    dim_raw = (per_item.pivot_table(index="uscc", columns="dimension", values="contribution",
                                    aggfunc="sum", fill_value=0.0)
               .reindex(index=ent["uscc"], columns=dims, fill_value=0.0))
    bounds = {d["id"]: (float(d["min"]), float(d["max"])) for d in policy.doc["dimensions"]}
    dim = pd.DataFrame({d: dim_raw[d].clip(*bounds[d]) for d in dims}, index=dim_raw.index)
    scale = policy.doc["scale"]
    total = float(scale["base"]) + dim.sum(axis=1)
    score = np.floor(total.clip(float(scale["min"]), float(scale["max"])) + 0.5).astype(int)

    tiers = policy.doc["tiers"]
    tier = np.select([score.to_numpy() >= t["min_score"] for t in tiers], [t["tier"] for t in tiers], "D")
    ov = policy.doc["overrides"]
    listed = set(c.loc[c["item_code"].isin(ov["severe_list_items"]), "uscc"])
    on_list = ent["uscc"].isin(listed).to_numpy()
    tier = np.where(on_list, ov["severe_list_tier"], tier)
    override = np.where(on_list, "severe_dishonesty_list", "")
    has_records = ent["uscc"].isin(set(per_item["uscc"])).to_numpy()
    new = (pd.to_datetime(ent["registered_date"]) > as_of - pd.Timedelta(days=int(ov["new_entity_days"]))).to_numpy()
    insufficient = new & ~has_records
    tier = np.where(insufficient & ~on_list, ov["insufficient_information_tier"], tier)
    flags = np.where(insufficient, "insufficient_information", "")
    objection = set(cls.loc[cls["objection_flag"] & cls["uscc"].isin(ent["uscc"]), "uscc"])
    flags = np.where(ent["uscc"].isin(objection).to_numpy(),
                     np.char.add(flags.astype(str), np.where(flags != "", ";objection_pending", "objection_pending")),
                     flags)

    out = pd.DataFrame({
        "uscc": ent["uscc"].to_numpy(), "name": ent["subject_name"].to_numpy(),
        "division_code": ent["division_code"].to_numpy(), "industry": ent["industry"].to_numpy(),
        "eval_class": ent["eval_class"].to_numpy(), "score": score.to_numpy(), "tier": tier,
    })
    for d in dims:
        out[f"dim_{d}"] = np.round(dim[d].to_numpy(), 1) + 0.0  # +0.0 turns -0.0 into 0.0
    out["override"] = override
    out["flags"] = flags
    out["reasons"] = format_reasons(per_item, pol, ent["uscc"], int(policy.doc["reasons"]["top_n"])).to_numpy()
    return out


def format_reasons(per_item: pd.DataFrame, pol: pd.DataFrame, usccs: pd.Series, top_n: int) -> pd.Series:
    """Top contributions per entity with fixed bilingual wording, ranked by absolute effect."""
    p = per_item.assign(abs_c=per_item["contribution"].abs())
    p = p.sort_values(["uscc", "abs_c", "item_code"], ascending=[True, False, True], kind="stable")
    p = p[p.groupby("uscc", sort=False).cumcount() < top_n]
    latest = pd.to_datetime(p["latest"]).dt.strftime("%Y-%m-%d")
    n = p["n"].astype(str)
    en = np.where(p["n"] == 1, p["item_code"].map(pol["text_en_one"]), p["item_code"].map(pol["text_en_many"]))
    text = (p["item_code"].map(pol["reason_code"]) + " " + p["item_code"].map(pol["text_zh"]) + " " + n
            + " 条，最近 " + latest + " / " + n + " " + pd.Series(en, index=p.index) + ", latest " + latest)
    joined = text.groupby(p["uscc"], sort=False).agg(" | ".join)
    return usccs.map(joined).fillna(NO_RECORD_REASON).reset_index(drop=True)


# --------------------------------------------------------------------------- canonical output

CANONICAL_COLUMNS = ["uscc", "tier", "score", "dim_law_abiding", "dim_contracts_promises",
                     "dim_qualifications_honours", "dim_social_responsibility", "dim_supervisory_risk",
                     "override", "flags", "reasons"]


def canonical_bytes(results: pd.DataFrame) -> bytes:
    """The canonical published result: sorted by USCC, fixed column order and float format, UTF-8, LF."""
    r = results[CANONICAL_COLUMNS].sort_values("uscc", kind="stable")
    buf = io.StringIO()
    r.to_csv(buf, index=False, float_format="%.1f", lineterminator="\n")
    return buf.getvalue().encode("utf-8")


def output_sha256(results: pd.DataFrame) -> str:
    return hashlib.sha256(canonical_bytes(results)).hexdigest()


def tier_counts(results: pd.DataFrame) -> dict[str, int]:
    vc = results["tier"].value_counts()
    return {t: int(vc.get(t, 0)) for t in "ABCD"}
