"""How each stored inspection was chosen: its inclusion probability, for the IPW training set.

A double-random inspection's 抽查任务编号 names its plan. For a plan this deployment committed and
drew (sampling_plans), the probability is exact: k / eligible of the entity's tier in that draw.
For plan-tagged inspections from before the deployment kept plans (a go-live backfill of earlier
draws, the demo's five years of history) the tier at the draw is reconstructed as the draw made
it — the policy in force on the evening before the 1st of the inspection's month, on the records
in force then — and the probability is the tier's yearly ratio / 12 (the documented default
ratios, config/policy/reference.yaml). Anything else (complaint-driven 投诉-…, targeted, a
number that is no plan) was not drawn at random and gets no probability: it is left out.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import sqlalchemy as sa

from scoring.calibration.features import decayed_counts, point_in_time_records, policy_half_lives
from scoring.calibration.scores import policy_scores
from scoring.common.catalogue import Catalogue
from scoring.common.config import CONFIG_DIR, load_document
from scoring.evaluation.evaluate import Policy
from scoring.history.store import sampling_plans
from scoring.sampling.doublerandom import tier_count

TIERS = ("A", "B", "C", "D")
COMMITMENT = re.compile(
    r"^[0-9a-f]{64}$"
)  # a plan's commitment hash (how the demo's draws name their plan)


def default_yearly_ratios() -> dict[str, float]:
    return {
        t: float(v)
        for t, v in load_document(CONFIG_DIR / "policy" / "reference.yaml")[
            "default_ratios"
        ].items()
    }


def stored_plan_probabilities(store) -> pd.DataFrame:
    """(plan, uscc, tier, inclusion_prob) for every entity drawn by a plan in the store, under both
    names of the plan (plan id and commitment hash)."""
    from scoring.sampling.plans import targets

    with store.engine.connect() as conn:
        rows = (
            conn.execute(sa.select(sampling_plans.c.record_json).order_by(sampling_plans.c.plan_id))
            .scalars()
            .all()
        )
    out = []
    for text in rows:
        rec = json.loads(text)
        if not rec.get("draw"):
            continue
        ing = rec["ingredients"]
        excluded = pd.Series(
            [e["tier"] for e in ing.get("exclusions", [])], dtype=object
        ).value_counts()
        t = targets(store, rec)
        for tier in TIERS:
            n = int(ing["frame"].get(tier, 0))
            eligible = n - int(excluded.get(tier, 0))
            k = min(tier_count(ing["ratios"].get(tier, "0"), n), eligible)
            mine = t[t["tier"] == tier]
            for name in (rec["plan_id"], rec["commitment_sha256"]):
                out.append(
                    pd.DataFrame(
                        {
                            "plan": name,
                            "uscc": mine["uscc"].to_numpy(),
                            "tier": tier,
                            "inclusion_prob": k / eligible if eligible > 0 else np.nan,
                        }
                    )
                )
    cols = ["plan", "uscc", "tier", "inclusion_prob"]
    return pd.concat(out, ignore_index=True)[cols] if out else pd.DataFrame(columns=cols)


def reconstructed_tiers(
    ins: pd.DataFrame,
    records: pd.DataFrame,
    changes: pd.DataFrame,
    registered: pd.Series | None,
    catalogue: Catalogue,
    registry: list[dict] | None = None,
) -> np.ndarray:
    """Each inspection's tier as the monthly draw saw it: the policy in force on the evening before
    the 1st of its month (in the store's policy registry; the shipped seed when there is no store), records decided and in force then, the severe-list override, and the
    insufficient-information tier for new entities with nothing that counts."""
    first = pd.to_datetime(ins["decision_date"]).dt.to_period("M").dt.to_timestamp()
    eve = (first - pd.Timedelta(days=1)).dt.date.astype(str)
    tier = np.empty(len(ins), dtype=object)
    policies = {
        d: Policy.shipped_in_force(d) if registry is None else Policy.in_force(d, registry)
        for d in sorted(set(eve))
    }
    by_sha: dict[str, list[str]] = {}
    for d, p in policies.items():
        by_sha.setdefault(p.sha256, []).append(d)
    for _sha, days in by_sha.items():
        pol = policies[days[0]]
        sel = np.flatnonzero(eve.isin(days).to_numpy())
        sub = ins.iloc[sel].assign(decision_date=first.iloc[sel].to_numpy()).reset_index(drop=True)
        rows, pairs, feats = point_in_time_records(sub, records, changes, catalogue, pol)
        X = pd.DataFrame(
            decayed_counts(pairs, len(rows), feats, policy_half_lives(pol)), columns=feats
        )
        _, t = policy_scores(X, feats, pol)
        if registered is not None:
            ov = pol.doc["overrides"]
            reg = pd.to_datetime(registered.reindex(sub["uscc"].to_numpy()).to_numpy())
            new = (
                reg
                > pd.to_datetime(sub["decision_date"])
                - pd.Timedelta(days=1 + int(ov["new_entity_days"]))
            ).to_numpy()
            t = np.where(
                new & (X.to_numpy().sum(axis=1) == 0), ov["insufficient_information_tier"], t
            )
        tier[sel] = t
    return tier


def inclusion_probabilities(
    store,
    ins: pd.DataFrame,
    records: pd.DataFrame,
    changes: pd.DataFrame,
    registered: pd.Series | None,
    catalogue: Catalogue,
    yearly_ratios: dict | None = None,
    registry: list[dict] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inclusion_prob, tier at the draw, source) per inspection; source is 'plan' (a stored plan,
    exact), 'reconstructed' (a plan tag without a stored plan), or 'not_random' (NaN probability)."""
    plan = ins["record_key"].astype(str).str.split("|", n=1).str[0].str.strip()
    prob = np.full(len(ins), np.nan)
    tier = np.full(len(ins), "", dtype=object)
    source = np.full(len(ins), "not_random", dtype=object)
    stored = stored_plan_probabilities(store)
    if len(stored):
        m = pd.DataFrame(
            {"plan": plan.to_numpy(), "uscc": ins["uscc"].astype(str).to_numpy()}
        ).merge(stored.drop_duplicates(["plan", "uscc"]), on=["plan", "uscc"], how="left")
        hit = m["inclusion_prob"].notna().to_numpy()
        prob[hit], tier[hit], source[hit] = (
            m["inclusion_prob"].to_numpy()[hit],
            m["tier"].to_numpy()[hit],
            "plan",
        )
    recon = (source == "not_random") & plan.str.fullmatch(COMMITMENT).to_numpy()
    if recon.any():
        ratios = yearly_ratios or default_yearly_ratios()
        t = reconstructed_tiers(ins[recon], records, changes, registered, catalogue, registry)
        tier[recon] = t
        prob[recon] = np.array([ratios[x] / 12 for x in t])
        source[recon] = "reconstructed"
    return prob, tier, source
