"""The nightly pipeline, wired once: ingest → gate → score → publish → report.

Both the Airflow DAG and ``credit run`` call these steps by name. Each step reads its inputs, calls
the pure functions of its stage, writes its outputs and records its state; the logic lives in the
stages (scoring/intake, quality, evaluation, publication, reporting, audit). Each step is a
transaction keyed on the run id (derived from the as-of date): it replaces its own outputs, so a
retry or a rerun of the same night gives the same result and never leaves partial output behind.
Steps pass nothing but the run context; data moves through the store and the run folder.

A run is a transaction as agencies see it: ``begin`` picks the attempt a run works in. A night that
never published is redone in place; a published night is rebuilt beside it as a new attempt
(``nightly-YYYYMMDD-r2``), which replaces it only in the transaction that publishes it
(scoring.publication.nights). A failed re-run leaves the published night exactly as it was.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from scoring.audit.manifest import build_manifest
from scoring.common.catalogue import Catalogue
from scoring.common.config import canonical_json, content_hash
from scoring.common.errors import GateFailed, PipelineError
from scoring.evaluation import evaluate, piece_files
from scoring.evaluation import partitioned as part
from scoring.evaluation.evaluate import Policy
from scoring.history.inputs import visible_inputs
from scoring.history.runlock import run_lock
from scoring.history.store import (
    Store,
    copy_files,
    default_home,
    entity_results,
    gate_results,
    landed_files,
    publications,
    quarantine,
    read_parquet,
    record_batches,
    run_row,
    runs,
    sha256_file,
    update_run,
    write_copy_file,
    write_parquet,
)
from scoring.intake.deliveries import raw_values, stage_deliveries
from scoring.publication import nights
from scoring.publication import publish as pub
from scoring.publication.free_text import mask_text_frame
from scoring.quality import gates as qg
from scoring.quality import validate as quality
from scoring.quality.waivers import apply_waivers, from_dicts
from scoring.reporting import report as rep
from scoring.reporting.policy_section import PREVIOUS_POLICY_FILE, previous_policy
from scoring.steps import STEP_NAMES

log = logging.getLogger(__name__)

__all__ = [
    "GateFailed",
    "PipelineError",
    "RunContext",
    "STEP_NAMES",
    "STEPS",
    "begin",
    "context_from_env",
    "evaluate_partition",
    "plan_partitions",
    "run_night",
    "run_nights",
    "run_step",
    "run_summary",
    "shown",
]


@dataclass
class RunContext:
    as_of: dt.date
    landing: Path
    home: Path
    db_url: str | None = None
    knowledge_cutoff: dt.date | None = None
    catalogue_path: Path | None = None  # None: the catalogue in force on the as-of date
    policy_path: Path | None = None  # None: the policy in force on the as-of date
    kind: str = "nightly"
    # Catch-up and scheduled runs read only files that had landed when the night's run was due
    # (scoring.intake.arrivals.nightly_arrival_cut); None: whatever is in the landing folder now.
    arrival_cut: dt.datetime | None = None
    # Operator waivers for this run only: dicts with gate, scope, approver, reason (quality.waivers).
    waivers: tuple = ()
    attempt: int = 1  # >1: a re-run of a published night, built beside it
    # Entity-hash partitions the evaluation is cut into (None: CREDIT_PARTITIONS, else by size).
    # Any count gives the same results; it only bounds the memory of each piece.
    partitions: int | None = None
    progress: Callable[[str], None] | None = field(default=None, repr=False)

    def __post_init__(self):
        self.as_of = _as_date(self.as_of)
        if isinstance(self.arrival_cut, str):
            self.arrival_cut = dt.datetime.fromisoformat(self.arrival_cut)
        self.waivers = tuple(
            w.as_dict() if hasattr(w, "as_dict") else dict(w) for w in (self.waivers or ())
        )
        self.knowledge_cutoff = _as_date(self.knowledge_cutoff or self.as_of)
        self.landing = Path(self.landing).resolve()
        self.home = Path(self.home).resolve()
        self.attempt = int(self.attempt or 1)
        self.partitions = int(self.partitions or os.environ.get("CREDIT_PARTITIONS") or 0) or None

    @property
    def night_id(self) -> str:
        """The night this run evaluates (as-of date, knowledge cutoff), whatever the attempt."""
        rid = f"{self.kind}-{self.as_of:%Y%m%d}"
        if self.knowledge_cutoff != self.as_of:
            rid += f"-k{self.knowledge_cutoff:%Y%m%d}"
        return rid

    @property
    def run_id(self) -> str:
        return nights.run_id_for(self.night_id, self.attempt)

    def say(self, msg: str) -> None:
        log.info(msg)
        if self.progress:
            self.progress(msg)

    def to_json(self) -> str:
        """The context as a small JSON document (what an orchestrator passes between tasks)."""
        d = {
            k: (str(v) if v is not None else None)
            for k, v in asdict(self).items()
            if k not in ("progress", "waivers", "arrival_cut")
        }
        d["arrival_cut"] = self.arrival_cut.isoformat() if self.arrival_cut else None
        d["waivers"] = list(self.waivers)
        return json.dumps(d, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> RunContext:
        d = json.loads(text)
        return cls(
            as_of=d["as_of"],
            landing=Path(d["landing"]),
            home=Path(d["home"]),
            db_url=d.get("db_url"),
            knowledge_cutoff=d.get("knowledge_cutoff"),
            catalogue_path=Path(d["catalogue_path"]) if d.get("catalogue_path") else None,
            policy_path=Path(d["policy_path"]) if d.get("policy_path") else None,
            kind=d.get("kind", "nightly"),
            arrival_cut=d.get("arrival_cut"),
            waivers=tuple(d.get("waivers") or ()),
            attempt=int(d.get("attempt") or 1),
            partitions=d.get("partitions"),
        )


def _as_date(v) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    return dt.date.fromisoformat(str(v))


def _read_json(path: Path, default):
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else default


def _open(ctx: RunContext) -> Store:
    return Store.open(ctx.db_url, ctx.home)


def _configs(ctx: RunContext) -> tuple[Catalogue, Policy]:
    policy = (
        Policy.load(ctx.policy_path)
        if ctx.policy_path
        else Policy.in_force(ctx.as_of, promoted=ctx.home / "policy" / "history.json")
    )
    cat = (
        Catalogue.load(ctx.catalogue_path) if ctx.catalogue_path else Catalogue.in_force(ctx.as_of)
    )
    return cat, policy


def _save_versions(store: Store, conn, cat: Catalogue, pol: Policy) -> None:
    # The manifest names these versions by hash: store them (content-addressed, never overwritten).
    store.save_artifact(
        conn, "catalogue", cat.sha256, canonical_json(cat.doc), cat.doc.get("version_label", "")
    )
    store.save_artifact(
        conn, "policy", pol.sha256, canonical_json(pol.doc), pol.doc.get("version_label", "")
    )


def begin(ctx: RunContext) -> RunContext:
    """Choose the attempt this run works in (once per run, before its first step): the night's
    unpublished attempt again, or a new one beside a published night."""
    store = _open(ctx)
    with store.engine.connect() as conn:
        ctx.attempt = nights.next_attempt(conn, ctx.night_id)
    if ctx.attempt > 1:
        ctx.say(f"{ctx.night_id} is published: this run is built beside it as {ctx.run_id}")
    return ctx


def shown(ctx: RunContext, prefer_published: bool = True) -> RunContext:
    """The context of the night's attempt to show: the published one (unless told otherwise),
    else the latest one."""
    store = _open(ctx)
    with store.engine.connect() as conn:
        run_id = nights.shown_attempt(conn, ctx.night_id, prefer_published)
    if run_id:
        ctx.attempt = nights.attempt_of(run_id)
    return ctx


def _refuse_published(conn, ctx: RunContext) -> None:
    """Never redo in place a run agencies have (or had): a re-run works in its own attempt (begin)."""
    row = run_row(conn, ctx.run_id)
    if row and row["status"] in ("published", "superseded"):
        raise PipelineError(
            f"run {ctx.run_id} is {row['status']}; a re-run of the night works in attempt "
            f"{nights.run_id_for(ctx.night_id, nights.next_attempt(conn, ctx.night_id))}"
        )


# --------------------------------------------------------------------------- ingest


def close_interrupted_runs(store: Store, ctx: RunContext) -> list[str]:
    """A run that died (killed, crashed) never stays ``running``. At the start of a run (under the
    store's run lock, so nothing else is running): a publication whose database commit was made is
    finished, the staged files of one that was not are removed, and every other run still marked
    running, or left scored by a killed publication, is closed as failed with a reason."""
    notes, unpublished = pub.recover_publications(store)
    closed = []
    with store.engine.begin() as conn:
        stale = conn.execute(
            sa.select(runs.c.run_id, runs.c.status, runs.c.step)
            .where(runs.c.run_id != ctx.run_id)
            .where(
                (runs.c.status == "running")
                | ((runs.c.status == "scored") & runs.c.run_id.in_(sorted(unpublished)))
            )
            .order_by(runs.c.run_id)
        ).all()
        for r in stale:
            what = "publishing" if r.status == "scored" else (r.step or "its first step")
            msg = f"interrupted during {what}; closed as failed by {ctx.run_id} at its start"
            update_run(conn, r.run_id, status="failed", message=msg)
            closed.append(f"{r.run_id}: {msg}")
    for line in notes + closed:
        ctx.say(f"recovery: {line}")
    return notes + closed


def ingest(ctx: RunContext) -> dict:
    """Read the deliveries due by the as-of date that no earlier run has stored, and stage them."""
    store = _open(ctx)
    cat, pol = _configs(ctx)
    close_interrupted_runs(store, ctx)
    staged_dir = store.run_dir(ctx.run_id) / "staged"
    (staged_dir / "raw").mkdir(parents=True, exist_ok=True)
    with store.engine.begin() as conn:
        _refuse_published(conn, ctx)
        conn.execute(sa.delete(runs).where(runs.c.run_id == ctx.run_id))
        conn.execute(
            runs.insert().values(
                run_id=ctx.run_id,
                kind=ctx.kind,
                as_of=ctx.as_of,
                knowledge_cutoff=ctx.knowledge_cutoff,
                status="running",
                step="ingest",
                catalogue_sha256=cat.sha256,
                policy_sha256=pol.sha256,
            )
        )
        conn.execute(sa.delete(landed_files).where(landed_files.c.run_id == ctx.run_id))
        history = pd.read_sql(
            sa.select(
                landed_files.c.path,
                landed_files.c.provider,
                landed_files.c.feed,
                landed_files.c.layout,
                landed_files.c.encoding,
                landed_files.c.file_format,
                landed_files.c.sha256,
                landed_files.c.n_bytes,
                landed_files.c.arrived_at,
                landed_files.c.status,
                landed_files.c.delivered_on,
                landed_files.c.received,
                landed_files.c.run_id,
            )
            .where(landed_files.c.run_id != ctx.run_id)
            .order_by(landed_files.c.delivered_on, landed_files.c.run_id, landed_files.c.path),
            conn,
        )
        _save_versions(store, conn, cat, pol)
    night = stage_deliveries(
        ctx.landing,
        pd.Timestamp(ctx.as_of),
        cat,
        history,
        ctx.run_id,
        save_raw=lambda name, frame: write_parquet(staged_dir / "raw" / name, frame),
        say=ctx.say,
        arrival_cut=ctx.arrival_cut,
    )
    (store.run_dir(ctx.run_id) / "landing.json").write_text(
        json.dumps(
            {
                "arrival_cut": ctx.arrival_cut.isoformat() if ctx.arrival_cut else None,
                "problems": night.problems,
            },
            ensure_ascii=False,
            indent=1,
            sort_keys=True,
        )
    )
    (staged_dir / "raw" / "index.json").write_text(
        json.dumps(night.raw_index, ensure_ascii=False, sort_keys=True)
    )
    for name, frame in (
        ("stg_record", night.records),
        ("stg_entity", night.entities),
        ("stg_change", night.changes),
        ("unparsed", night.unparsed),
    ):
        write_parquet(staged_dir / f"{name}.parquet", frame)
    with store.engine.begin() as conn:
        store.insert_frame(conn, landed_files, pd.DataFrame(night.files))
        update_run(conn, ctx.run_id, step="ingest")
    summary = night.summary(ctx.run_id)
    ctx.say(
        f"ingest: {summary['files']} new files, {summary['received']:,} rows received, "
        f"{summary['rejected']} files rejected"
        + ("" if summary["files"] else " — no new deliveries")
    )
    return summary


# --------------------------------------------------------------------------- gate


def gate(ctx: RunContext) -> dict:
    """Validate staged rows with the GX suites, quarantine bad rows, reconcile, apply hard gates,
    and only if every hard gate passes append the accepted rows to the record history."""
    store = _open(ctx)
    cat, _ = _configs(ctx)
    rdir = store.run_dir(ctx.run_id)
    staged = {
        name: read_parquet(rdir / "staged" / f"{name}.parquet")
        for name in ("stg_record", "stg_entity", "stg_change", "unparsed")
    }
    raw_index = json.loads((rdir / "staged" / "raw" / "index.json").read_text())
    with store.engine.connect() as conn:
        _refuse_published(conn, ctx)
        prior = {
            t: [
                b
                for b in store.visible_batches(conn, t, ctx.knowledge_cutoff)
                if b["run_id"] != ctx.run_id
            ]
            for t in ("records", "entities", "changes")
        }
        files = pd.read_sql(
            sa.select(landed_files).where(landed_files.c.run_id == ctx.run_id), conn
        )
        history = pd.read_sql(
            sa.select(
                landed_files.c.provider,
                landed_files.c.feed,
                landed_files.c.delivered_on,
                landed_files.c.received,
                landed_files.c.status,
                landed_files.c.path,
            ).where(landed_files.c.run_id != ctx.run_id),
            conn,
        )
    # A quiet night stages nothing: it needs none of the stored history to validate (the cost of
    # reading it grows with the province; scoring reads what it needs).
    anything = any(len(staged[n]) for n in ("stg_record", "stg_entity", "stg_change"))
    # Only what this night's rows refer to is read back (by key, pushed down to the Parquet reader):
    # the cost follows the delivery, not the province.
    rec_keys, usccs = qg.lookup_keys(staged["stg_record"], staged["stg_change"])
    stored_ent = (
        store.read_batches(
            prior["entities"], columns=["uscc", "registered_date"], where_in=("uscc", usccs)
        )
        if anything
        else pd.DataFrame()
    )
    stored_rec = (
        store.read_batches(
            prior["records"],
            columns=[
                "record_key",
                "content_sha",
                "item_code",
                "decision_date",
                "grade",
                "provider",
                "penalty_category",
            ],
            where_in=("record_key", rec_keys),
        )
        if anything
        else pd.DataFrame()
    )
    stored_chg = (
        store.read_batches(
            prior["changes"],
            columns=["record_key", "op", "effective_date", "change_key"],
            where_in=("record_key", rec_keys),
        )
        if anything
        else pd.DataFrame()
    )
    corrections = set(
        files.loc[files["message"].fillna("").str.startswith("correction of"), "path"]
    )

    verdicts = qg.validate_staged(
        quality.gx_context(rdir / "gx") if anything else None,
        staged["stg_record"],
        staged["stg_entity"],
        staged["stg_change"],
        stored_ent,
        stored_rec,
        stored_chg,
        cat,
        ctx.as_of.isoformat(),
        ctx.run_id,
        say=ctx.say,
        corrections=corrections,
    )
    quar = qg.build_quarantine(
        verdicts,
        staged["unparsed"],
        lambda rows: raw_values(rdir / "staged" / "raw", raw_index, rows),
        ctx.run_id,
    )
    files = qg.reconcile_files(files, verdicts, quar)
    gates = qg.decide_gates(files, history, verdicts, cat, ctx.as_of)
    failed, waived = apply_waivers(gates, from_dicts(ctx.waivers))

    with store.engine.begin() as conn:
        conn.execute(sa.delete(quarantine).where(quarantine.c.run_id == ctx.run_id))
        conn.execute(sa.delete(gate_results).where(gate_results.c.run_id == ctx.run_id))
        conn.execute(sa.delete(record_batches).where(record_batches.c.run_id == ctx.run_id))
        store.insert_frame(conn, quarantine, quar)
        store.insert_frame(conn, gate_results, pd.DataFrame([g.as_row(ctx.run_id) for g in gates]))
        for f in files.itertuples():
            status = (
                f.status
                if f.status in ("rejected", "same_content")
                else ("held" if failed else "stored")
            )
            conn.execute(
                sa.update(landed_files)
                .where((landed_files.c.run_id == ctx.run_id) & (landed_files.c.path == f.path))
                .values(accepted=int(f.accepted), quarantined=int(f.quarantined), status=status)
            )
        if failed:
            msg = "; ".join(f"{g.gate} {g.scope}: {g.message or g.observed}" for g in failed[:5])
            update_run(conn, ctx.run_id, status="gate_failed", step="gate", message=msg)
        else:
            batches = [
                store.write_batch(
                    ctx.run_id,
                    table,
                    frame.rename(columns={"delivered_on": "known_from"}),
                    ctx.knowledge_cutoff,
                )
                for table, frame in qg.accepted_tables(verdicts).items()
                if len(frame)
            ]
            store.insert_frame(conn, record_batches, pd.DataFrame(batches))
            update_run(conn, ctx.run_id, step="gate", status="running", message=None)
    docs = {
        suite: verdicts.validations[t].docs_index
        for t, suite in (
            ("records", "stg_record"),
            ("entities", "stg_entity"),
            ("changes", "stg_change"),
        )
        if t in verdicts.validations
    }
    (rdir / "data_docs.json").write_text(json.dumps(docs, indent=1))
    (rdir / "waivers.json").write_text(
        json.dumps(waived, ensure_ascii=False, indent=1, sort_keys=True)
    )
    summary = {
        "run_id": ctx.run_id,
        "received": int(files["received"].sum()),
        "accepted": int(files["accepted"].sum()),
        "quarantined": int(files["quarantined"].sum()),
        "simplified_excluded": int(files["simplified"].sum()),
        "hard_gates_failed": [f"{g.gate}:{g.scope}" for g in failed],
        "waived": [f"{w['gate']}:{s}" for w in waived for s in w["covered"]],
    }
    ctx.say(
        f"gate: {summary['accepted']:,} accepted, {summary['quarantined']:,} quarantined, "
        f"{len(failed)} hard gates failed"
        + (f", waived: {', '.join(summary['waived'])}" if waived else "")
    )
    if failed:
        raise GateFailed(
            f"run {ctx.run_id} stopped by hard gates: "
            + "; ".join(f"{g.gate} {g.scope} ({g.message or g.observed})" for g in failed[:5])
        )
    return summary


# --------------------------------------------------------------------------- score


def _partition_folder(store: Store, ctx: RunContext) -> Path:
    return store.run_dir(ctx.run_id) / "partitions"


def plan_partitions(ctx: RunContext) -> list[int]:
    """Fix what every partition of the night reads (the batches known at the cutoff, checked
    against their hashes once), how many partitions there are, and the versions used; returns the
    partition numbers (what the DAG maps its evaluation over)."""
    store = _open(ctx)
    cat, pol = _configs(ctx)
    with store.engine.connect() as conn:
        _refuse_published(conn, ctx)
        row = run_row(conn, ctx.run_id)
        if row is None or row["status"] in ("gate_failed", "failed"):
            raise PipelineError(f"run {ctx.run_id} has not passed its gates; nothing to score")
        batches = visible_inputs(store, conn, ctx.knowledge_cutoff)
    store.verify_batches(batches)
    k = ctx.partitions or part.auto_partitions(batches)
    # In a new policy's first month the report shows the migration from the previous one on the
    # night's own inputs: evaluated beside it, partition by partition (not the province at once).
    prev = previous_policy(ctx.as_of, pol.sha256) if ctx.policy_path is None else None
    plan = part.make_plan(
        batches,
        k,
        ctx.as_of.isoformat(),
        cat.sha256,
        pol.sha256,
        compare_policy=prev[2].doc if prev else None,
    )
    folder = _partition_folder(store, ctx)
    old = part.read_plan(folder)
    if old is None or old["plan_sha256"] != plan["plan_sha256"]:
        part.write_plan(folder, plan)
    ctx.say(
        f"score: {k} partition(s) over {sum(b['rows'] for b in batches if b['table_name'] == 'records'):,} "
        f"stored records"
    )
    return list(range(k))


def evaluate_partition(ctx: RunContext, partition: int) -> dict:
    """Evaluate one partition of the night's plan (a pure function of its inputs); idempotent."""
    store = _open(ctx)
    cat, pol = _configs(ctx)
    folder = _partition_folder(store, ctx)
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


RESULTS_COPY_PIECE = "results_copy.csv"


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
    if store.engine.dialect.name == "postgresql":
        write_copy_file(
            part.piece_path(folder, plan, partition, RESULTS_COPY_PIECE),
            entity_results,
            _stored_rows(results, run_id),
        )


def _stored_rows(results: pd.DataFrame, run_id: str) -> pd.DataFrame:
    """Results as ``entity_results`` rows: the run named, identifiers inside names masked."""
    return mask_text_frame(results).assign(run_id=run_id)


def _partition_pieces(store: Store) -> tuple[str, ...]:
    return (pub.PUBLISHED_PIECE,) + (
        (RESULTS_COPY_PIECE,) if store.engine.dialect.name == "postgresql" else ()
    )


def _evaluate_missing(ctx: RunContext, plan: dict, folder: Path) -> None:
    """The partitions no DAG worker has evaluated: here, in worker processes (CREDIT_WORKERS)."""
    cat, pol = _configs(ctx)
    store = _open(ctx)
    peak = part.evaluate_partitions(
        store,
        plan,
        cat,
        pol,
        folder,
        ctx.run_id,
        say=lambda m: ctx.say(f"score: {m}"),
        after=partition_outputs,
        after_pieces=_partition_pieces(store),
    )
    _WORKER_PEAK[0] = max(_WORKER_PEAK[0], peak)


def _store_results(store: Store, conn, plan: dict, folder: Path, run_id: str) -> None:
    """The run's results into ``entity_results``, straight from the partitions (a table has no row
    order: the copy need not wait for the merge). On PostgreSQL the workers made the COPY input;
    elsewhere the pieces are inserted a chunk at a time."""
    if conn.dialect.name == "postgresql":
        copy_files(conn, entity_results, part.piece_paths(plan, folder, RESULTS_COPY_PIECE))
        return
    for path in part.piece_paths(plan, folder, "entity_score"):
        for batch in piece_files.iter_batches(path, 250_000):
            store.insert_frame(conn, entity_results, _stored_rows(batch.to_pandas(), run_id))


class _now:
    """A call made at once, with the face of a future (SQLite: one connection, one thread)."""

    def __init__(self, fn, *args):
        self._value = fn(*args)

    def result(self):
        return self._value


def score(ctx: RunContext) -> dict:
    """Score every active entity as of the as-of date with what was known at the cutoff: the
    partitions of the night's plan (those no worker has evaluated yet are evaluated here), put in
    USCC order, checked against the entity_score contract and stored."""
    t0 = time.perf_counter()
    store = _open(ctx)
    cat, pol = _configs(ctx)
    rdir = store.run_dir(ctx.run_id)
    folder = _partition_folder(store, ctx)
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
    ctx.say(f"score: plan ready in {time.perf_counter() - t0:.1f}s")
    _evaluate_missing(ctx, plan, folder)
    ctx.say(f"score: partitions evaluated at {time.perf_counter() - t0:.1f}s")
    batches = plan["batches"]
    verdicts = part.assemble_table(plan, folder, "verdict", sort_by=None).to_pandas()
    scored = int(verdicts["scored"].sum())
    if not scored:
        raise PipelineError(
            f"run {ctx.run_id}: no registered entities known by {ctx.knowledge_cutoff}"
        )
    t_score = time.perf_counter() - t0
    ctx.say(
        f"score: {scored:,} entities evaluated in {plan['partitions']} partition(s), {t_score:.1f}s"
    )
    # Each partition was checked against the entity_score suite: a broken row stops the night here.
    bad = int(verdicts["contract_rows_failed"].sum()) + int(
        (~verdicts["contract_success"].astype(bool)).sum()
    )
    if bad:
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
    with store.engine.connect() as conn:
        g = pd.read_sql(
            sa.select(gate_results.c.gate, gate_results.c.passed, gate_results.c.hard).where(
                gate_results.c.run_id == ctx.run_id
            ),
            conn,
        )
    with store.engine.begin() as conn:
        _save_versions(store, conn, cat, pol)
        conn.execute(sa.delete(entity_results).where(entity_results.c.run_id == ctx.run_id))
        # On PostgreSQL the results are copied in while the rest is merged (the server's share of
        # the COPY runs on the other core); the connection is the copy's alone until it is joined.
        with ThreadPoolExecutor(max_workers=1) as pool:
            copy = (pool.submit if conn.dialect.name == "postgresql" else _now)(
                _store_results, store, conn, plan, folder, ctx.run_id
            )
            try:
                # The pieces are merged into USCC order chunk by chunk (the night never holds the
                # province), two outputs at a time: Arrow does the work without the GIL.
                merges = {
                    "entity_score": rdir / "entity_score.parquet",
                    pub.PUBLISHED_PIECE: rdir / pub.SNAPSHOT_FILE,
                    "active_entities": rdir / "active_entities.parquet",
                }
                if plan.get("compare_policy"):
                    merges["previous_policy"] = rdir / PREVIOUS_POLICY_FILE
                with ThreadPoolExecutor(max_workers=2) as merging:
                    hashed = merging.submit(
                        part.canonical_sha256, plan, folder, rdir / "entity_score.csv"
                    )
                    done = [
                        merging.submit(part.write_assembled, plan, folder, piece, dest)
                        for piece, dest in merges.items()
                    ]
                    write_parquet(
                        rdir / "objections.parquet", part.objections(store, batches, ctx.as_of)
                    )
                    out_sha = hashed.result()
                    for d in done:
                        d.result()
                ctx.say(f"score: assembled and hashed at {time.perf_counter() - t0:.1f}s")
                input_sha = content_hash([[b["batch_id"], b["sha256"]] for b in batches])
                tiers = evaluate.tier_counts(
                    pd.read_parquet(rdir / "entity_score.parquet", columns=["tier"])
                )
                manifest = build_manifest(
                    ctx,
                    cat,
                    pol,
                    batches,
                    input_sha,
                    out_sha,
                    tiers,
                    scored,
                    {"score_seconds": round(t_score, 3)},
                    qg.gate_summary(g),
                    {
                        name: sha256_file(rdir / name)
                        for name in ("entity_score.parquet", pub.SNAPSHOT_FILE)
                    },
                    waivers=_read_json(rdir / "waivers.json", []),
                )
            finally:
                copy.result()  # joined before the transaction commits or rolls back
        ctx.say(f"score: {scored:,} results in the database at {time.perf_counter() - t0:.1f}s")
        update_run(
            conn,
            ctx.run_id,
            status="scored",
            step="score",
            input_sha256=input_sha,
            output_sha256=out_sha,
            catalogue_sha256=cat.sha256,
            policy_sha256=pol.sha256,
            entities_scored=scored,
            tiers_json=json.dumps(tiers),
            manifest_json=canonical_json(manifest),
        )
    (rdir / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True)
    )
    # The pieces are in the stored results now; kept, they would double a province's disk every night.
    shutil.rmtree(folder, ignore_errors=True)
    ctx.say(f"score: {scored:,} entities scored and stored; tiers {tiers}")
    return {
        "run_id": ctx.run_id,
        "entities_scored": scored,
        "tiers": tiers,
        "output_sha256": out_sha,
        "partitions": plan["partitions"],
    }


