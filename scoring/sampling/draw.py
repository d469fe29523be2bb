"""The draw of a committed plan: its seed is the output hash of the first publication after its
base run, so nobody can know the draw before that publication exists."""

from __future__ import annotations

from scoring.sampling.commit import draw_plan as draw_frame
from scoring.sampling.planstore import (
    SEED_SOURCE,
    load_plan,
    population,
    published,
    records,
    save,
    targets,
)
from scoring.sampling.public import publish_plan
from scoring.sampling.rules import SamplingRefused, check_agency, registry


def draw_committed(store, plan_id: str) -> dict:
    """Draw a committed plan with the seed from the first publication after its base run.
    Refused while that publication does not exist: until then nobody knows the draw."""
    record = load_plan(store, plan_id)
    if record["status"] != "committed":
        raise SamplingRefused(f"plan {plan_id} is {record['status']}, not waiting for a draw")
    with store.engine.connect() as conn:
        source = published(conn, after=record["base"]["as_of"])
        base = published(conn, run_id=record["base"]["run_id"])
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
    pop, _ = population(store, base, agency)
    committed = {k: record[k] for k in ("ingredients", "commitment_sha256")}
    drawn, out = draw_frame(
        committed,
        pop,
        source.output_sha256,
        seed_source={"rule": SEED_SOURCE, "run_id": source.run_id, "as_of": str(source.as_of)},
    )
    record.update(status="drawn", seed_source=out["seed_source"], draw=out["draw"])
    with store.engine.connect() as conn:
        others = records(conn)
    record["joint_with"] = _joint_with(store, others, record, set(drawn["uscc"]))
    with store.engine.begin() as conn:
        save(conn, record)
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
        waiting = [r["plan_id"] for r in records(conn) if r["status"] == "committed"]
    out = []
    for plan_id in waiting:
        try:
            out.append(draw_committed(store, plan_id))
        except SamplingRefused as e:
            if "does not exist yet" not in str(e):
                raise
    return out
