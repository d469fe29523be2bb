"""Entity explanation: every record behind one entity's evaluation in a run (Art. 24, 35)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from scoring.common.catalogue import Catalogue
from scoring.common.errors import PipelineError
from scoring.evaluation.evaluate import Policy, apply_changes, classify_records
from scoring.history.store import Store, artifacts, entity_results, runs

EXCLUSION_TEXT = {
    "not_yet_decided": "决定日期晚于评价基准日 / decided after the as-of date",
    "superseded": "已被更正版本取代 / superseded by a correction",
    "revoked": "已撤销（认定依据被撤销，第三十八条）/ revoked (its basis was revoked, Art. 38)",
    "objection_upheld": "异议成立，已撤回（第三十五、三十九条）/ objection upheld, withdrawn (Arts. 35, 39)",
    "removed_from_list": "已移出名单 / removed from the list by its source",
    "repaired": "已信用修复 / repaired",
    "objection_pending": "异议处理中，暂停计分 / under a pending objection, suspended",
    "expired": "公示期届满（第三十七条）/ publicity period over (Art. 37)",
    "not_scored_item": "不计分的信息项 / item not scored",
    "not_an_entity": "自然人信息不参与评价 / natural person, not evaluated",
}


def _why(r) -> str:
    text = EXCLUSION_TEXT.get(r.excluded_because, r.excluded_because)
    if r.excluded_because == "removed_from_list" and isinstance(
        getattr(r, "removal_reason", None), str
    ):
        text += f" ({pd.Timestamp(r.removal_date).date()}: {r.removal_reason})"
    if getattr(r, "corrected", False):
        text += "；已更正 / corrected"
    return text


def explain_entity(
    uscc: str, run_id: str, db_url: str | None = None, home: Path | None = None
) -> dict:
    store = Store.open(db_url, home)
    uscc = uscc.strip().upper()
    with store.engine.connect() as conn:
        run = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
        if run is None or not run.manifest_json:
            raise PipelineError(f"no scored run {run_id!r}")
        manifest = json.loads(run.manifest_json)
        res = conn.execute(
            sa.select(entity_results).where(
                (entity_results.c.run_id == run_id) & (entity_results.c.uscc == uscc)
            )
        ).first()
        if res is None:
            raise PipelineError(f"{uscc} was not evaluated in run {run_id}")
        docs = {
            r.sha256: json.loads(r.content_json)
            for r in conn.execute(
                sa.select(artifacts).where(
                    artifacts.c.sha256.in_(
                        [manifest["catalogue_sha256"], manifest["policy_sha256"]]
                    )
                )
            )
        }
        batches = [
            dict(b._mapping)
            for b in conn.execute(
                sa.text(
                    "select * from record_batches where table_name in ('records', 'changes', 'exclusions')"
                )
            )
        ]
    # In the run's own load order, so the latest version of a record is the one the run used.
    order = {b["batch_id"]: i for i, b in enumerate(manifest["input_batches"])}
    used = sorted(
        (b for b in batches if b["batch_id"] in order), key=lambda b: order[b["batch_id"]]
    )
    recs = store.read_batches([b for b in used if b["table_name"] == "records"])
    chg = store.read_batches([b for b in used if b["table_name"] == "changes"])
    # Rows excluded at the gate (simplified procedure) as known by the run's cutoff.
    cutoff = pd.Timestamp(manifest["knowledge_cutoff"]).date()
    exc = store.read_batches(
        [
            b
            for b in batches
            if b["table_name"] == "exclusions" and pd.Timestamp(b["known_from"]).date() <= cutoff
        ]
    )
    cat = Catalogue.from_doc(docs[manifest["catalogue_sha256"]])
    pol = Policy.from_doc(docs[manifest["policy_sha256"]])
    mine = recs[recs["uscc"] == uscc] if len(recs) else recs
    rows = []
    if len(recs):
        # Corrections can move a record between subjects: apply them before picking this entity's.
        every = apply_changes(
            recs.drop_duplicates("record_key", keep="last"), chg, manifest["as_of"]
        )
        mine = every[every["uscc"] == uscc]
    if len(mine):
        cls = classify_records(mine, cat, pol, manifest["as_of"]).sort_values(
            ["decision_date", "record_key"]
        )
        names = {i["code"]: i["name_zh"] for i in cat.items}
        for r in cls.itertuples():
            rows.append(
                {
                    "item_code": r.item_code,
                    "item": names.get(r.item_code, r.item_code),
                    "doc_number": r.doc_number,
                    "decision_date": str(pd.Timestamp(r.decision_date).date()),
                    "publicity_until": None
                    if pd.isna(r.publicity_until)
                    else str(pd.Timestamp(r.publicity_until).date()),
                    "counts": bool(r.counts),
                    "points": round(float(r.points), 1),
                    "weight": round(float(r.weight), 3),
                    "why_not": None if r.counts else _why(r),
                    "corrected": bool(getattr(r, "corrected", False)),
                    "objection": None
                    if pd.isna(getattr(r, "objection_state", None))
                    else r.objection_state,
                    "source": f"{r.source_file}:{r.line_no}",
                }
            )
    if len(exc):
        for r in exc[exc["uscc"] == uscc].sort_values(["decision_date", "doc_number"]).itertuples():
            rows.append(
                {
                    "item_code": r.item_code,
                    "item": "行政处罚（简易程序）",
                    "doc_number": r.doc_number,
                    "decision_date": str(pd.Timestamp(r.decision_date).date()),
                    "publicity_until": None,
                    "counts": False,
                    "points": 0.0,
                    "weight": 0.0,
                    "why_not": "适用简易程序，不属于公共信用信息（第十八条）/ " + r.reason,
                    "corrected": False,
                    "objection": None,
                    "source": f"{r.source_file}:{r.line_no}",
                }
            )
    lines = [
        f"{uscc} {res.name} — run {run_id}, as of {manifest['as_of']}",
        f"score {res.score}, tier {res.tier}{' (override: ' + res.override + ')' if res.override else ''}",
        f"reasons: {res.reasons}",
        "records:",
    ]
    for r in rows:
        status = (
            f"counts {r['points']:+.1f} (weight {r['weight']})"
            if r["counts"]
            else f"does not count: {r['why_not']}"
        )
        lines.append(
            f"  {r['decision_date']} {r['item']} {r['doc_number']} — {status} [{r['source']}]"
        )
    if not rows:
        lines.append("  (no records)")
    return {
        "uscc": uscc,
        "run_id": run_id,
        "as_of": manifest["as_of"],
        "score": res.score,
        "tier": res.tier,
        "override": res.override,
        "reasons": res.reasons,
        "records": rows,
        "text": "\n".join(lines),
    }
