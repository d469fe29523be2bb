"""What every step needs: its store, the versions in force, and the refusal to redo a night
agencies have (or had) in place."""

from __future__ import annotations

import json
from pathlib import Path

from scoring.common.catalogue import Catalogue
from scoring.common.config import canonical_json
from scoring.common.errors import PipelineError
from scoring.evaluation.evaluate import Policy
from scoring.history import policy_registry
from scoring.history.store import Store, run_row
from scoring.pipeline.context import RunContext
from scoring.publication import nights


def open_store(ctx: RunContext) -> Store:
    return Store.open(ctx.db_url, ctx.home)


def policy_registry_now(ctx: RunContext) -> list[dict]:
    """The policy registry as this run knows it (every approval recorded so far)."""
    store = Store.open(ctx.db_url, ctx.home, migrate_schema=False)  # the step has migrated it
    try:
        with store.engine.connect() as conn:
            return policy_registry.entries(conn)
    finally:
        store.engine.dispose()


def configs(ctx: RunContext) -> tuple[Catalogue, Policy]:
    """The catalogue and policy the run uses: given on the context, else those in force (the
    policy by the policy registry)."""
    policy = (
        Policy.load(ctx.policy_path)
        if ctx.policy_path
        else Policy.in_force(ctx.as_of, policy_registry_now(ctx))
    )
    cat = (
        Catalogue.load(ctx.catalogue_path) if ctx.catalogue_path else Catalogue.in_force(ctx.as_of)
    )
    return cat, policy


def save_versions(store: Store, conn, cat: Catalogue, pol: Policy) -> None:
    # The manifest names these versions by hash: store them (content-addressed, never overwritten).
    store.save_artifact(
        conn, "catalogue", cat.sha256, canonical_json(cat.doc), cat.doc.get("version_label", "")
    )
    store.save_artifact(
        conn, "policy", pol.sha256, canonical_json(pol.doc), pol.doc.get("version_label", "")
    )


def refuse_published(conn, ctx: RunContext) -> None:
    """Never redo in place a run agencies have (or had): a re-run works in its own attempt (begin)."""
    row = run_row(conn, ctx.run_id)
    if row and row["status"] in ("published", "superseded"):
        raise PipelineError(
            f"run {ctx.run_id} is {row['status']}; a re-run of the night works in attempt "
            f"{nights.run_id_for(ctx.night_id, nights.next_attempt(conn, ctx.night_id))}"
        )


def read_json(path: Path, default):
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else default


def write_json(path: Path, obj, indent: int | None = 1) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=indent, sort_keys=True))