# --------------------------------------------------------------------------- publish, report


def publish(ctx: RunContext) -> dict:
    store = _open(ctx)
    with store.engine.connect() as conn:
        row = run_row(conn, ctx.run_id)
    if row is not None and row["status"] == "published":
        ctx.say(f"publish: {ctx.run_id} is published already; nothing to do")
        return {"run_id": ctx.run_id, "published": [], "already_published": True}
    if row is None or row["status"] != "scored":
        raise PipelineError(
            f"run {ctx.run_id} is not scored (status {row and row['status']}); nothing published"
        )
    out = pub.publish_run(store, ctx.run_id, progress=ctx.say)
    _mark_report(store, ctx.run_id, "scored", "published")
    return out


def _mark_report(store: Store, run_id: str, old: str, new: str) -> None:
    """The report is written before publication; its status line follows what happened next."""
    path = store.run_dir(run_id) / "report.html"
    if path.exists():
        text = path.read_text(encoding="utf-8")
        path.write_text(
            text.replace(rep.STATUS_MARK.format(status=old), rep.STATUS_MARK.format(status=new)),
            encoding="utf-8",
        )


def report(ctx: RunContext) -> dict:
    store = _open(ctx)
    path = rep.write_run_report(store, ctx.run_id, ctx.landing)
    ctx.say(f"report: {path}")
    return {"run_id": ctx.run_id, "report": str(path)}


