"""一公开: a plan's public files (JSON, and CSV for Excel/WPS) with every abandoned attempt, and the
agency's own copy with unmasked targets and inspector names."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from scoring.publication.masking import mask_name
from scoring.publication.publish import write_outbox
from scoring.sampling.planstore import ALGORITHM, load_plan, records, targets


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
            for r in records(conn, record["agency_id"])
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
    rows = _csv_rows(doc)
    folder = public_dir(store, current)
    files = {
        "plan.json": json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8"),
        "plan.csv": pd.DataFrame(rows)
        .to_csv(index=False, lineterminator="\r\n")
        .encode("utf-8-sig"),
    }
    write_outbox(folder, files, home=store.home)
    _write_agency_copy(store, current, current_targets, files["plan.json"])
    return {name: folder / name for name in files}


def _csv_rows(doc: dict) -> list[dict]:
    """The public CSV: one row per target of the current attempt and of each abandoned one."""
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
    return rows


def _write_agency_copy(
    store, current: dict, current_targets: pd.DataFrame, plan_json: bytes
) -> None:
    """The agency's own copy: unmasked targets with inspector names, beside the public plan."""
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
            "plan.json": plan_json,
            "inspections.csv": agency_csv.to_csv(index=False, lineterminator="\r\n").encode(
                "utf-8-sig"
            ),
        },
        home=store.home,
    )
