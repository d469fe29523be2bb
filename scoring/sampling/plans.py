"""Double-random (双随机、一公开) inspection plans in the store: commit, then draw, then publish.

1. ``commit_plan``: the department's ratios (inside the bounds in force, within its capacity for
   the period counting its other plans), the population snapshot of the latest publication (each
   tier whole), the exclusions and the inspector register are frozen and hashed. The commitment is
   stored and published before any seed exists. One plan per department, period and task; a
   re-draw needs a named approver and a reason, and the abandoned plan stays on record and public.
2. ``draw_plan``: possible only once the first nightly publication after the plan's base run exists:
   its output hash is the published value the seed comes from. No production path takes a seed.
3. ``verify_plan`` redoes everything from the store; doublerandom.py redoes the draw from the public
   file alone. ``enter_results`` adds outcomes to the public file and writes them as an
   inspection-result delivery (抽查任务编号 = plan id) so they flow back into the record history.

Commit is here; store access in ``planstore``, the draw in ``draw``, the public files in
``public``, verification in ``verify``, results in ``results``, the ratio advisor in ``advisor``.
Their public names are importable from here.
"""

from __future__ import annotations

import datetime as dt

from scoring.sampling.advisor import advise, expected, hit_rates, propose_ratios
from scoring.sampling.commit import commit_plan as commit_frame
from scoring.sampling.commit import exclusions_from_history
from scoring.sampling.draw import draw_committed, draw_ready
from scoring.sampling.planstore import (
    ALGORITHM,
    INSPECTION_ITEMS,
    SEED_SOURCE,
    load_plan,
    planned_count,
    population,
    published,
    records,
    save,
    targets,
)
from scoring.sampling.public import public_dir, publish_plan
from scoring.sampling.results import enter_results
from scoring.sampling.rules import (
    AGENCIES,
    INSPECTORS,
    SamplingRefused,
    capacity_for,
    check_agency,
    check_ratios,
    check_task,
    load_register,
    parse_ratios,
    period_days,
    registry,
)
from scoring.sampling.verify import verify_plan

__all__ = [
    "AGENCIES",
    "ALGORITHM",
    "INSPECTION_ITEMS",
    "INSPECTORS",
    "SEED_SOURCE",
    "advise",
    "commit_plan",
    "draw_committed",
    "draw_ready",
    "enter_results",
    "expected",
    "hit_rates",
    "load_plan",
    "planned_count",
    "population",
    "propose_ratios",
    "public_dir",
    "publish_plan",
    "published",
    "records",
    "targets",
    "verify_plan",
]


def commit_plan(
    store,
    agency_id: str,
    ratios,
    *,
    period: str | None = None,
    task: str = "routine",
    approver: str | None = None,
    reason: str | None = None,
    agencies_path=AGENCIES,
    inspectors_path=INSPECTORS,
) -> dict:
    """Commit a department's plan for a period on the latest publication; nothing is drawn yet."""
    reg = registry(agencies_path)
    agency = check_agency(agency_id, reg)
    task = check_task(task)
    ratios = parse_ratios(ratios)
    register = load_register(inspectors_path, agency_id)
    if len(register) < 2:
        raise SamplingRefused(
            f"the register has {len(register)} inspectors for {agency_id}; two are needed per target"
        )
    base, mine, period = _base_and_period(store, agency_id, period)
    bounds = check_ratios(agency_id, period, ratios, reg)
    live = [r for r in mine if r["period"] == period and r["status"] != "abandoned"]
    same = [r for r in live if r["task"] == task]
    if same and not (approver and reason):
        raise SamplingRefused(
            f"{agency_id} already has plan {same[0]['plan_id']} for {period} ({task}); "
            "a re-draw needs a named approver and a reason"
        )
    if (approver or reason) and not same:
        raise SamplingRefused(f"nothing to re-draw: {agency_id} has no plan for {period} ({task})")
    pop, ins = population(store, base, agency)
    cfg = {
        "exclusion_days": int(reg.get("exclusion_days", 90)),
        "frequency_caps": {t: int(v) for t, v in reg.get("frequency_caps", {}).items()},
    }
    excl = exclusions_from_history(
        pop, ins, str(base.as_of), cfg["exclusion_days"], cfg["frequency_caps"]
    )
    committed = commit_frame(
        pop,
        ratios,
        agency_id=agency_id,
        period=period,
        task=task,
        exclusions=excl,
        inspectors=register,
        rules=cfg,
        base={"run_id": base.run_id, "as_of": str(base.as_of), "output_sha256": base.output_sha256},
    )
    capacity = _check_capacity(
        agency_id, period, committed, [r for r in live if r not in same], reg
    )
    attempt = 1 + sum(1 for r in mine if r["period"] == period and r["task"] == task)
    record = _plan_record(
        f"{agency_id}-{period}-{task}-{attempt}", agency["name"], attempt, committed, excl
    )
    record.update(bounds=bounds, capacity=capacity)
    _store_commitment(store, record, same, approver, reason)
    publish_plan(store, record["plan_id"])
    return record


