"""score: evaluate every active entity as of the as-of date with what was known at the cutoff.

The evaluation is cut into entity-hash partitions: ``plan_partitions`` fixes what each reads,
``evaluate_partition`` evaluates one (an orchestrator may map them over its workers), and
``score`` evaluates those not done yet, merges the pieces in USCC order, checks them against the
entity_score contract and stores them with the run's manifest.
"""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from scoring.audit.manifest import build_manifest
from scoring.common.catalogue import Catalogue
from scoring.common.config import canonical_json, content_hash
from scoring.common.errors import GateFailed, PipelineError
from scoring.evaluation import evaluate, piece_files
from scoring.evaluation import partitioned as part
from scoring.evaluation.provider_deadlines import night_corrections
from scoring.history import results as stored
from scoring.history.folders import RunFolder
from scoring.history.gates import gate_verdicts
from scoring.history.inputs import visible_inputs
from scoring.history.store import Store, run_row, sha256_file, update_run, write_parquet
from scoring.pipeline.context import RunContext
from scoring.pipeline.steps.common import (
    configs,
    open_store,
    policy_registry_now,
    read_json,
    refuse_published,
    save_versions,
    write_json,
)
from scoring.publication import publish as pub
from scoring.publication.free_text import mask_text_frame
from scoring.quality import gates as qg
from scoring.reporting.policy_section import previous_policy

RESULTS_COPY_PIECE = "results_copy.csv"


def plan_partitions(ctx: RunContext) -> list[int]:
    """Fix what every partition of the night reads (the batches known at the cutoff, checked
    against their hashes once), how many partitions there are, and the versions used; returns the
    partition numbers (what the DAG maps its evaluation over)."""
    store = open_store(ctx)
    cat, pol = configs(ctx)
    with store.engine.connect() as conn:
        refuse_published(conn, ctx)
        row = run_row(conn, ctx.run_id)
        if row is None or row["status"] in ("gate_failed", "failed"):
            raise PipelineError(f"run {ctx.run_id} has not passed its gates; nothing to score")
        batches = visible_inputs(store, conn, ctx.knowledge_cutoff)
    store.verify_batches(batches)
    k = ctx.partitions or part.auto_partitions(batches)
    # In a new policy's first month the report shows the migration from the previous one on the
    # night's own inputs: evaluated beside it, partition by partition (not the province at once).
    prev = (
        previous_policy(ctx.as_of, pol.sha256, policy_registry_now(ctx))
        if ctx.policy_path is None
        else None
    )
    plan = part.make_plan(
        batches,
        k,
        ctx.as_of.isoformat(),
        cat.sha256,
        pol.sha256,
        compare_policy=prev[2].doc if prev else None,
    )
    folder = store.run_folder(ctx.run_id).partitions
    old = part.read_plan(folder)
    if old is None or old["plan_sha256"] != plan["plan_sha256"]:
        part.write_plan(folder, plan)
    records = sum(b["rows"] for b in batches if b["table_name"] == "records")
    ctx.say(f"score: {k} partition(s) over {records:,} stored records")
    return list(range(k))


def evaluate_partition(ctx: RunContext, partition: int) -> dict:
    """Evaluate one partition of the night's plan (a pure function of its inputs); idempotent."""
    store = open_store(ctx)
    cat, pol = configs(ctx)
    folder = store.run_folder(ctx.run_id).partitions
    plan = part.read_plan(folder)
    if plan is None:
        raise PipelineError(f"run {ctx.run_id} has no partition plan; run plan_partitions first")
    if (plan["catalogue_sha256"], plan["policy_sha256"]) != (cat.sha256, pol.sha256):
        raise PipelineError(
            f"run {ctx.run_id}: the partition plan was made with other catalogue/policy versions"
        )
    t = time.perf_counter()
    out = part.evaluate_partition(store, plan, int(partition), cat, pol, folder, ctx.run_id)
    partition_outputs(store, plan, int(partition), cat, folder, ctx.run_id)
    ctx.say(
        f"score: partition {partition + 1}/{plan['partitions']}: {out['entities']:,} entities, "
        f"{out['records']:,} records in {time.perf_counter() - t:.1f}s"
    )
    return out


def partition_outputs(
    store: Store, plan: dict, partition: int, catalogue: Catalogue, folder: Path, run_id: str
) -> None:
    """What a partition makes beside its evaluation, so that the night's tail only merges and
    streams: the rows agencies will get and, on PostgreSQL, its results as COPY input for
    ``entity_results`` (identifiers inside names masked: agencies read that table)."""
    results = piece_files.read_table(
        part.piece_path(folder, plan, partition, "entity_score")
    ).to_pandas()
    pub.write_published_piece(store, plan, partition, catalogue, folder, results)
    if stored.copies_results(store):
        stored.write_results_copy(
            part.piece_path(folder, plan, partition, RESULTS_COPY_PIECE),
            _stored_rows(results, run_id),
        )


