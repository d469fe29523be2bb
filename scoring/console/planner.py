"""The ratio planner (监管部门抽查比例设置): a department's tiers as of the latest publication, the
bounds in force (Art. 48: 信用风险低的降低抽查比例和频次，信用风险高的提高抽查比例和频次), its
capacity left for the period, the observed hit rates with their uncertainty, and for the ratios
being edited what they mean: inspections per tier and in total, expected problems found, and
the advisor's proposal. Committing goes through the sampling library (commit, then draw once the
next publication exists, then verify), so the console cannot plan anything the CLI would refuse.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

from scoring.publication.labels import CODES
from scoring.sampling import doublerandom as dr
from scoring.sampling import plans
from scoring.sampling.rules import (
    TIERS,
    SamplingRefused,
    bounds_for,
    capacity_for,
    check_agency,
    parse_ratios,
    period_days,
    registry,
)

Z95 = 1.959964


def wilson(hits: int, n: int) -> list[float] | None:
    """95% Wilson score interval of a rate; None without observations."""
    if n <= 0:
        return None
    p = hits / n
    den = 1 + Z95**2 / n
    mid = (p + Z95**2 / (2 * n)) / den
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / den
    return [round(max(0.0, mid - half), 4), round(min(1.0, mid + half), 4)]


def _hit_counts(ins, pop, plan_ids: set[str]) -> dict[str, tuple[int, int]]:
    """(inspections, problems found) by tier, from randomly drawn inspections only."""
    chosen = ins[ins["doc_number"].astype(str).isin(plan_ids)] if len(ins) else ins
    m = chosen.merge(pop[["uscc", "tier"]].astype({"tier": str}), on="uscc") if len(chosen) else []
    out = {}
    for t in TIERS:
        sub = m[m["tier"] == t] if len(m) else []
        out[t] = (len(sub), int((sub["item_code"] == "INSPECTION_FAIL").sum()) if len(sub) else 0)
    return out


def check_period(period: str, base_as_of: str) -> None:
    """A plan's period must not have ended before the latest publication (as commit refuses)."""
    last = period_days(period)[1]
    if last < dt.date.fromisoformat(base_as_of):
        raise SamplingRefused(
            f"period {period} is closed: it ended before the latest publication ({base_as_of})"
        )


def basis(store, agency_id: str, period: str | None = None) -> dict:
    """Everything the planner shows that does not depend on the ratios being edited."""
    reg = registry()
    agency = check_agency(agency_id, reg)
    with store.engine.connect() as conn:
        base = plans.published(conn)
        if base is None:
            raise SamplingRefused("no published run yet: a plan commits to a published population")
        mine = plans.records(conn, agency_id)
        plan_ids = {r["plan_id"] for r in plans.records(conn)}
    as_of = str(base.as_of)
    period = period or f"{dt.date.fromisoformat(as_of) + dt.timedelta(days=1):%Y-%m}"
    check_period(period, as_of)
    bounds = bounds_for(agency_id, period_days(period)[0], reg)
    pending = sum(
        plans.planned_count(r["ingredients"])
        for r in mine
        if r["period"] == period and r["status"] != "abandoned"
    )
    capacity = capacity_for(agency_id, reg)
    pop, ins = plans.population(store, base, agency)
    counts = {t: int((pop["tier"] == t).sum()) for t in TIERS}
    observed = _hit_counts(ins, pop, plan_ids)
    basis_note = "随机抽查结果 randomly drawn inspections only"
    if not any(n for n, _ in observed.values()):
        observed = _hit_counts(ins, pop, set(ins["doc_number"].astype(str)))
        basis_note = "尚无随机抽查结果：全部检查记录（含投诉检查，偏高） all inspections, biased"
    hit = {t: (k / n if n else 0.0) for t, (n, k) in observed.items()}
    left = capacity - pending
    try:
        proposal = plans.propose_ratios(counts, hit, left, bounds["tiers"])
        proposal_note = None
    except SamplingRefused as exc:
        proposal, proposal_note = None, str(exc)
    return {
        "agency": {"id": agency_id, "name": agency["name"]},
        "run_id": base.run_id,
        "as_of": as_of,
        "period": period,
        "bounds": bounds,
        "capacity": capacity,
        "other_plans": pending,
        "capacity_left": left,
        "hit_basis": basis_note,
        "tiers": [
            {
                "tier": t,
                "label": CODES["tier"][t],
                "population": counts[t],
                "bounds": bounds["tiers"][t],
                "hit_rate": round(hit[t], 4),
                "hit_interval": wilson(observed[t][1], observed[t][0]),
                "inspected": observed[t][0],
            }
            for t in TIERS
        ],
        "proposal": proposal,
        "proposal_note": proposal_note,
        "plans": [
            {
                "plan_id": r["plan_id"],
                "period": r["period"],
                "task": r["task"],
                "status": r["status"],
                "commitment_sha256": r["commitment_sha256"],
            }
            for r in mine
        ],
    }