STEPS: dict[str, Callable[[RunContext], dict]] = {
    "ingest": ingest,
    "gate": gate,
    "score": score,
    "report": report,
    "publish": publish,
}
assert tuple(STEPS) == STEP_NAMES


def run_step(name: str, ctx: RunContext, wait_seconds: float = 0.0) -> dict:
    """Run one step. If it fails, the run's recorded state says so: failed (nothing new was
    published, publication being the last step), or published with the failure noted when the
    failure came after publication committed."""
    if name not in STEPS:
        raise PipelineError(f"unknown step {name!r}; steps are {', '.join(STEP_NAMES)}")
    # One run at a time per store (re-entrant: `credit run` holds it across its steps). Refused
    # here, nothing of this run's state is touched: the holder's run is not this one's to mark.
    with run_lock(_open(ctx), ctx.run_id, wait_seconds):
        try:
            return STEPS[name](ctx)
        except GateFailed:
            raise  # the gate (or score contract) has recorded its own verdict
        except Exception as exc:
            _note_failure(ctx, name, exc)
            raise


def _note_failure(ctx: RunContext, step: str, exc: BaseException) -> None:
    what = (
        f"{step} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
    )
    try:
        store = _open(ctx)
        with store.engine.begin() as conn:
            row = run_row(conn, ctx.run_id)
            if row is None:
                return
            if row["status"] == "published":
                update_run(conn, ctx.run_id, message=f"published; afterwards {what}")
            else:
                update_run(conn, ctx.run_id, status="failed", step=step, message=what)
        _mark_report(store, ctx.run_id, "scored", "failed")
    except Exception:  # noqa: BLE001 - the original failure is the one to report
        log.exception("could not record the failure of %s for %s", step, ctx.run_id)


