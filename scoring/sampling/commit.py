"""Commit, then draw: the frame-level API of a double-random plan (pure functions on frames).

    committed = commit_plan(population, ratios, agency_id=..., period="2026-07", ...)
    # ... publish committed["commitment_sha256"]; wait for a value published after it ...
    drawn, record = draw_plan(committed, population, published_value)

The algorithm itself (order, rounding, replacement of exclusions, inspector teams) lives in
doublerandom.py, which an outsider can run on its own; this module builds its ingredients from
frames and maps positions back to USCCs.
"""

from __future__ import annotations

import hashlib

import pandas as pd

from scoring.sampling import doublerandom as dr
from scoring.sampling.rules import TIERS, SamplingRefused, parse_ratios

ROUNDING = (
    "k = floor(ratio * N + 1/2), at most N, exact decimals; N = the whole tier before exclusions"
)
EXCLUSION_REASONS = {
    "recently_inspected": "检查后未满{days}天 inspected in the last {days} days",
    "frequency_cap": "本年度抽查次数已满 yearly inspection cap for the tier reached",
}


def frame_positions(population: pd.DataFrame) -> pd.DataFrame:
    """uscc, tier, position: position p of a tier is its p-th USCC in ascending order."""
    pop = population[["uscc", "tier"]].astype({"uscc": str, "tier": str})
    bad = sorted(set(pop["tier"].unique().tolist()) - set(TIERS))
    if bad:
        raise SamplingRefused(f"population has tiers {bad} outside A, B, C, D")
    if pop["uscc"].duplicated().any():
        raise SamplingRefused(
            f"population lists {pop['uscc'][pop['uscc'].duplicated()].iloc[0]} twice"
        )
    pop = pop.sort_values(["tier", "uscc"], kind="mergesort").reset_index(drop=True)
    return pop.assign(position=pop.groupby("tier").cumcount().astype(int))


def frame_sha256(positions: pd.DataFrame) -> str:
    # Plain lists: iterating Arrow-backed string columns element by element is ~10x slower.
    rows = map("{},{}\n".format, positions["uscc"].tolist(), positions["tier"].tolist())
    text = "".join(rows)
    return hashlib.sha256(text.encode()).hexdigest()


def exclusions_from_history(
    population: pd.DataFrame,
    inspections: pd.DataFrame,
    day,
    exclusion_days: int = 90,
    frequency_caps: dict | None = None,
) -> pd.DataFrame:
    """uscc, reason: entities inspected within ``exclusion_days`` before ``day``, or already
    inspected as often in the last 365 days as their tier's yearly cap allows."""
    cols = ["uscc", "reason"]
    if inspections is None or not len(inspections):
        return pd.DataFrame(columns=cols)
    day = pd.Timestamp(day)
    when = pd.to_datetime(inspections["decision_date"])
    past = inspections[(when <= day)]
    when = when[when <= day]
    recent = set(past.loc[when > day - pd.Timedelta(days=exclusion_days), "uscc"])
    year = past[when > day - pd.Timedelta(days=365)].groupby("uscc").size()
    pop = population[["uscc", "tier"]].astype({"uscc": str, "tier": str})
    cap = pop["tier"].map({k: int(v) for k, v in (frequency_caps or {}).items()})
    over = pop["uscc"].map(year).fillna(0).to_numpy() >= cap.fillna(float("inf")).to_numpy()
    reason = pd.Series(None, index=pop.index, dtype=object)
    reason[over] = "frequency_cap"
    reason[pop["uscc"].isin(recent).to_numpy()] = "recently_inspected"
    return pop.assign(reason=reason).dropna(subset=["reason"])[cols].reset_index(drop=True)


