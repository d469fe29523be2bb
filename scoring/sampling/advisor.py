"""The ratio advisor: expected inspections and findings of a department's ratios, and the ratios
inside the bounds in force that find the most problems within the capacity left."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd

from scoring.sampling import doublerandom as dr
from scoring.sampling.planstore import planned_count, population, published, records
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


def expected(pop_counts: dict[str, int], ratios: dict, hit: dict[str, float]) -> tuple[int, float]:
    ks = {t: dr.tier_count(ratios.get(t, 0), pop_counts.get(t, 0)) for t in TIERS}
    return sum(ks.values()), sum(ks[t] * hit.get(t, 0.0) for t in TIERS)


def propose_ratios(
    pop_counts: dict[str, int], hit: dict[str, float], capacity: int, bounds: dict[str, list]
) -> dict[str, str]:
    """Most expected findings within capacity, inside each tier's bounds: every tier gets its
    minimum, then capacity goes to tiers in falling hit rate up to their maximum (greedy is optimal:
    an inspection's value depends only on its tier). Ratios are exact decimals giving whole counts."""
    lo = {t: Decimal(str(bounds[t][0])) for t in TIERS}
    hi = {t: Decimal(str(bounds[t][1])) for t in TIERS}
    ratios = dict(lo)
    used = sum(dr.tier_count(lo[t], pop_counts.get(t, 0)) for t in TIERS)
    if used > capacity:
        raise SamplingRefused(
            f"the minimum ratios of the bounds already need {used} inspections, above the "
            f"capacity {capacity}"
        )
    for t in sorted(TIERS, key=lambda t: (-hit.get(t, 0.0), t)):
        n = pop_counts.get(t, 0)
        if not n:
            continue
        k_now = dr.tier_count(ratios[t], n)
        k = min(dr.tier_count(hi[t], n), k_now + capacity - used)
        if k > k_now:
            r = min(hi[t], (Decimal(k) / n).quantize(Decimal("0.000001")))
            while dr.tier_count(r, n) > k:
                r -= Decimal("0.000001")
            while dr.tier_count(r, n) < k and r < hi[t]:
                r += Decimal("0.000001")
            ratios[t] = max(lo[t], r)
            used += dr.tier_count(ratios[t], n) - k_now
    return {t: format(ratios[t].normalize(), "f") for t in TIERS}


def hit_rates(
    inspections: pd.DataFrame, tiers: pd.DataFrame, plan_ids: set[str]
) -> dict[str, float | None]:
    """Problem-finding rate by tier from randomly drawn inspections only: those whose task number
    (doc_number) is a double-random plan; complaint-driven or other inspections would bias it."""
    ins = (
        inspections[inspections["doc_number"].astype(str).isin(plan_ids)]
        if len(inspections)
        else inspections
    )
    m = ins.merge(tiers[["uscc", "tier"]].astype({"tier": str}), on="uscc")
    r = (
        (m["item_code"] == "INSPECTION_FAIL").groupby(m["tier"]).mean()
        if len(m)
        else pd.Series(dtype=float)
    )
    return {t: (float(r[t]) if t in r.index else None) for t in TIERS}


def advise(
    store,
    agency_id: str,
    capacity: int | None = None,
    ratios=None,
    period: str | None = None,
    plot_path=None,
) -> dict:
    """Expected inspections and findings for the chosen ratios, and the proposal inside the bounds
    in force that finds the most problems within the capacity left for the period (the department's
    capacity minus its other plans). If the chosen ratios don't fit, says which tiers lose what."""
    reg = registry()
    agency = check_agency(agency_id, reg)
    with store.engine.connect() as conn:
        base = published(conn)
        if base is None:
            raise SamplingRefused("no published run yet")
        mine = records(conn, agency_id)
        plan_ids = {r["plan_id"] for r in records(conn)}
    if period is None:
        period = f"{dt.date.fromisoformat(str(base.as_of)) + dt.timedelta(days=1):%Y-%m}"
    bounds = bounds_for(agency_id, period_days(period)[0], reg)
    pending = sum(
        planned_count(r["ingredients"])
        for r in mine
        if r["period"] == period and r["status"] != "abandoned"
    )
    full = capacity_for(agency_id, reg)
    cap = min(full - pending, capacity) if capacity is not None else full - pending
    pop, ins = population(store, base, agency)
    counts = {t: int((pop["tier"] == t).sum()) for t in TIERS}
    hit = hit_rates(ins, pop, plan_ids)
    basis = "randomly drawn inspections only (task number = a double-random plan)"
    if all(v is None for v in hit.values()):
        # no random draw has results yet: all inspections on record, which over-represent complaints
        hit = hit_rates(ins, pop, set(ins["doc_number"].astype(str)))
        basis = "no randomly drawn inspection has results yet: ALL inspections on record (biased by complaints)"
    known = {t: (v if v is not None else 0.0) for t, v in hit.items()}
    proposal = propose_ratios(counts, known, cap, bounds["tiers"])
    total = max(1, sum(counts.values()))
    uniform = {
        t: str(min(Decimal(1), Decimal(cap) / total).quantize(Decimal("0.000001"))) for t in TIERS
    }
    out = {
        "agency_id": agency_id,
        "run_id": base.run_id,
        "period": period,
        "capacity": full,
        "other_plans": pending,
        "capacity_left": cap,
        "population": counts,
        "hit_rate_by_tier": hit,
        "hit_rate_basis": basis,
        "bounds": bounds,
        "proposal": proposal,
        "proposal_expected": dict(
            zip(("inspections", "findings"), expected(counts, proposal, known))
        ),
    }
    out["uniform_expected"] = dict(
        zip(("inspections", "findings"), expected(counts, uniform, known))
    )
    if ratios is not None:
        out.update(_chosen(parse_ratios(ratios), out, known))
    if plot_path:
        _plot_advice(out, known, plot_path)
        out["plot"] = str(plot_path)
    return out


def _chosen(chosen: dict, out: dict, known: dict) -> dict:
    """What the chosen ratios need and find; above the capacity left, which tiers lose what."""
    counts, proposal, cap = out["population"], out["proposal"], out["capacity_left"]
    need = expected(counts, chosen, known)
    res = {"chosen": chosen, "chosen_expected": dict(zip(("inspections", "findings"), need))}
    if need[0] > cap:
        loses = [
            f"{t} {chosen[t]}→{proposal[t]} (−{dr.tier_count(chosen[t], counts[t]) - dr.tier_count(proposal[t], counts[t])})"
            for t in TIERS
            if dr.tier_count(proposal[t], counts[t]) < dr.tier_count(chosen[t], counts[t])
        ]
        res["statement"] = (
            f"the chosen ratios need {need[0]} inspections but {cap} are left this period "
            f"(capacity {out['capacity']}, other plans {out['other_plans']}); scaled down: "
            + ", ".join(loses)
        )
    return res


def _plot_advice(out: dict, hit: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scoring.common.plots import use_cjk_font

    use_cjk_font()
    caps = sorted(
        {max(1, int(out["capacity_left"] * f)) for f in (0.25, 0.5, 0.75, 1.0, 1.25, 1.5)}
    )
    counts, bounds = out["population"], out["bounds"]["tiers"]
    best, flat = [], []
    for c in caps:
        try:
            best.append(expected(counts, propose_ratios(counts, hit, c, bounds), hit)[1])
        except SamplingRefused:
            best.append(float("nan"))
        r = min(1.0, c / max(1, sum(counts.values())))
        flat.append(expected(counts, {t: r for t in TIERS}, hit)[1])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(caps, best, marker="o", label="建议比例 advisor")
    ax.plot(caps, flat, marker="s", label="统一比例 uniform")
    if "chosen_expected" in out:
        ax.scatter(
            [out["chosen_expected"]["inspections"]],
            [out["chosen_expected"]["findings"]],
            color="red",
            zorder=3,
            label="当前比例 chosen",
        )
    ax.set_xlabel("检查能力 capacity (inspections)")
    ax.set_ylabel("预期发现问题 expected findings")
    ax.legend()
    ax.set_title(f"{out['agency_id']} 抽查比例建议 ratio advisor")
    fig.savefig(path, dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
