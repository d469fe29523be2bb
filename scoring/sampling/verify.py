"""Verification of a plan from the store: commitment, population, exclusions, register, seed
source, draw, and the public file through the standalone verifier."""

from __future__ import annotations

import json

from scoring.sampling import doublerandom as dr
from scoring.sampling.commit import commit_plan as commit_frame
from scoring.sampling.commit import exclusions_from_history
from scoring.sampling.planstore import load_plan, population, published
from scoring.sampling.public import public_dir
from scoring.sampling.rules import INSPECTORS, check_agency, load_register, registry


def verify_plan(store, plan_id: str, inspectors_path=INSPECTORS) -> dict:
    """Redo a plan from the store: commitment, population, exclusions, register, seed source, draw,
    and the public file through the standalone verifier."""
    record = load_plan(store, plan_id)
    ing = record["ingredients"]
    checks = {"commitment": dr.commitment_sha256(ing) == record["commitment_sha256"]}
    with store.engine.connect() as conn:
        base = published(conn, run_id=record["base"]["run_id"])
        source = (
            published(conn, run_id=record["seed_source"]["run_id"])
            if record.get("seed_source")
            else None
        )
    checks["base_run"] = base is not None and base.output_sha256 == record["base"]["output_sha256"]
    if base is not None:
        reg = registry()
        pop, ins = population(store, base, check_agency(record["agency_id"], reg))
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
