"""A sampling plan's store access: the published runs a plan commits to and draws its seed from,
the population and inspections of a published run, the plan records, and a drawn plan's targets."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import sqlalchemy as sa

from scoring.common.config import canonical_json
from scoring.history.inputs import load_inputs
from scoring.history.store import entity_results, runs, sampling_plans
from scoring.publication.publish import in_scope
from scoring.sampling import doublerandom as dr
from scoring.sampling.commit import draw_plan as draw_frame
from scoring.sampling.rules import TIERS, SamplingRefused, check_agency, registry

ALGORITHM = dr.ALGORITHM
INSPECTION_ITEMS = ("INSPECTION_PASS", "INSPECTION_FAIL")
SEED_SOURCE = (
    "output_sha256 of the first published nightly run with as_of after the plan's base run"
)


def published(conn, run_id: str | None = None, after: str | None = None):
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


def population(store, run, agency: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
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


def records(conn, agency_id: str | None = None) -> list[dict]:
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


def save(conn, record: dict) -> None:
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
        base = published(conn, run_id=record["base"]["run_id"])
    pop, _ = population(store, base, check_agency(record["agency_id"], registry()))
    committed = {k: record[k] for k in ("ingredients", "commitment_sha256")}
    drawn, _ = draw_frame(committed, pop, record["seed_source"]["value"])
    return drawn.merge(pop[["uscc", "name", "eval_class"]], on="uscc", how="left")[cols]
