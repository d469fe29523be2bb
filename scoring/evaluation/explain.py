"""Entity explanation: every record behind one entity's evaluation in a run (Arts. 24, 35), with the
objection mark (Art. 39) on every record under objection."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from scoring.common.catalogue import Catalogue
from scoring.common.errors import PipelineError
from scoring.common.law import COURT_LISTING_ITEMS, period_bounds
from scoring.evaluation.evaluate import Policy, apply_changes, classify_records
from scoring.history.store import Store, artifacts, entity_results, runs

EXCLUSION_TEXT = {
    "not_yet_decided": "决定日期晚于评价基准日 / decided after the as-of date",
    "superseded": "已被更正版本取代 / superseded by a correction",
    "revoked": "已撤销（认定依据被撤销，第三十八条）/ revoked (its basis was revoked, Art. 38)",
    "objection_upheld": "异议成立，已撤回（第三十五、三十九条）/ objection upheld, withdrawn (Arts. 35, 39)",
    "removed_from_list": "已移出名单 / removed from the list by its source",
    "repaired": "已信用修复 / repaired",
    "expired": "公示期届满（第三十七条）/ publicity period over (Art. 37)",
    "minor_record": "轻微失信信息，原则上不予公示，不计分（国家发展改革委令2025年第36号）/ minor record: "
    "not published in principle, not scored (NDRC Order 36)",
    "no_department_finding": "无行业主管部门失信认定（第二十七条）/ no department's finding of dishonesty "
    "(Art. 27)",
    "not_scored_item": "不计分的信息项 / item not scored",
    "not_an_entity": "自然人信息不参与评价 / natural person, not evaluated",
}
OBJECTION_TEXT = {
    "pending": "异议处理中 / objection pending",
    "overdue": "异议处理中（已逾期）/ objection pending, overdue",
    "referred": "异议已转人民法院处理 / objection referred to the court",
    "upheld": "异议成立 / objection upheld",
    "partly": "异议部分成立 / objection partly upheld",
    "rejected": "异议不成立 / objection rejected",
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


def _day(v) -> str | None:
    return None if v is None or pd.isna(v) else str(pd.Timestamp(v).date())


def objection_mark(r) -> dict | None:
    """The 异议标注 a record carries: state, filing date, decision due date, overdue and whether the
    due date could not be computed (no holiday calendar for that year)."""
    state = getattr(r, "objection_state", None)
    if state is None or pd.isna(state):
        return None
    unknown = bool(getattr(r, "objection_calendar_unknown", False))
    court = getattr(r, "item_code", None) in COURT_LISTING_ITEMS
    return {
        "state": state,
        "text": OBJECTION_TEXT.get(state, state)
        + ("（已转人民法院 / referred to the court）" if state == "overdue" and court else ""),
        "received": _day(getattr(r, "objection_received", None)),
        "due": _day(getattr(r, "objection_due", None)),
        "decided": _day(getattr(r, "objection_decided", None)),
        "open": state in ("pending", "overdue", "referred"),
        "overdue": state == "overdue",
        "referred": court,
        "calendar_unknown": unknown,
    }


def load_run(store: Store, run_id: str, uscc: str) -> tuple[dict, object, dict, list[dict]]:
    """(manifest, the entity's stored result, catalogue and policy docs by hash, batches)."""
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
        wanted = [manifest["catalogue_sha256"], manifest["policy_sha256"]]
        docs = {
            r.sha256: json.loads(r.content_json)
            for r in conn.execute(sa.select(artifacts).where(artifacts.c.sha256.in_(wanted)))
        }
        batches = [
            dict(b._mapping)
            for b in conn.execute(
                sa.text(
                    "select * from record_batches where table_name in "
                    "('records', 'changes', 'exclusions')"
                )
            )
        ]
    return manifest, res, docs, batches


def classified_records(store: Store, manifest: dict, batches: list[dict], uscc: str):
    """This entity's records as the run saw them, classified on its as-of date (or None), and
    the gate's exclusions of it known by the run's cutoff, with the run's catalogue."""
    # In the run's own load order, so the latest version of a record is the one the run used.
    order = {b["batch_id"]: i for i, b in enumerate(manifest["input_batches"])}
    used = sorted(
        (b for b in batches if b["batch_id"] in order), key=lambda b: order[b["batch_id"]]
    )
    recs = store.read_batches([b for b in used if b["table_name"] == "records"])
    chg = store.read_batches([b for b in used if b["table_name"] == "changes"])
    cutoff = pd.Timestamp(manifest["knowledge_cutoff"]).date()
    exc = store.read_batches(
        [
            b
            for b in batches
            if b["table_name"] == "exclusions" and pd.Timestamp(b["known_from"]).date() <= cutoff
        ]
    )
    return recs, chg, exc


def _record_rows(cls: pd.DataFrame, cat: Catalogue) -> list[dict]:
    names = {i["code"]: i["name_zh"] for i in cat.items}
    lo, _, rule = period_bounds(
        cat.doc,
        cls["decision_date"],
        cls["grade"] if "grade" in cls else pd.Series(pd.NA, index=cls.index),
        cls["provider"] if "provider" in cls else None,
        cls["violation_type"] if "violation_type" in cls else None,
    )
    rows = []
    for r, min_months, rule_id in zip(cls.itertuples(), lo, rule):
        rows.append(
            {
                "item_code": r.item_code,
                "item": names.get(r.item_code, r.item_code),
                "doc_number": r.doc_number,
                "decision_date": _day(r.decision_date),
                "publicity_until": _day(r.publicity_until),
                "min_months": int(min_months),
                "period_rules": rule_id,
                "counts": bool(r.counts),
                "points": round(float(r.points), 1),
                "weight": round(float(r.weight), 3),
                "why_not": None if r.counts else _why(r),
                "excluded_because": None if r.counts else r.excluded_because,
                "corrected": bool(getattr(r, "corrected", False)),
                "repaired_date": _day(getattr(r, "repaired_date", None)),
                "objection": objection_mark(r),
                "source": f"{r.source_file}:{r.line_no}",
            }
        )
    return rows


def _gate_rows(exc: pd.DataFrame, uscc: str) -> list[dict]:
    if not len(exc):
        return []
    rows = []
    for r in exc[exc["uscc"] == uscc].sort_values(["decision_date", "doc_number"]).itertuples():
        rows.append(
            {
                "item_code": r.item_code,
                "item": "行政处罚（简易程序）",
                "doc_number": r.doc_number,
                "decision_date": _day(r.decision_date),
                "publicity_until": None,
                "min_months": 0,
                "period_rules": None,
                "counts": False,
                "points": 0.0,
                "weight": 0.0,
                "why_not": "适用简易程序，不属于公共信用信息（第十八条）/ " + r.reason,
                "excluded_because": "simplified_procedure",
                "corrected": False,
                "repaired_date": None,
                "objection": None,
                "source": f"{r.source_file}:{r.line_no}",
            }
        )
    return rows


def entity_explanation(store: Store, uscc: str, run_id: str) -> dict:
    """Everything explain and the entity's own report show, from the store."""
    uscc = uscc.strip().upper()
    manifest, res, docs, batches = load_run(store, run_id, uscc)
    recs, chg, exc = classified_records(store, manifest, batches, uscc)
    cat = Catalogue.from_doc(docs[manifest["catalogue_sha256"]])
    pol = Policy.from_doc(docs[manifest["policy_sha256"]])
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
            rows = _record_rows(cls, cat)
    rows += _gate_rows(exc, uscc)
    return {
        "uscc": uscc,
        "name": res.name,
        "run_id": run_id,
        "as_of": manifest["as_of"],
        "score": res.score,
        "tier": res.tier,
        "override": res.override,
        "flags": getattr(res, "flags", None),
        "reasons": res.reasons,
        "records": rows,
        "catalogue_sha256": manifest["catalogue_sha256"],
        "policy_sha256": manifest["policy_sha256"],
    }


def explanation_text(e: dict) -> str:
    lines = [
        f"{e['uscc']} {e['name']} — run {e['run_id']}, as of {e['as_of']}",
        f"score {e['score']}, tier {e['tier']}"
        + (f" (override: {e['override']})" if e["override"] else ""),
        f"reasons: {e['reasons']}",
        "records:",
    ]
    for r in e["records"]:
        status = (
            f"counts {r['points']:+.1f} (weight {r['weight']})"
            if r["counts"]
            else f"does not count: {r['why_not']}"
        )
        o = r["objection"]
        if o:
            due = "calendar unknown" if o["calendar_unknown"] else f"due {o['due'] or '-'}"
            status += f" [{o['text']}, filed {o['received']}, {due}]"
        lines.append(
            f"  {r['decision_date']} {r['item']} {r['doc_number']} — {status} [{r['source']}]"
        )
    if not e["records"]:
        lines.append("  (no records)")
    return "\n".join(lines)


def explain_entity(
    uscc: str, run_id: str, db_url: str | None = None, home: Path | None = None
) -> dict:
    e = entity_explanation(Store.open(db_url, home), uscc, run_id)
    return {**e, "text": explanation_text(e)}