def commit_plan(
    population: pd.DataFrame,
    ratios,
    *,
    agency_id: str,
    period: str,
    task: str = "routine",
    exclusions: pd.DataFrame | None = None,
    inspectors: pd.DataFrame | None = None,
    team_size: int = 2,
    rules: dict | None = None,
    base: dict | None = None,
) -> dict:
    """Freeze a plan's ingredients and hash them. population: uscc, tier (the tier's FULL
    population); exclusions: uscc, reason; inspectors: inspector_id, unit, conflicts ((uscc, reason), ...).
    Nothing here depends on a seed: the draw is unknown until draw_plan gets a later published value."""
    pos = frame_positions(population)
    where = dict(zip(pos["uscc"].tolist(), zip(pos["tier"].tolist(), pos["position"].tolist())))
    excl = []
    if exclusions is not None and len(exclusions):
        for u, reason in sorted(zip(exclusions["uscc"].astype(str), exclusions["reason"])):
            if u in where:
                excl.append(
                    {"tier": where[u][0], "position": int(where[u][1]), "reason": str(reason)}
                )
    staff, recusals = [], []
    if inspectors is not None and len(inspectors):
        for r in inspectors.sort_values("inspector_id").itertuples():
            staff.append({"id": r.inspector_id, "unit": r.unit})
            for u, reason in r.conflicts:
                if u in where:
                    recusals.append(
                        {
                            "tier": where[u][0],
                            "position": int(where[u][1]),
                            "inspector": r.inspector_id,
                            "reason": reason,
                        }
                    )
    register = (
        []
        if inspectors is None
        else [
            [r.inspector_id, r.unit, [list(c) for c in r.conflicts]]
            for r in inspectors.sort_values("inspector_id").itertuples()
        ]
    )
    ingredients = {
        "algorithm": dr.ALGORITHM,
        "agency_id": agency_id,
        "period": period,
        "task": task,
        "ratios": parse_ratios(ratios),
        "rounding": ROUNDING,
        "frame": {t: int((pos["tier"] == t).sum()) for t in TIERS},
        "frame_sha256": frame_sha256(pos),
        "exclusion_rules": rules or {},
        "exclusions": sorted(excl, key=lambda e: (e["tier"], e["position"])),
        "inspectors": staff,
        "register_sha256": dr.sha256_text(dr.canonical(register)),
        "recusals": sorted(recusals, key=lambda r: (r["tier"], r["position"], r["inspector"])),
        "team_size": int(team_size),
        "base": base or {},
    }
    return {"ingredients": ingredients, "commitment_sha256": dr.commitment_sha256(ingredients)}


def draw_plan(
    committed: dict, population: pd.DataFrame, published_value: str, seed_source: dict | None = None
) -> tuple[pd.DataFrame, dict]:
    """The draw of a committed plan once a value published after the commitment exists.
    Returns the drawn targets (uscc, tier, position, rank, inspectors, units, recused) and the
    draw record (seed source, seed, positions, skipped exclusions, assignments)."""
    pos = frame_positions(population)
    ing = committed["ingredients"]
    if frame_sha256(pos) != ing["frame_sha256"]:
        raise SamplingRefused(
            "the population is not the one the plan committed to (frame hash differs)"
        )
    if dr.commitment_sha256(ing) != committed["commitment_sha256"]:
        raise SamplingRefused(
            "the plan's ingredients changed after commitment (commitment hash differs)"
        )
    seed = dr.derive_seed(committed["commitment_sha256"], published_value)
    try:
        result = dr.draw(ing, seed)
    except dr.DrawError as e:
        raise SamplingRefused(str(e)) from None
    record = {"seed_source": {**(seed_source or {}), "value": published_value}, "draw": result}
    drawn = pd.DataFrame(result["drawn"], columns=["tier", "position", "rank"])
    drawn = drawn.merge(pos, on=["tier", "position"], how="left")[
        ["uscc", "tier", "position", "rank"]
    ]
    teams = pd.DataFrame(
        result["assignments"], columns=["tier", "position", "inspectors", "units", "recused"]
    )
    if len(teams):
        drawn = drawn.merge(teams, on=["tier", "position"], how="left")
    return drawn, record


def sample_population(
    population: pd.DataFrame,
    ratios,
    published_value: str,
    *,
    agency_id: str,
    period: str,
    task: str = "routine",
    exclusions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One-call double-random draw from a population frame (uscc, tier) at the given ratios:
    commit, then draw with ``published_value`` (a value published after the commitment, e.g. the
    next publication's output hash). Returns uscc, tier, position, rank, plus the commitment hash and
    seed as columns, so a synthetic world's inspections carry the plan they came from."""
    committed = commit_plan(
        population, ratios, agency_id=agency_id, period=period, task=task, exclusions=exclusions
    )
    drawn, record = draw_plan(committed, population, published_value)
    return drawn.assign(
        commitment_sha256=committed["commitment_sha256"], seed=record["draw"]["seed"]
    )
