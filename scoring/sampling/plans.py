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
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from scoring.common.config import canonical_json
from scoring.history.inputs import load_inputs
from scoring.history.store import entity_results, runs, sampling_plans
from scoring.publication.masking import mask_name
from scoring.publication.publish import in_scope, write_outbox
from scoring.sampling import doublerandom as dr
from scoring.sampling.commit import commit_plan as commit_frame
from scoring.sampling.commit import draw_plan as draw_frame
from scoring.sampling.commit import exclusions_from_history
from scoring.sampling.rules import (
    AGENCIES,
    INSPECTORS,
    TIERS,
    SamplingRefused,
    bounds_for,
    capacity_for,
    check_agency,
    check_ratios,
    load_register,
    parse_ratios,
    period_days,
    registry,
)

ALGORITHM = dr.ALGORITHM
INSPECTION_ITEMS = ("INSPECTION_PASS", "INSPECTION_FAIL")
SEED_SOURCE = (
    "output_sha256 of the first published nightly run with as_of after the plan's base run"
)


# --------------------------------------------------------------------------- store access


def _published(conn, run_id: str | None = None, after: str | None = None):
    # A run that was published and later superseded by a re-run of its night (status
    # "superseded") was still published: plans keep their base and seed source through re-runs.
    was = sa.select(runs).where(runs.c.status.in_(["published", "superseded"]))
    if run_id:
        return conn.execute(was.where(runs.c.run_id == run_id)).first()
    if after:
        q = was.where(runs.c.as_of > dt.date.fromisoformat(after)).order_by(
            runs.c.as_of, runs.c.run_id
        )
        return conn.execute(q.limit(1)).first()
    q = sa.select(runs).where(runs.c.status == "published")
    return conn.execute(q.order_by(runs.c.as_of.desc(), runs.c.run_id.desc()).limit(1)).first()