def _stored_rows(results: pd.DataFrame, run_id: str) -> pd.DataFrame:
    """Results as ``entity_results`` rows: the run named, identifiers inside names masked."""
    return mask_text_frame(results).assign(run_id=run_id)


def _evaluate_missing(ctx: RunContext, plan: dict, folder: Path) -> float:
    """The partitions no DAG worker has evaluated: here, in worker processes (CREDIT_WORKERS);
    returns the largest worker's own peak memory (GB)."""
    cat, pol = configs(ctx)
    store = open_store(ctx)
    pieces = (pub.PUBLISHED_PIECE,) + (
        (RESULTS_COPY_PIECE,) if stored.copies_results(store) else ()
    )
    # A night cut by size alone and small enough for one process is evaluated here, piece after
    # piece (partitioned.RECORDS_PER_PIECE); a partition count asked for keeps its workers.
    workers = 1 if not ctx.partitions and part.in_one_process(plan) else None
    return part.evaluate_partitions(
        store,
        plan,
        cat,
        pol,
        folder,
        ctx.run_id,
        workers=workers,
        say=lambda m: ctx.say(f"score: {m}"),
        after=partition_outputs,
        after_pieces=pieces,
    )


def _store_results(store: Store, conn, plan: dict, folder: Path, run_id: str) -> None:
    """The run's results into ``entity_results``, straight from the partitions (a table has no row
    order: the copy need not wait for the merge). On PostgreSQL the workers made the COPY input;
    elsewhere the pieces are inserted a chunk at a time."""
    if stored.copies_results(store):
        stored.copy_results(conn, part.piece_paths(plan, folder, RESULTS_COPY_PIECE))
        return
    for path in part.piece_paths(plan, folder, "entity_score"):
        for batch in piece_files.iter_batches(path, 250_000):
            stored.insert_results(store, conn, _stored_rows(batch.to_pandas(), run_id))


class _now:
    """A call made at once, with the face of a future (SQLite: one connection, one thread)."""

    def __init__(self, fn, *args):
        self._value = fn(*args)

    def result(self):
        return self._value


def _current_plan(ctx: RunContext, store: Store, folder: Path) -> dict:
    """The night's plan, made again if the stored inputs or the partition count changed."""
    plan = part.read_plan(folder)
    with store.engine.connect() as conn:
        current = visible_inputs(store, conn, ctx.knowledge_cutoff)
    if (
        plan is None
        or [b["batch_id"] for b in plan["batches"]] != [b["batch_id"] for b in current]
        or (ctx.partitions and plan["partitions"] != ctx.partitions)
    ):
        plan_partitions(ctx)
        plan = part.read_plan(folder)
    return plan


def _check_contract(ctx: RunContext, store: Store, verdicts: pd.DataFrame) -> None:
    """Each partition was checked against the entity_score suite: a broken row stops the night."""
    bad = int(verdicts["contract_rows_failed"].sum()) + int(
        (~verdicts["contract_success"].astype(bool)).sum()
    )
    if not bad:
        return
    with store.engine.begin() as conn:
        update_run(
            conn,
            ctx.run_id,
            status="failed",
            step="score",
            message=f"entity_score contract broken by {bad} rows",
        )
    raise GateFailed(
        f"run {ctx.run_id}: the entity_score contract is broken by {bad} rows; nothing published"
    )


def _merge(store: Store, plan: dict, folder: Path, run: RunFolder, as_of) -> str:
    """The pieces merged into USCC order chunk by chunk (the night never holds the province), two
    outputs at a time (Arrow does the work without the GIL); returns the output hash."""
    merges = {
        "entity_score": run.entity_score,
        pub.PUBLISHED_PIECE: run.published,
        "active_entities": run.active_entities,
    }
    if plan.get("compare_policy"):
        merges["previous_policy"] = run.previous_policy
    with ThreadPoolExecutor(max_workers=2) as merging:
        hashed = merging.submit(part.canonical_sha256, plan, folder, run.entity_score_csv)
        done = [
            merging.submit(part.write_assembled, plan, folder, piece, dest)
            for piece, dest in merges.items()
        ]
        write_parquet(run.objections, part.objections(store, plan["batches"], as_of))
        write_parquet(run.corrections, night_corrections(store, plan["batches"], as_of))
        out_sha = hashed.result()
        for d in done:
            d.result()
    return out_sha