def run_night(ctx: RunContext, steps: tuple[str, ...] = STEP_NAMES) -> dict:
    """Run a night's steps in order. A failed gate stops the night (the report still runs, so the
    operator sees why); the summary says what is stored. Other failures propagate, recorded."""
    error = None
    # From the first step: a run of its own (beside the night if it is published); later steps
    # alone: the night's latest attempt.
    if steps and steps[0] == STEP_NAMES[0]:
        begin(ctx)
    else:
        shown(ctx, prefer_published=False)
    seconds, peaks = {}, {}
    try:
        for name in steps:
            t = time.perf_counter()
            run_step(name, ctx)
            seconds[name] = round(time.perf_counter() - t, 3)
            peaks[name] = (
                part.own_peak_rss_gb()
            )  # the high-water mark so far: where it rose is the step
    except GateFailed as exc:
        error = str(exc)
        if "report" in steps:
            run_step("report", ctx)
    summary = run_summary(ctx)
    summary["step_seconds"] = seconds
    summary["peak_rss_gb"] = _peak_rss()
    summary["peak_rss_gb_after_step"] = peaks
    if error:
        summary["error"] = error
    return summary


_WORKER_PEAK = [0.0]  # the largest partition worker's own peak memory in this process's runs (GB)


def _peak_rss() -> dict:
    """Peak memory of this process and of its largest partition worker process so far (GB)."""
    return {"process": part.own_peak_rss_gb(), "largest_worker": _WORKER_PEAK[0]}


