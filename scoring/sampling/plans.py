"""Double-random (双随机) inspection plans by tier: ratios, reproducible draws, inspector
assignment, joint inspections and a ratio advisor.

Reproducibility does not depend on any library's random generator: every random order is the
order of sha256(seed | key), so anyone with the published record can redo the draw with a few
lines of code in any language (全过程留痕、可回溯).

Counts per tier: k = floor(ratio × N + 0.5) (round half up), capped at N.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field

import pandas as pd
import sqlalchemy as sa

from scoring.common.config import CONFIG_DIR, canonical_json, load_document
from scoring.common.errors import PipelineError
from scoring.common.plots import use_cjk_font
from scoring.history.inputs import load_inputs
from scoring.history.store import entity_results, runs, sampling_plans
from scoring.publication.publish import (
    DEFAULT_AGENCIES,
    in_scope,
    load_agencies,
    write_outbox,
)

ALGORITHM = "stratified-sha256-order/1"
TIERS = ("A", "B", "C", "D")
INSPECTORS = CONFIG_DIR / "inspectors.yaml"


def tier_count(ratio: float, n: int) -> int:
    """The documented rounding: round half up of ratio × stratum size, never above the stratum."""
    return min(n, int(math.floor(ratio * n + 0.5)))


def keyed_order(seed: int, keys: pd.Series) -> pd.Series:
    """A reproducible random order: the sha256 of 'seed|key' for each key (lower first)."""
    return keys.map(lambda k: hashlib.sha256(f"{seed}|{k}".encode()).hexdigest())


def derive_seed(published_value: str, plan_id: str) -> int:
    """A seed nobody chooses: from a value already published (the run's output hash) and the plan id."""
    return int(hashlib.sha256(f"{published_value}|{plan_id}".encode()).hexdigest()[:15], 16)


def population_sha256(pop: pd.DataFrame) -> str:
    text = "".join(f"{u},{t}\n" for u, t in zip(pop["uscc"], pop["tier"]))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Plan:
    agency_id: str
    task: str
    run_id: str
    as_of: str
    ratios: dict[str, float]
    seed: int | None = None
    exclusion_days: int = 90
    frequency_caps: dict[str, int] = field(default_factory=dict)

    @property
    def plan_id(self) -> str:
        body = canonical_json({k: v for k, v in asdict(self).items() if k != "seed"} | {"seed": self.seed})
        return f"{self.agency_id}-{self.task}-{hashlib.sha256(body.encode()).hexdigest()[:10]}"


def eligible_population(results: pd.DataFrame, inspections: pd.DataFrame, agency: dict, plan: Plan) -> pd.DataFrame:
    """In-scope entities of the run, minus those inspected within the exclusion window or already at
    their tier's yearly frequency cap. Sorted by USCC."""
    pop = results[in_scope(results, agency)][["uscc", "tier"]].astype({"tier": str}).sort_values("uscc")
    day = pd.Timestamp(plan.as_of)
    if len(inspections):
        when = pd.to_datetime(inspections["decision_date"])
        recent = set(inspections.loc[(when > day - pd.Timedelta(days=plan.exclusion_days)) & (when <= day), "uscc"])
        year = inspections[(when > day - pd.Timedelta(days=365)) & (when <= day)].groupby("uscc").size()
        cap = pop["tier"].map(plan.frequency_caps).fillna(10**9)
        over = pop["uscc"].map(year).fillna(0) >= cap
        pop = pop[~pop["uscc"].isin(recent) & ~over.to_numpy()]
    return pop.reset_index(drop=True)


def draw(pop: pd.DataFrame, ratios: dict[str, float], seed: int) -> pd.DataFrame:
    """Stratified draw: per tier, the first k entities in the keyed order."""
    parts = []
    for tier in TIERS:
        stratum = pop[pop["tier"] == tier]
        k = tier_count(float(ratios.get(tier, 0.0)), len(stratum))
        if k:
            order = keyed_order(seed, stratum["uscc"])
            parts.append(stratum.assign(_o=order.to_numpy()).sort_values(["_o", "uscc"]).head(k).drop(columns="_o"))
    if not parts:
        return pd.DataFrame(columns=["uscc", "tier"])
    return pd.concat(parts, ignore_index=True)


def load_inspectors(path=INSPECTORS) -> pd.DataFrame:
    rows = load_document(path)["inspectors"]
    return pd.DataFrame([{**r, "conflicts": tuple(sorted(r.get("conflicts") or []))} for r in rows])


def assign_inspectors(drawn: pd.DataFrame, inspectors: pd.DataFrame, seed: int, per_inspection: int = 2) -> pd.DataFrame:
    """At least two inspectors per inspection, drawn at random among those not recused from the
    entity, the least loaded first (ties in keyed random order). Raises if recusals leave too few."""
    load = {i: 0 for i in inspectors["inspector_id"]}
    conflicts = {r.inspector_id: set(r.conflicts) for r in inspectors.itertuples()}
    rows = []
    for uscc in drawn.sort_values("uscc")["uscc"]:
        free = [i for i in sorted(load) if uscc not in conflicts[i]]
        if len(free) < per_inspection:
            raise ValueError(f"only {len(free)} inspectors may inspect {uscc}; {per_inspection} are required")
        ranked = sorted(free, key=lambda i: (load[i], hashlib.sha256(f"{seed}|{uscc}|{i}".encode()).hexdigest()))
        team = sorted(ranked[:per_inspection])
        for i in team:
            load[i] += 1
        rows.append({"uscc": uscc, "inspectors": ";".join(team)})
    return pd.DataFrame(rows, columns=["uscc", "inspectors"])


def joint_inspections(draws: pd.DataFrame) -> pd.DataFrame:
    """Entities drawn by several agencies' plans in the same month: one joint inspection (Regulation
    on Optimizing the Business Environment, Art. 54)."""
    d = draws.assign(month=pd.to_datetime(draws["as_of"]).dt.strftime("%Y-%m"))
    g = d.groupby(["month", "uscc"])["agency_id"].agg(lambda s: ";".join(sorted(set(s))))
    g = g[g.str.contains(";")]
    return g.rename("agencies").reset_index()


# --------------------------------------------------------------------------- ratio advisor

def expected(pop_counts: dict[str, int], ratios: dict[str, float], hit: dict[str, float]) -> tuple[int, float]:
    n = sum(tier_count(ratios.get(t, 0.0), pop_counts.get(t, 0)) for t in TIERS)
    f = sum(tier_count(ratios.get(t, 0.0), pop_counts.get(t, 0)) * hit.get(t, 0.0) for t in TIERS)
    return n, f


def propose_ratios(pop_counts: dict[str, int], hit: dict[str, float], capacity: int,
                   bounds: dict[str, list[float]]) -> dict[str, float]:
    """Most expected findings within capacity and inside each tier's bounds: every tier gets its
    minimum, then capacity goes to tiers in falling hit rate up to their maximum. (A greedy fill is
    optimal here: each inspection's value depends only on its tier.)"""
    ratios = {t: float(bounds[t][0]) for t in TIERS}
    used = sum(tier_count(ratios[t], pop_counts.get(t, 0)) for t in TIERS)
    if used > capacity:
        raise ValueError(f"the minimum ratios already need {used} inspections, above the capacity {capacity}")
    for t in sorted(TIERS, key=lambda t: -hit.get(t, 0.0)):
        n = pop_counts.get(t, 0)
        if not n:
            continue
        room = capacity - used
        k_now = tier_count(ratios[t], n)
        k_max = tier_count(float(bounds[t][1]), n)
        k = min(k_max, k_now + room)
        ratios[t] = round(max(ratios[t], (k - 0.5) / n + 1e-9 if k else 0.0), 6) if k > k_now else ratios[t]
        while tier_count(ratios[t], n) > k:  # rounding safety
            ratios[t] = round(ratios[t] - 1 / (2 * n), 6)
        used += tier_count(ratios[t], n) - k_now
    return ratios


def hit_rates(inspections: pd.DataFrame, tiers: pd.DataFrame) -> dict[str, float]:
    """Problem-finding rate by tier from past inspections (INSPECTION_FAIL / all)."""
    m = inspections.merge(tiers[["uscc", "tier"]].astype({"tier": str}), on="uscc")
    if m.empty:
        return {t: 0.0 for t in TIERS}
    r = (m["item_code"] == "INSPECTION_FAIL").groupby(m["tier"]).mean()
    return {t: float(r.get(t, 0.0)) for t in TIERS}


# --------------------------------------------------------------------------- orchestration

def _inputs(store, run_id: str | None, agency_id: str):

    with store.engine.connect() as conn:
        q = sa.select(runs).where(runs.c.status == "published")
        q = q.where(runs.c.run_id == run_id) if run_id else q.order_by(runs.c.as_of.desc()).limit(1)
        run = conn.execute(q).first()
        if run is None:
            raise PipelineError(f"no published run {run_id or ''}".strip())
        results = pd.read_sql(sa.select(entity_results.c.uscc, entity_results.c.tier, entity_results.c.division_code,
                                        entity_results.c.industry).where(entity_results.c.run_id == run.run_id), conn)
        manifest = json.loads(run.manifest_json)
        _, rec, _, _ = load_inputs(store, conn, manifest["knowledge_cutoff"],
                                   batch_ids=[b["batch_id"] for b in manifest["input_batches"]])
    ins = rec[rec["item_code"].isin(["INSPECTION_PASS", "INSPECTION_FAIL"])][["uscc", "item_code", "decision_date"]] \
        if len(rec) else pd.DataFrame(columns=["uscc", "item_code", "decision_date"])
    return dict(run._mapping), results, ins


def make_plan(store, agency_id: str, ratios: dict[str, float], run_id: str | None = None, seed: int | None = None,
              task: str = "routine", inspectors_path=INSPECTORS) -> dict:
    """Draw a plan, assign inspectors, store the draw record and deliver it to the agency."""
    agencies = {a["id"]: a for a in load_agencies()}
    if agency_id not in agencies:
        raise PipelineError(f"unknown agency {agency_id!r} (see `credit agencies`)")
    cfg = load_document(DEFAULT_AGENCIES)
    run, results, ins = _inputs(store, run_id, agency_id)
    plan = Plan(agency_id=agency_id, task=task, run_id=run["run_id"], as_of=str(run["as_of"]),
                ratios={t: float(ratios.get(t, 0.0)) for t in TIERS}, seed=None,
                exclusion_days=int(cfg.get("exclusion_days", 90)),
                frequency_caps={t: int(v) for t, v in cfg.get("frequency_caps", {}).items()})
    base_id = plan.plan_id
    plan.seed = int(seed) if seed is not None else derive_seed(run["output_sha256"], base_id)
    pop = eligible_population(results, ins, agencies[agency_id], plan)
    drawn = draw(pop, plan.ratios, plan.seed)
    reg = load_inspectors(inspectors_path)
    team = assign_inspectors(drawn, reg[reg["agency_id"] == agency_id], plan.seed)
    record = {"plan_id": plan.plan_id, "plan": asdict(plan), "algorithm": ALGORITHM,
              "population_size": len(pop), "population_sha256": population_sha256(pop),
              "population_by_tier": {t: int((pop["tier"] == t).sum()) for t in TIERS},
              "drawn": {t: int((drawn["tier"] == t).sum()) for t in TIERS},
              "entities": sorted(drawn["uscc"].tolist()),
              "assignments": team.to_dict("records"),
              "rounding": "k = floor(ratio * N + 0.5), at most N, per tier"}
    record["joint_with"] = _joint_with(store, plan, record["entities"])
    record["record_sha256"] = hashlib.sha256(canonical_json(record).encode()).hexdigest()
    with store.engine.begin() as conn:
        conn.execute(sa.delete(sampling_plans).where(sampling_plans.c.plan_id == record["plan_id"]))
        conn.execute(sampling_plans.insert().values(plan_id=record["plan_id"], agency_id=agency_id,
                                                    run_id=plan.run_id, as_of=plan.as_of,
                                                    record_json=canonical_json(record)))
    files = {"plan.json": json.dumps(record, ensure_ascii=False, indent=1, sort_keys=True).encode(),
             "inspections.csv": team.merge(drawn, on="uscc").to_csv(index=False, lineterminator="\r\n")
             .encode("utf-8-sig")}
    write_outbox(store.home / "outbox" / agency_id / "sampling" / record["plan_id"], files)
    return {**record, "seed": plan.seed}


def advise(store, agency_id: str, capacity: int, ratios: dict[str, float] | None = None, run_id: str | None = None,
           plot_path=None) -> dict:
    """Expected inspections and findings for the chosen ratios, and the proposal that finds the most
    problems within capacity inside the policy's bounds (hit rates from past inspections)."""

    agency = {a["id"]: a for a in load_agencies()}[agency_id]
    bounds = load_document(DEFAULT_AGENCIES)["sampling_bounds"]
    run, results, ins = _inputs(store, run_id, agency_id)
    plan = Plan(agency_id=agency_id, task="advice", run_id=run["run_id"], as_of=str(run["as_of"]), ratios={})
    pop = eligible_population(results, ins, agency, plan)
    counts = {t: int((pop["tier"] == t).sum()) for t in TIERS}
    hit = hit_rates(ins, results)
    proposal = propose_ratios(counts, hit, capacity, bounds)
    uniform_ratio = min(1.0, capacity / max(1, len(pop)))
    uniform = {t: uniform_ratio for t in TIERS}
    out = {"agency_id": agency_id, "run_id": run["run_id"], "capacity": capacity, "population": counts,
           "hit_rate_by_tier": hit, "bounds": bounds, "proposal": proposal,
           "proposal_expected": dict(zip(("inspections", "findings"), expected(counts, proposal, hit))),
           "uniform_expected": dict(zip(("inspections", "findings"), expected(counts, uniform, hit)))}
    if ratios:
        out["chosen"] = ratios
        out["chosen_expected"] = dict(zip(("inspections", "findings"), expected(counts, ratios, hit)))
    if plot_path:
        _plot_advice(out, plot_path)
        out["plot"] = str(plot_path)
    return out


def _plot_advice(out: dict, path) -> None:
    import matplotlib  # lazy: only the reports draw, and matplotlib is slow to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    use_cjk_font()
    caps = sorted({max(1, int(out["capacity"] * f)) for f in (0.25, 0.5, 0.75, 1.0, 1.25, 1.5)})
    counts, hit, bounds = out["population"], out["hit_rate_by_tier"], out["bounds"]
    best, flat = [], []
    for c in caps:
        try:
            best.append(expected(counts, propose_ratios(counts, hit, c, bounds), hit)[1])
        except ValueError:
            best.append(float("nan"))
        r = min(1.0, c / max(1, sum(counts.values())))
        flat.append(expected(counts, {t: r for t in TIERS}, hit)[1])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(caps, best, marker="o", label="建议比例 advisor")
    ax.plot(caps, flat, marker="s", label="统一比例 uniform")
    if "chosen_expected" in out:
        ax.scatter([out["chosen_expected"]["inspections"]], [out["chosen_expected"]["findings"]], color="red",
                   zorder=3, label="当前比例 chosen")
    ax.set_xlabel("检查能力 capacity (inspections)")
    ax.set_ylabel("预期发现问题 expected findings")
    ax.legend()
    ax.set_title(f"{out['agency_id']} 抽查比例建议 ratio advisor")
    fig.savefig(path, dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def _joint_with(store, plan: Plan, entities: list[str]) -> dict[str, list[str]]:
    """Entities this plan shares with other agencies' plans of the same month: one joint inspection
    each (Art. 54). Maps USCC → the other agencies, for the plans stored so far."""
    month = plan.as_of[:7]
    with store.engine.connect() as conn:
        others = conn.execute(sa.select(sampling_plans.c.agency_id, sampling_plans.c.record_json)
                              .where(sampling_plans.c.agency_id != plan.agency_id)
                              .where(sampling_plans.c.as_of.like(f"{month}%"))).all()
    rows = [{"agency_id": a, "uscc": u, "as_of": plan.as_of} for a, text in others for u in json.loads(text)["entities"]]
    rows += [{"agency_id": plan.agency_id, "uscc": u, "as_of": plan.as_of} for u in entities]
    if not rows:
        return {}
    joint = joint_inspections(pd.DataFrame(rows))
    mine = set(entities)
    return {r.uscc: sorted(set(r.agencies.split(";")) - {plan.agency_id}) for r in joint.itertuples() if r.uscc in mine}


def verify_plan(store, plan_id: str, inspectors_path=INSPECTORS) -> dict:
    """Redo a stored draw from its record and the run it names; any edit to the record fails."""
    with store.engine.connect() as conn:
        text = conn.execute(sa.select(sampling_plans.c.record_json).where(sampling_plans.c.plan_id == plan_id)).scalar()
    if text is None:
        raise PipelineError(f"no sampling plan {plan_id!r}")
    record = json.loads(text)
    claimed = record.pop("record_sha256", None)
    intact = claimed == hashlib.sha256(canonical_json(record).encode()).hexdigest()
    plan = Plan(**record["plan"])
    run, results, ins = _inputs(store, plan.run_id, plan.agency_id)
    agency = {a["id"]: a for a in load_agencies()}[plan.agency_id]
    pop = eligible_population(results, ins, agency, plan)
    drawn = draw(pop, plan.ratios, plan.seed)
    reg = load_inspectors(inspectors_path)
    team = assign_inspectors(drawn, reg[reg["agency_id"] == plan.agency_id], plan.seed)
    checks = {
        "record_intact": intact,
        "plan_id": plan.plan_id == record["plan_id"],
        "population": population_sha256(pop) == record["population_sha256"],
        "entities": sorted(drawn["uscc"].tolist()) == record["entities"],
        "inspectors": team.to_dict("records") == record["assignments"],
        "algorithm": record["algorithm"] == ALGORITHM,
    }
    return {"plan_id": plan_id, "verified": all(checks.values()), "checks": checks}


def parse_ratios(text: str) -> dict[str, float]:
    """Ratios by tier from "A=0.03,B=0.1,C=0.4,D=0.8" (each between 0 and 1)."""
    out = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        tier, _, value = part.partition("=")
        tier = tier.strip().upper()
        if tier not in "ABCD" or not value:
            raise ValueError(f"bad ratio {part!r}: use A=0.03,B=0.1,C=0.4,D=0.8")
        try:
            v = float(value)
        except ValueError:
            raise ValueError(f"bad ratio {part!r}: not a number") from None
        if not 0 <= v <= 1:
            raise ValueError(f"ratio {part!r} is outside 0..1")
        out[tier] = v
    return out
