"""Entity explanation: every record behind one entity's evaluation in a run (Art. 24, 35)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from scoring.common.catalogue import Catalogue
from scoring.common.errors import PipelineError
from scoring.evaluation.evaluate import Policy, classify_records
from scoring.history.store import Store, artifacts, entity_results, runs

EXCLUSION_TEXT = {
    "not_yet_decided": "决定日期晚于评价基准日 / decided after the as-of date",
    "superseded": "已被更正版本取代 / superseded by a correction",
    "revoked": "已撤销 / revoked",
    "repaired": "已信用修复 / repaired",
    "objection_pending": "异议处理中，暂停计分 / under a pending objection, suspended",
    "expired": "公示期届满 / publicity period over",
    "not_scored_item": "不计分的信息项 / item not scored",
    "not_an_entity": "自然人信息不参与评价 / natural person, not evaluated",
}


def explain_entity(uscc: str, run_id: str, db_url: str | None = None, home: Path | None = None) -> dict:
    store = Store.open(db_url, home)
    uscc = uscc.strip().upper()
    with store.engine.connect() as conn:
        run = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
        if run is None or not run.manifest_json:
            raise PipelineError(f"no scored run {run_id!r}")
        manifest = json.loads(run.manifest_json)
        res = conn.execute(sa.select(entity_results).where((entity_results.c.run_id == run_id) &
                                                           (entity_results.c.uscc == uscc))).first()
        if res is None:
            raise PipelineError(f"{uscc} was not evaluated in run {run_id}")
        docs = {r.sha256: json.loads(r.content_json) for r in conn.execute(
            sa.select(artifacts).where(artifacts.c.sha256.in_([manifest["catalogue_sha256"], manifest["policy_sha256"]])))}
        batches = [dict(b._mapping) for b in conn.execute(sa.text(
            "select * from record_batches where table_name = 'records'"))]
    wanted = {b["batch_id"] for b in manifest["input_batches"]}
    recs = store.read_batches([b for b in batches if b["batch_id"] in wanted])
    cat = Catalogue.from_doc(docs[manifest["catalogue_sha256"]])
    pol = Policy.from_doc(docs[manifest["policy_sha256"]])
    mine = recs[recs["uscc"] == uscc] if len(recs) else recs
    rows = []
    if len(mine):
        mine = mine.drop_duplicates("record_key", keep="last")
        cls = classify_records(mine, cat, pol, manifest["as_of"]).sort_values(["decision_date", "record_key"])
        names = {i["code"]: i["name_zh"] for i in cat.items}
        for r in cls.itertuples():
            rows.append({"item_code": r.item_code, "item": names.get(r.item_code, r.item_code),
                         "doc_number": r.doc_number, "decision_date": str(pd.Timestamp(r.decision_date).date()),
                         "publicity_until": None if pd.isna(r.publicity_until) else str(pd.Timestamp(r.publicity_until).date()),
                         "counts": bool(r.counts), "points": round(float(r.points), 1),
                         "weight": round(float(r.weight), 3),
                         "why_not": None if r.counts else EXCLUSION_TEXT.get(r.excluded_because, r.excluded_because),
                         "source": f"{r.source_file}:{r.line_no}"})
    lines = [f"{uscc} {res.name} — run {run_id}, as of {manifest['as_of']}",
             f"score {res.score}, tier {res.tier}{' (override: ' + res.override + ')' if res.override else ''}",
             f"reasons: {res.reasons}", "records:"]
    for r in rows:
        status = f"counts {r['points']:+.1f} (weight {r['weight']})" if r["counts"] else f"does not count: {r['why_not']}"
        lines.append(f"  {r['decision_date']} {r['item']} {r['doc_number']} — {status} [{r['source']}]")
    if not rows:
        lines.append("  (no records)")
    return {"uscc": uscc, "run_id": run_id, "as_of": manifest["as_of"], "score": res.score, "tier": res.tier,
            "override": res.override, "reasons": res.reasons, "records": rows, "text": "\n".join(lines)}