def run_nights(
    first, last, make_context: Callable[[dt.date], RunContext], steps: tuple[str, ...] = STEP_NAMES
) -> list[dict]:
    """Nights first..last in order, as a scheduler catching up does: each keyed on its own date
    and cut at its own arrival time (what had landed when its run was due). Stops at the first
    night that is not published: the next nights would build on a gap."""
    from scoring.intake.arrivals import nightly_arrival_cut

    first, last = _as_date(first), _as_date(last)
    if last < first:
        raise PipelineError(f"--from {first} is after --to {last}")
    out = []
    day = first
    while day <= last:
        ctx = make_context(day)
        ctx.arrival_cut = nightly_arrival_cut(day)
        s = run_night(ctx, steps)
        out.append(s)
        if s["status"] != "published" and "publish" in steps:
            break
        day += dt.timedelta(days=1)
    return out


def run_summary(ctx: RunContext) -> dict:
    """What ``credit run --json`` prints: the run's state as stored."""
    store = _open(ctx)
    with store.engine.connect() as conn:
        row = run_row(conn, ctx.run_id) or {}
        pubs = conn.execute(
            sa.select(publications.c.agency_id, publications.c.path)
            .where(publications.c.run_id == ctx.run_id)
            .order_by(publications.c.agency_id, publications.c.path)
        ).all()
    tiers = json.loads(row["tiers_json"]) if row.get("tiers_json") else {t: 0 for t in "ABCD"}
    rdir = store.run_dir(ctx.run_id)
    return {
        "run_id": ctx.run_id,
        "night": ctx.night_id,
        "attempt": ctx.attempt,
        "status": row.get("status", "missing"),
        "as_of": ctx.as_of.isoformat(),
        "knowledge_cutoff": ctx.knowledge_cutoff.isoformat(),
        "entities_scored": int(row.get("entities_scored") or 0),
        "tiers": tiers,
        "output_sha256": row.get("output_sha256"),
        "message": row.get("message"),
        "published": [str(store.home / "outbox" / p.path) for p in pubs],
        "report": str(rdir / "report.html"),
        "db_url": _redact(store.url),
        **_night_notes(store, ctx.run_id, rdir),
    }


