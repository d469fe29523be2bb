"""Inspection results of a drawn plan: into its public file, and back into the record history as
an inspection-result delivery tagged with the plan."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scoring.sampling.planstore import load_plan, save, targets
from scoring.sampling.public import publish_plan
from scoring.sampling.rules import SamplingRefused, period_days


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
        save(conn, record)
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