def consequences(b: dict, ratios) -> dict:
    """What the ratios mean against a basis: per tier and in total; refused ratios give an error
    message and no figures (nothing is committed from here)."""
    try:
        chosen = parse_ratios(ratios)
        for row in b["tiers"]:
            lo, hi = (Decimal(x) for x in row["bounds"])
            if not lo <= Decimal(chosen[row["tier"]]) <= hi:
                raise SamplingRefused(
                    f"{row['tier']} 级（{row['label']}）抽查比例 {chosen[row['tier']]} 超出范围 "
                    f"{lo}–{hi} / tier {row['tier']} ratio outside the bound "
                    f"({b['bounds']['source']})"
                )
    except SamplingRefused as exc:
        return {"ok": False, "error": str(exc)}
    rows, total, found, lo_found, hi_found = [], 0, 0.0, 0.0, 0.0
    for row in b["tiers"]:
        k = dr.tier_count(chosen[row["tier"]], row["population"])
        interval = row["hit_interval"] or [0.0, 0.0]
        rows.append(
            {
                "tier": row["tier"],
                "ratio": chosen[row["tier"]],
                "inspections": k,
                "expected_findings": round(k * row["hit_rate"], 1),
                "findings_interval": [round(k * interval[0], 1), round(k * interval[1], 1)],
            }
        )
        total += k
        found += k * row["hit_rate"]
        lo_found += k * interval[0]
        hi_found += k * interval[1]
    over = total - b["capacity_left"]
    return {
        "ok": over <= 0,
        "ratios": chosen,
        "tiers": rows,
        "inspections": total,
        "expected_findings": round(found, 1),
        "findings_interval": [round(lo_found, 1), round(hi_found, 1)],
        "capacity_left": b["capacity_left"],
        "error": (
            f"需要 {total} 次检查，本期剩余能力 {b['capacity_left']} / needs {total} inspections, "
            f"{b['capacity_left']} left this period"
            if over > 0
            else None
        ),
    }


def commit(store, agency_id: str, period: str, ratios, task: str = "routine", **redraw) -> dict:
    """Commit through the sampling library; returns what the page shows of the committed plan."""
    record = plans.commit_plan(
        store, agency_id, parse_ratios(ratios), period=period, task=task, **redraw
    )
    return plan_summary(store, record["plan_id"])


def plan_summary(store, plan_id: str) -> dict:
    """A plan as the regulator follows it: commitment, then draw and inspector teams, then the
    verification from the store, and where its public (一公开) file is."""
    record = plans.load_plan(store, plan_id)
    t = plans.targets(store, record)
    verified = plans.verify_plan(store, plan_id)
    public = plans.public_dir(store, record)
    return {
        "plan_id": plan_id,
        "agency_id": record["agency_id"],
        "agency_name": record["agency_name"],
        "period": record["period"],
        "task": record["task"],
        "status": record["status"],
        "ratios": record["ingredients"]["ratios"],
        "commitment_sha256": record["commitment_sha256"],
        "base": record["base"],
        "capacity": record["capacity"],
        "seed_source": record.get("seed_source"),
        "targets": [
            {
                "uscc": r.uscc,
                "name": r.name,
                "tier": r.tier,
                "inspectors": list(r.inspectors),
                "units": list(r.units),
            }
            for r in t.itertuples()
        ],
        "verification": verified,
        "public_files": sorted(p.name for p in public.glob("*") if p.is_file())
        if public.exists()
        else [],
    }


def public_file(store, plan_id: str, name: str):
    """The path of one of a plan's public files (refused for anything else)."""
    record = plans.load_plan(store, plan_id)
    folder = plans.public_dir(store, record)
    path = folder / name
    if name not in {p.name for p in folder.glob("*") if p.is_file()}:
        raise SamplingRefused(f"plan {plan_id} has no public file {name!r}")
    return path