def _night_notes(store: Store, run_id: str, rdir: Path) -> dict:
    """What a night received, what it could not read, and the waivers it ran under."""
    with store.engine.connect() as conn:
        files = pd.read_sql(
            sa.select(landed_files.c.status, landed_files.c.message).where(
                landed_files.c.run_id == run_id
            ),
            conn,
        )
    landing = _read_json(rdir / "landing.json", {})
    corrections = (
        int(files["message"].fillna("").str.startswith("correction of").sum()) if len(files) else 0
    )
    return {
        "deliveries": {
            "files": int(len(files)),
            "same_content": int((files["status"] == "same_content").sum()) if len(files) else 0,
            "corrections": corrections,
            "rejected": int((files["status"] == "rejected").sum()) if len(files) else 0,
        },
        "no_new_deliveries": not len(files),
        "landing_problems": landing.get("problems", []),
        "arrival_cut": landing.get("arrival_cut"),
        "waivers": _read_json(rdir / "waivers.json", []),
    }


def _redact(url: str) -> str:
    u = sa.engine.make_url(url)
    return u.render_as_string(hide_password=True)


def context_from_env(as_of, **overrides) -> RunContext:
    """Defaults for orchestrators: CREDIT_HOME, CREDIT_LANDING, CREDIT_DB_URL."""
    home = Path(overrides.pop("home", None) or default_home())
    landing = overrides.pop("landing", None) or os.environ.get("CREDIT_LANDING") or home / "landing"
    db_url = overrides.pop("db_url", None) or os.environ.get("CREDIT_DB_URL")
    return RunContext(as_of=as_of, landing=Path(landing), home=home, db_url=db_url, **overrides)