def _stored_run(ctx, store, conn, plan, folder, versions, facts) -> tuple[dict, dict]:
    """Merge, hash and describe the night while its results are copied in on ``conn``: on
    PostgreSQL the server's share of the COPY runs on the other core, the connection being the
    copy's alone until it is joined. Returns (the run row's values, the manifest)."""
    cat, pol = versions
    run = store.run_folder(ctx.run_id)
    with ThreadPoolExecutor(max_workers=1) as pool:
        copy = (pool.submit if stored.copies_results(store) else _now)(
            _store_results, store, conn, plan, folder, ctx.run_id
        )
        try:
            out_sha = _merge(store, plan, folder, run, ctx.as_of)
            ctx.say(f"score: assembled and hashed at {time.perf_counter() - facts['t0']:.1f}s")
            input_sha = content_hash([[b["batch_id"], b["sha256"]] for b in plan["batches"]])
            tiers = evaluate.tier_counts(pd.read_parquet(run.entity_score, columns=["tier"]))
            manifest = build_manifest(
                ctx,
                cat,
                pol,
                plan["batches"],
                input_sha,
                out_sha,
                tiers,
                facts["scored"],
                {"score_seconds": round(facts["t_score"], 3)},
                qg.gate_summary(facts["gates"]),
                {name: sha256_file(run / name) for name in (run.ENTITY_SCORE, run.PUBLISHED)},
                waivers=read_json(run.waivers, []),
                intake=read_json(run.landing, {}).get("versions"),
            )
        finally:
            copy.result()  # joined before the transaction commits or rolls back
    row = dict(input_sha256=input_sha, output_sha256=out_sha, tiers=tiers)
    return row, manifest


def score(ctx: RunContext) -> dict:
    """Score every active entity as of the as-of date with what was known at the cutoff: the
    partitions of the night's plan (those no worker has evaluated yet are evaluated here), put in
    USCC order, checked against the entity_score contract and stored."""
    t0 = time.perf_counter()
    store = open_store(ctx)
    cat, pol = configs(ctx)
    run = store.run_folder(ctx.run_id)
    plan = _current_plan(ctx, store, run.partitions)
    ctx.say(f"score: plan ready in {time.perf_counter() - t0:.1f}s")
    worker_peak = _evaluate_missing(ctx, plan, run.partitions)
    ctx.say(f"score: partitions evaluated at {time.perf_counter() - t0:.1f}s")
    verdicts = part.assemble_table(plan, run.partitions, "verdict", sort_by=None).to_pandas()
    scored = int(verdicts["scored"].sum())
    if not scored:
        raise PipelineError(
            f"run {ctx.run_id}: no registered entities known by {ctx.knowledge_cutoff}"
        )
    t_score = time.perf_counter() - t0
    ctx.say(
        f"score: {scored:,} entities evaluated in {plan['partitions']} partition(s), {t_score:.1f}s"
    )
    _check_contract(ctx, store, verdicts)
    with store.engine.connect() as conn:
        gates = gate_verdicts(conn, ctx.run_id)
    facts = {"t0": t0, "t_score": t_score, "scored": scored, "gates": gates}
    with store.engine.begin() as conn:
        save_versions(store, conn, cat, pol)
        stored.clear_results(conn, ctx.run_id)
        row, manifest = _stored_run(ctx, store, conn, plan, run.partitions, (cat, pol), facts)
        ctx.say(f"score: {scored:,} results in the database at {time.perf_counter() - t0:.1f}s")
        update_run(
            conn,
            ctx.run_id,
            status="scored",
            step="score",
            input_sha256=row["input_sha256"],
            output_sha256=row["output_sha256"],
            catalogue_sha256=cat.sha256,
            policy_sha256=pol.sha256,
            entities_scored=scored,
            tiers_json=json.dumps(row["tiers"]),
            manifest_json=canonical_json(manifest),
        )
    write_json(run.manifest, manifest)
    # The pieces are in the stored results now; kept, they would double a province's disk every night.
    shutil.rmtree(run.partitions, ignore_errors=True)
    ctx.say(f"score: {scored:,} entities scored and stored; tiers {row['tiers']}")
    return {
        "run_id": ctx.run_id,
        "entities_scored": scored,
        "tiers": row["tiers"],
        "output_sha256": row["output_sha256"],
        "partitions": plan["partitions"],
        "largest_worker_peak_rss_gb": worker_peak,
    }