def _base_and_period(store, agency_id: str, period: str | None) -> tuple:
    """The latest publication, the department's plans, and the period (default: the month after
    the publication), refused if it ended before the publication."""
    with store.engine.connect() as conn:
        base = published(conn)
        if base is None:
            raise SamplingRefused("no published run yet: a plan commits to a published population")
        mine = records(conn, agency_id)
    base_as_of = str(base.as_of)
    if period is None:
        nxt = dt.date.fromisoformat(base_as_of) + dt.timedelta(days=1)
        period = f"{nxt:%Y-%m}"
    _, last = period_days(period)
    if last < dt.date.fromisoformat(base_as_of):
        raise SamplingRefused(
            f"period {period} is closed: it ended before the latest publication ({base_as_of})"
        )
    return base, mine, period


def _check_capacity(agency_id: str, period: str, committed: dict, others: list, reg) -> dict:
    """The plan's inspections with the department's other live plans of the period, refused above
    its capacity."""
    need = planned_count(committed["ingredients"])
    pending = sum(planned_count(r["ingredients"]) for r in others)
    capacity = capacity_for(agency_id, reg)
    if need + pending > capacity:
        held = (
            ", ".join(f"{r['plan_id']} ({planned_count(r['ingredients'])})" for r in others)
            or "none"
        )
        raise SamplingRefused(
            f"{agency_id} {period}: this plan needs {need} inspections and its other plans {pending} "
            f"[{held}], above the capacity {capacity}; lower the ratios (`credit sample advise`)"
        )
    return {"capacity": capacity, "this_plan": need, "other_plans": pending}


def _plan_record(plan_id: str, agency_name: str, attempt: int, committed: dict, excl) -> dict:
    """A committed plan's record (bounds and capacity are filled in by the caller)."""
    ing = committed["ingredients"]
    return {
        "plan_id": plan_id,
        "agency_id": ing["agency_id"],
        "agency_name": agency_name,
        "period": ing["period"],
        "task": ing["task"],
        "attempt": attempt,
        "status": "committed",
        "base": committed["ingredients"]["base"],
        "ingredients": committed["ingredients"],
        "commitment_sha256": committed["commitment_sha256"],
        "bounds": None,
        "capacity": None,
        "exclusions_by_reason": {
            k: int(v) for k, v in excl["reason"].value_counts().sort_index().items()
        },
        "seed_source_rule": SEED_SOURCE,
        "redraw": None,
        "abandoned": None,
        "draw": None,
        "seed_source": None,
        "joint_with": {},
        "results": [],
    }


def _store_commitment(store, record: dict, same: list, approver, reason) -> None:
    """Save the plan; on a re-draw, abandon the department's plans it replaces (drawn first when
    their seed is already published), keeping them on record."""
    if same:
        record["redraw"] = {"of": same[0]["plan_id"], "approver": approver, "reason": reason}
        # a plan whose seed is already published has a draw anyone can compute: record it before abandoning
        waiting = [r["plan_id"] for r in same if r["status"] == "committed"]
        for plan_id in waiting:
            try:
                draw_committed(store, plan_id)
            except SamplingRefused as e:
                if "does not exist yet" not in str(e):
                    raise
        with store.engine.connect() as conn:
            same = [
                r
                for r in records(conn, record["agency_id"])
                if r["plan_id"] in {x["plan_id"] for x in same}
            ]
    with store.engine.begin() as conn:
        for old in same:
            old["status"] = "abandoned"
            old["abandoned"] = {"by": record["plan_id"], "approver": approver, "reason": reason}
            save(conn, old)
        save(conn, record)