def _population(store, run, agency: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """In-scope entities of a published run (uscc, tier, name, eval_class) and the inspections known
    to it (uscc, item_code, decision_date, doc_number)."""
    with store.engine.connect() as conn:
        res = pd.read_sql(
            sa.select(
                entity_results.c.uscc,
                entity_results.c.tier,
                entity_results.c.name,
                entity_results.c.eval_class,
                entity_results.c.division_code,
                entity_results.c.industry,
            ).where(entity_results.c.run_id == run.run_id),
            conn,
        )
        manifest = json.loads(run.manifest_json)
        _, rec, _ = load_inputs(
            store,
            conn,
            manifest["knowledge_cutoff"],
            batch_ids=[b["batch_id"] for b in manifest["input_batches"]],
        )[:3]
    pop = (
        res[in_scope(res, agency)].astype({"tier": str}).sort_values("uscc").reset_index(drop=True)
    )
    cols = ["uscc", "item_code", "decision_date", "doc_number"]
    ins = (
        rec[rec["item_code"].isin(INSPECTION_ITEMS)][cols]
        if len(rec)
        else pd.DataFrame(columns=cols)
    )
    return pop, ins.reset_index(drop=True)


def _records(conn, agency_id: str | None = None) -> list[dict]:
    q = sa.select(sampling_plans.c.record_json).order_by(sampling_plans.c.plan_id)
    if agency_id:
        q = q.where(sampling_plans.c.agency_id == agency_id)
    return [json.loads(t) for t in conn.execute(q).scalars()]


def load_plan(store, plan_id: str) -> dict:
    with store.engine.connect() as conn:
        text = conn.execute(
            sa.select(sampling_plans.c.record_json).where(sampling_plans.c.plan_id == plan_id)
        ).scalar()
    if text is None:
        raise SamplingRefused(f"no sampling plan {plan_id!r}")
    return json.loads(text)


def _save(conn, record: dict) -> None:
    conn.execute(sa.delete(sampling_plans).where(sampling_plans.c.plan_id == record["plan_id"]))
    conn.execute(
        sampling_plans.insert().values(
            plan_id=record["plan_id"],
            agency_id=record["agency_id"],
            run_id=record["base"]["run_id"],
            as_of=record["base"]["as_of"],
            record_json=canonical_json(record),
        )
    )


def planned_count(ingredients: dict) -> int:
    return sum(dr.tier_count(ingredients["ratios"][t], ingredients["frame"][t]) for t in TIERS)


# --------------------------------------------------------------------------- commit


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
    ratios = parse_ratios(ratios)
    register = load_register(inspectors_path, agency_id)
    if len(register) < 2:
        raise SamplingRefused(
            f"the register has {len(register)} inspectors for {agency_id}; two are needed per target"
        )
    with store.engine.connect() as conn:
        base = _published(conn)
        if base is None:
            raise SamplingRefused("no published run yet: a plan commits to a published population")
        mine = _records(conn, agency_id)
    base_as_of = str(base.as_of)
    if period is None:
        nxt = dt.date.fromisoformat(base_as_of) + dt.timedelta(days=1)
        period = f"{nxt:%Y-%m}"
    first, last = period_days(period)
    if last < dt.date.fromisoformat(base_as_of):
        raise SamplingRefused(
            f"period {period} is closed: it ended before the latest publication ({base_as_of})"
        )
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
    pop, ins = _population(store, base, agency)
    cfg = {
        "exclusion_days": int(reg.get("exclusion_days", 90)),
        "frequency_caps": {t: int(v) for t, v in reg.get("frequency_caps", {}).items()},
    }
    excl = exclusions_from_history(
        pop, ins, base_as_of, cfg["exclusion_days"], cfg["frequency_caps"]
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
        base={"run_id": base.run_id, "as_of": base_as_of, "output_sha256": base.output_sha256},
    )
    need = planned_count(committed["ingredients"])
    others = [r for r in live if r not in same]
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
    attempt = 1 + sum(1 for r in mine if r["period"] == period and r["task"] == task)
    record = {
        "plan_id": f"{agency_id}-{period}-{task}-{attempt}",
        "agency_id": agency_id,
        "agency_name": agency["name"],
        "period": period,
        "task": task,
        "attempt": attempt,
        "status": "committed",
        "base": committed["ingredients"]["base"],
        "ingredients": committed["ingredients"],
        "commitment_sha256": committed["commitment_sha256"],
        "bounds": bounds,
        "capacity": {"capacity": capacity, "this_plan": need, "other_plans": pending},
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
                r for r in _records(conn, agency_id) if r["plan_id"] in {x["plan_id"] for x in same}
            ]
    with store.engine.begin() as conn:
        for old in same:
            old["status"] = "abandoned"
            old["abandoned"] = {"by": record["plan_id"], "approver": approver, "reason": reason}
            _save(conn, old)
        _save(conn, record)
    publish_plan(store, record["plan_id"])
    return record


# --------------------------------------------------------------------------- draw


def draw_committed(store, plan_id: str) -> dict:
    """Draw a committed plan with the seed from the first publication after its base run.
    Refused while that publication does not exist: until then nobody knows the draw."""
    record = load_plan(store, plan_id)
    if record["status"] != "committed":
        raise SamplingRefused(f"plan {plan_id} is {record['status']}, not waiting for a draw")
    with store.engine.connect() as conn:
        source = _published(conn, after=record["base"]["as_of"])
        base = _published(conn, run_id=record["base"]["run_id"])
    if source is None:
        raise SamplingRefused(
            f"plan {plan_id} is committed; its seed is the output hash of the first publication "
            f"after {record['base']['as_of']}, which does not exist yet — nothing drawn"
        )
    if base is None:
        raise SamplingRefused(
            f"the base run {record['base']['run_id']} of plan {plan_id} is no longer published"
        )
    agency = check_agency(record["agency_id"], registry())
    pop, _ = _population(store, base, agency)
    committed = {k: record[k] for k in ("ingredients", "commitment_sha256")}
    drawn, out = draw_frame(
        committed,
        pop,
        source.output_sha256,
        seed_source={"rule": SEED_SOURCE, "run_id": source.run_id, "as_of": str(source.as_of)},
    )
    record.update(status="drawn", seed_source=out["seed_source"], draw=out["draw"])
    with store.engine.connect() as conn:
        others = _records(conn)
    record["joint_with"] = _joint_with(store, others, record, set(drawn["uscc"]))
    with store.engine.begin() as conn:
        _save(conn, record)
    publish_plan(
        store, plan_id, drawn.merge(pop[["uscc", "name", "eval_class"]], on="uscc", how="left")
    )
    return record


def _joint_with(store, records: list[dict], record: dict, mine: set[str]) -> dict[str, list[str]]:
    """Targets other departments' drawn plans of the same period also hold: one joint inspection
    each (Regulation on Optimizing the Business Environment, Art. 54). USCC → the other plans."""
    out: dict[str, list[str]] = {}
    for other in records:
        if (
            other["agency_id"] == record["agency_id"]
            or other["period"] != record["period"]
            or other["status"] != "drawn"
        ):
            continue
        for u in sorted(mine & set(targets(store, other)["uscc"])):
            out.setdefault(u, []).append(other["plan_id"])
    return out


def draw_ready(store) -> list[dict]:
    """Draw every committed plan whose seed publication now exists (the DAG after each night)."""
    with store.engine.connect() as conn:
        waiting = [r["plan_id"] for r in _records(conn) if r["status"] == "committed"]
    out = []
    for plan_id in waiting:
        try:
            out.append(draw_committed(store, plan_id))
        except SamplingRefused as e:
            if "does not exist yet" not in str(e):
                raise
    return out


def targets(store, record: dict) -> pd.DataFrame:
    """The drawn entities of a plan with names, classes and inspector teams (agency view)."""
    cols = [
        "uscc",
        "name",
        "eval_class",
        "tier",
        "position",
        "rank",
        "inspectors",
        "units",
        "recused",
    ]
    if not record.get("draw"):
        return pd.DataFrame(columns=cols)
    with store.engine.connect() as conn:
        base = _published(conn, run_id=record["base"]["run_id"])
    pop, _ = _population(store, base, check_agency(record["agency_id"], registry()))
    committed = {k: record[k] for k in ("ingredients", "commitment_sha256")}
    drawn, _ = draw_frame(committed, pop, record["seed_source"]["value"])
    return drawn.merge(pop[["uscc", "name", "eval_class"]], on="uscc", how="left")[cols]


# --------------------------------------------------------------------------- verify


def verify_plan(store, plan_id: str, inspectors_path=INSPECTORS) -> dict:
    """Redo a plan from the store: commitment, population, exclusions, register, seed source, draw,
    and the public file through the standalone verifier."""
    record = load_plan(store, plan_id)
    ing = record["ingredients"]
    checks = {"commitment": dr.commitment_sha256(ing) == record["commitment_sha256"]}
    with store.engine.connect() as conn:
        base = _published(conn, run_id=record["base"]["run_id"])
        source = (
            _published(conn, run_id=record["seed_source"]["run_id"])
            if record.get("seed_source")
            else None
        )
    checks["base_run"] = base is not None and base.output_sha256 == record["base"]["output_sha256"]
    if base is not None:
        reg = registry()
        pop, ins = _population(store, base, check_agency(record["agency_id"], reg))
        rules = ing["exclusion_rules"]
        excl = exclusions_from_history(
            pop, ins, record["base"]["as_of"], rules["exclusion_days"], rules["frequency_caps"]
        )
        redo = commit_frame(
            pop,
            ing["ratios"],
            agency_id=ing["agency_id"],
            period=ing["period"],
            task=ing["task"],
            exclusions=excl,
            inspectors=load_register(inspectors_path, record["agency_id"]),
            rules=rules,
            base=ing["base"],
        )["ingredients"]
        checks["population"] = redo["frame_sha256"] == ing["frame_sha256"]
        checks["exclusions"] = redo["exclusions"] == ing["exclusions"]
        # the register may change after a commit (it is versioned with the configuration); the draw
        # uses the frozen one, so a change is reported, not a failure
        register_unchanged = (
            redo["register_sha256"] == ing["register_sha256"]
            and redo["recusals"] == ing["recusals"]
        )
    if record.get("draw"):
        checks["seed_source"] = (
            source is not None
            and source.output_sha256 == record["seed_source"]["value"]
            and str(source.as_of) > record["base"]["as_of"]
        )
        again = dr.draw(
            ing, dr.derive_seed(record["commitment_sha256"], record["seed_source"]["value"])
        )
        checks["draw"] = again == record["draw"]
    path = public_dir(store, record) / "plan.json"
    checks["public_file"] = path.exists() and not dr.verify(
        json.loads(path.read_text(encoding="utf-8"))
    )
    return {
        "plan_id": plan_id,
        "status": record["status"],
        "verified": all(checks.values()),
        "checks": checks,
        "register_unchanged_since_commit": register_unchanged if base is not None else None,
    }


# --------------------------------------------------------------------------- 一公开


def public_dir(store, record: dict) -> Path:
    return (
        Path(store.home)
        / "public"
        / "sampling"
        / record["agency_id"]
        / f"{record['period']}-{record['task']}"
    )


def _public_entities(t: pd.DataFrame) -> pd.DataFrame:
    """Art. 23: organisations by name and USCC; individual businesses with masked name and code;
    natural persons never identified."""
    cls = t["eval_class"].fillna("")
    person = cls.eq("natural_person")
    indiv = cls.eq("individual_business")
    name = t["name"].fillna("").astype(str)
    code = t["uscc"].astype(str)
    name = name.where(~indiv, mask_name(name).astype(str)).where(~person, "自然人（不公开）")
    code = code.where(~indiv, code.str[:8] + "********" + code.str[-2:]).where(~person, "")
    return pd.DataFrame({"entity": name.to_numpy(), "uscc": code.to_numpy()}, index=t.index)


def _public_part(store, record: dict, t: pd.DataFrame | None = None) -> dict:
    part = {
        k: record[k]
        for k in (
            "plan_id",
            "period",
            "task",
            "attempt",
            "status",
            "ingredients",
            "commitment_sha256",
            "seed_source_rule",
            "seed_source",
            "draw",
            "redraw",
            "bounds",
            "capacity",
            "exclusions_by_reason",
            "joint_with",
        )
    }
    part["superseded"] = record["abandoned"]
    load: dict[str, int] = {}
    for a in (record.get("draw") or {}).get("assignments", []):
        for i in a["inspectors"]:
            load[i] = load.get(i, 0) + 1
    part["workload"] = dict(sorted(load.items()))
    t = targets(store, record) if t is None else t
    results = {r["uscc"]: r for r in record.get("results", [])}
    shown = _public_entities(t)
    part["targets"] = [
        {
            "entity": e,
            "uscc": c,
            "units": list(u),
            "result": results.get(full, {}).get("result"),
            "inspection_date": results.get(full, {}).get("inspection_date"),
        }
        for e, c, u, full in zip(shown["entity"], shown["uscc"], t["units"], t["uscc"])
    ]
    part["targets"].sort(key=lambda x: (x["uscc"], x["entity"]))
    return part


def publish_plan(
    store, plan_id: str, current_targets: pd.DataFrame | None = None
) -> dict[str, Path]:
    """Write the plan's public files (JSON, and CSV with BOM for Excel/WPS): the current attempt with
    every abandoned one of the same department, period and task, and the agency's own copy with
    unmasked targets and inspector names."""
    record = load_plan(store, plan_id)
    with store.engine.connect() as conn:
        siblings = [
            r
            for r in _records(conn, record["agency_id"])
            if r["period"] == record["period"] and r["task"] == record["task"]
        ]
    current = max(siblings, key=lambda r: r["attempt"])
    if current_targets is None or current["plan_id"] != plan_id:
        current_targets = targets(store, current)
    doc = {
        "title": "双随机、一公开 抽查计划 double-random inspection plan",
        "agency_id": current["agency_id"],
        "agency_name": current["agency_name"],
        "algorithm": ALGORITHM,
        "verify": "python doublerandom.py plan.json (standard library only)",
        **_public_part(store, current, current_targets),
        "abandoned": [
            _public_part(store, r)
            for r in sorted(siblings, key=lambda r: r["attempt"])
            if r is not current
        ],
    }
    rows = []
    for part in [doc] + doc["abandoned"]:
        for t in part["targets"] or [{}]:
            rows.append(
                {
                    "计划编号 plan": part["plan_id"],
                    "部门 agency": doc["agency_name"],
                    "期间 period": part["period"],
                    "任务 task": part["task"],
                    "状态 status": part["status"],
                    "承诺哈希 commitment": part["commitment_sha256"],
                    "种子来源 seed source": (part["seed_source"] or {}).get(
                        "run_id", "（待下次发布 pending）"
                    ),
                    "种子 seed": (part["draw"] or {}).get("seed", ""),
                    "重新抽取 re-draw": json.dumps(part["redraw"], ensure_ascii=False)
                    if part["redraw"]
                    else "",
                    "检查对象 entity": t.get("entity", ""),
                    "统一社会信用代码 USCC": t.get("uscc", ""),
                    "检查单位 units": ";".join(t.get("units") or []),
                    "检查结果 result": t.get("result") or "",
                    "检查日期 date": t.get("inspection_date") or "",
                }
            )
    folder = public_dir(store, current)
    files = {
        "plan.json": json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8"),
        "plan.csv": pd.DataFrame(rows)
        .to_csv(index=False, lineterminator="\r\n")
        .encode("utf-8-sig"),
    }
    write_outbox(folder, files)
    t = current_targets.reindex(
        columns=[
            "uscc",
            "name",
            "eval_class",
            "tier",
            "position",
            "rank",
            "inspectors",
            "units",
            "recused",
        ]
    )
    joined = {
        c: t[c].map(lambda x: ";".join(x) if isinstance(x, list) else "")
        for c in ("inspectors", "units", "recused")
    }
    agency_csv = t.assign(**joined)
    write_outbox(
        Path(store.home) / "outbox" / current["agency_id"] / "sampling" / current["plan_id"],
        {
            "plan.json": files["plan.json"],
            "inspections.csv": agency_csv.to_csv(index=False, lineterminator="\r\n").encode(
                "utf-8-sig"
            ),
        },
    )
    return {name: folder / name for name in files}


# --------------------------------------------------------------------------- results flow back


def enter_results(
    store, plan_id: str, results: pd.DataFrame, landing: Path | str | None = None
) -> dict:
    """Record inspection outcomes of a drawn plan (uscc, inspection_date, problem_found 0/1 or
    result text), republish its public file, and write them as an inspection-result delivery for
    the provider folder samr (抽查任务编号 = plan id), so the next night takes them into the
    record history as INSPECTION_PASS / INSPECTION_FAIL tagged with the plan."""
    record = load_plan(store, plan_id)
    if record["status"] not in ("drawn",):
        raise SamplingRefused(f"plan {plan_id} is {record['status']}: results go to a drawn plan")
    t = targets(store, record)
    drawn = set(t["uscc"])
    res = results.copy()
    res["uscc"] = res["uscc"].astype(str).str.strip().str.upper()
    unknown = sorted(set(res["uscc"]) - drawn)
    if unknown:
        raise SamplingRefused(
            f"{unknown[0]} is not a target of plan {plan_id} ({len(unknown)} such rows); nothing entered"
        )
    if "result" not in res:
        words = {
            "1": "发现问题",
            "true": "发现问题",
            "yes": "发现问题",
            "是": "发现问题",
            "0": "未发现问题",
            "false": "未发现问题",
            "no": "未发现问题",
            "否": "未发现问题",
        }
        res["result"] = res["problem_found"].astype(str).str.strip().str.lower().map(words)
    if res["result"].isna().any():
        raise SamplingRefused(
            f"bad result for {res.loc[res['result'].isna(), 'uscc'].iloc[0]}: problem_found is "
            "1/0 (or a result text); nothing entered"
        )
    days = pd.to_datetime(res["inspection_date"], errors="coerce")
    if days.isna().any():
        raise SamplingRefused(
            f"bad inspection date {res.loc[days.isna(), 'inspection_date'].iloc[0]!r}; nothing entered"
        )
    first, _ = period_days(record["period"])
    if (days.dt.date < first).any():
        raise SamplingRefused(
            f"an inspection dated before the plan's period {record['period']}; nothing entered"
        )
    res["inspection_date"] = days.dt.strftime("%Y-%m-%d")
    entered = {r["uscc"]: r for r in record.get("results", [])}
    for r in res[["uscc", "inspection_date", "result"]].to_dict("records"):
        entered[r["uscc"]] = r
    record["results"] = [entered[u] for u in sorted(entered)]
    with store.engine.begin() as conn:
        _save(conn, record)
    publish_plan(store, plan_id, t)
    out = {"plan_id": plan_id, "entered": len(res), "results": len(record["results"])}
    if landing is not None:
        names = dict(zip(t["uscc"], t["name"]))
        feed = pd.DataFrame(
            {
                "抽查任务编号": plan_id,
                "检查对象名称": res["uscc"].map(names),
                "统一社会信用代码": res["uscc"],
                "检查日期": res["inspection_date"],
                "检查结果": res["result"],
                "检查实施机关": record["agency_name"],
                "备注": f"双随机抽查 {record['period']} {record['task']}",
            }
        )
        day = max(res["inspection_date"]).replace("-", "")
        path = Path(landing) / "samr" / f"{day}_inspection_result.csv"
        if path.exists():
            raise SamplingRefused(
                f"{path} already exists; deliver these results under another date"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial")
        tmp.write_bytes(feed.to_csv(index=False, lineterminator="\r\n").encode("utf-8-sig"))
        tmp.rename(path)
        out["delivery"] = str(path)
    return out


# --------------------------------------------------------------------------- ratio advisor


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
        base = _published(conn)
        if base is None:
            raise SamplingRefused("no published run yet")
        mine = _records(conn, agency_id)
        plan_ids = {r["plan_id"] for r in _records(conn)}
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
    pop, ins = _population(store, base, agency)
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
        chosen = parse_ratios(ratios)
        need = expected(counts, chosen, known)
        out["chosen"] = chosen
        out["chosen_expected"] = dict(zip(("inspections", "findings"), need))
        if need[0] > cap:
            loses = [
                f"{t} {chosen[t]}→{proposal[t]} (−{dr.tier_count(chosen[t], counts[t]) - dr.tier_count(proposal[t], counts[t])})"
                for t in TIERS
                if dr.tier_count(proposal[t], counts[t]) < dr.tier_count(chosen[t], counts[t])
            ]
            out["statement"] = (
                f"the chosen ratios need {need[0]} inspections but {cap} are left this period "
                f"(capacity {full}, other plans {pending}); scaled down: " + ", ".join(loses)
            )
    if plot_path:
        _plot_advice(out, known, plot_path)
        out["plot"] = str(plot_path)
    return out


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
