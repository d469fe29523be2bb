"""gate: validate the staged rows with the GX suites, quarantine bad rows, reconcile, apply the
hard gates, and only if every hard gate passes append the accepted rows to the record history."""

from __future__ import annotations

import json
import shutil

import pandas as pd

from scoring.common.errors import GateFailed
from scoring.history import files as landed
from scoring.history import snapshot_index
from scoring.history.batches import ROW_GROUP_ROWS
from scoring.history.folders import RunFolder
from scoring.history.gates import record_appended_batches, record_gate
from scoring.history.runs import BACKFILL_KIND, LOADED
from scoring.history.spool import BatchSpool, FrameSpool
from scoring.history.store import Store, update_run
from scoring.intake.deliveries import raw_values
from scoring.pipeline.context import RunContext
from scoring.pipeline.steps.common import configs, open_store, refuse_published, write_json
from scoring.quality import gates as qg
from scoring.quality import stream
from scoring.quality import validate as quality
from scoring.quality.chunks import DEFAULT_CHUNK_ROWS
from scoring.quality.snapshot_guard import snapshot_gates
from scoring.quality.waivers import apply_waivers, from_dicts

_RECORD_COLUMNS = [
    "record_key",
    "content_sha",
    "item_code",
    "decision_date",
    "grade",
    "provider",
    "penalty_category",
    "violation_type",
]
_CHANGE_COLUMNS = ["record_key", "op", "effective_date", "change_key"]
_SUITES = (("records", "stg_record"), ("entities", "stg_entity"), ("changes", "stg_change"))
_STAGED = ("stg_record", "stg_entity", "stg_change")


def _sources(store: Store, prior: dict, folder: RunFolder, corrections, backfill, staged: bool):
    """How the gate reads what it needs besides the staged rows: the stored entities, records and
    changes a chunk's rows refer to (read by key, pushed down to the Parquet reader: the cost
    follows the delivery, not the province), the provider's own values of a quarantined row, and
    for a backfill the keys its earlier files hold. The batches are verified once, not per chunk;
    a quiet night (nothing ``staged``) reads none of them."""
    for table in prior if staged else ():
        store.verify_batches(prior[table])

    def read(table: str, columns: list[str], key: str, values: list[str]) -> pd.DataFrame:
        if not values:
            return pd.DataFrame()
        return store.read_batches(prior[table], columns, where_in=(key, values), verified=True)

    def stored(rec_keys: list[str], usccs: list[str]) -> tuple:
        return (
            read("entities", ["uscc", "registered_date"], "uscc", usccs),
            read("records", _RECORD_COLUMNS, "record_key", rec_keys),
            read("changes", _CHANGE_COLUMNS, "record_key", rec_keys),
        )

    raw_index = json.loads(folder.raw_index.read_text()) if folder.raw_index.exists() else {}
    return stream.Sources(
        staged={name: folder.staged_table(name) for name in folder.STAGED_TABLES},
        stored=stored,
        raw_values=lambda rows: raw_values(folder.raw, raw_index, rows),
        corrections=frozenset(corrections),
        earlier=_earlier_files(store, prior) if backfill else None,
    )


def _earlier_files(store: Store, prior: dict):
    """The keys of a file's rows that the backfill's earlier files hold (one night, loaded file by
    file): records (by key and content, from the stored records a chunk looked up) and
    registrations (by USCC)."""
    ours = {t: [b for b in prior[t] if b["run_id"].startswith(f"{BACKFILL_KIND}-")] for t in prior}
    ids = {b["batch_id"] for b in ours["records"]}

    def earlier(stored_rec: pd.DataFrame, usccs: list[str]) -> dict:
        records = (
            stored_rec.loc[stored_rec["batch_id"].isin(ids), ["record_key", "content_sha"]]
            if len(stored_rec) and "content_sha" in stored_rec
            else pd.DataFrame(columns=["record_key", "content_sha"])
        )
        held = (
            store.read_batches(
                ours["entities"], columns=["uscc"], where_in=("uscc", usccs), verified=True
            )
            if usccs
            else pd.DataFrame()
        )
        return {"records": records, "entities": set(held["uscc"]) if len(held) else set()}

    return earlier


def _sinks(folder: RunFolder, chunk_rows: int) -> dict:
    """Where the judged rows go as they are judged: a batch per table, the exclusions of each
    kind (joined in validate_staged's order when written) and the quarantine."""
    parked = folder.path / "gate-spool"
    # A bucket range read back while the batch is written sits beside the row group being
    # filled; a quarter of a row group keeps the two together near one row group's rows.
    rows = min(chunk_rows, ROW_GROUP_ROWS // 4)
    sinks = {t: BatchSpool(parked / t, t, rows) for t in ("records", "entities", "changes")}
    sinks |= {s: BatchSpool(parked / s, "exclusions", rows) for s in stream.EXCLUSION_SINKS}
    sinks["quarantine"] = FrameSpool(parked / "quarantine", "quarantine")
    return sinks


def _judge(ctx: RunContext, store: Store, folder: RunFolder, cat, backfill, sinks, chunk_rows):
    """(files reconciled, gates, the suites' results) of the night's staged rows, judged chunk by
    chunk, the accepted and quarantined rows handed to ``sinks``."""
    with store.engine.connect() as conn:
        refuse_published(conn, ctx)
        prior = {
            t: [
                b
                for b in store.visible_batches(conn, t, ctx.knowledge_cutoff)
                if b["run_id"] != ctx.run_id
            ]
            for t in ("records", "entities", "changes")
        }
        files = landed.run_files(conn, ctx.run_id)
        history = landed.earlier_deliveries(conn, ctx.run_id)
    if backfill:  # judged against the nights' deliveries, not the backfill's other files
        history = history[history["run_kind"] != BACKFILL_KIND]
    corrections = set(
        files.loc[files["message"].fillna("").str.startswith("correction of"), "path"]
    )
    staged = any(stream.staged_rows(folder.staged_table(n)) for n in _STAGED)
    src = _sources(store, prior, folder, corrections, backfill, staged)
    outcome = stream.gate_staged(
        quality.gx_context(folder.gx) if staged else None,
        src,
        {**sinks, "quarantine": sinks["quarantine"].add},
        cat,
        ctx.as_of.isoformat(),
        ctx.run_id,
        say=ctx.say,
        chunk_rows=chunk_rows,
    )
    files = stream.reconcile(files, outcome)
    snapshots = snapshot_index.read_entries(folder.snapshots)
    unchanged = {e["path"]: e["unchanged"] for e in snapshots}
    files["unchanged"] = files["path"].map(unchanged).fillna(0).astype(int)
    judged = qg.StagedVerdicts(*[pd.DataFrame()] * 3, validations=outcome.validations)
    gates = qg.decide_gates(files, history, judged, cat, ctx.as_of)
    if backfill:  # a file is not a night: the night after the backfill judges feed presence
        gates = [g for g in gates if g.gate != "feed_present"]
    gates += snapshot_gates(snapshots)
    return files, gates, outcome


def _record(ctx, store: Store, files, gates, sinks, failed, done: str) -> None:
    """The gate's verdicts in one transaction; the accepted rows appended only if none failed,
    the run then left ``done`` (running on to its score step, or a backfill's file loaded)."""
    with store.engine.begin() as conn:
        record_gate(
            store,
            conn,
            ctx.run_id,
            sinks["quarantine"].frames(),
            pd.DataFrame([g.as_row(ctx.run_id) for g in gates]),
        )
        landed.record_file_verdicts(conn, ctx.run_id, files, held=bool(failed))
        if failed:
            msg = "; ".join(f"{g.gate} {g.scope}: {g.message or g.observed}" for g in failed[:5])
            update_run(conn, ctx.run_id, status="gate_failed", step="gate", message=msg)
            return
        spools = [sinks[t] for t in ("records", "entities", "changes")]
        spools.append(BatchSpool.joined([sinks[s] for s in stream.EXCLUSION_SINKS]))
        batches = [s.write(store.lake, ctx.run_id, ctx.knowledge_cutoff) for s in spools]
        record_appended_batches(store, conn, [b for b in batches if b is not None])
        # The night's snapshots become the ones the next are diffed against, with its rows.
        entries = snapshot_index.read_entries(store.run_folder(ctx.run_id).snapshots)
        snapshot_index.commit_indexes(
            store.lake, conn, ctx.run_id, store.run_folder(ctx.run_id).staged, entries
        )
        update_run(conn, ctx.run_id, step="gate", status=done, message=None)


def gate(ctx: RunContext, backfill: bool = False, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> dict:
    """Validate staged rows with the GX suites, quarantine bad rows, reconcile, apply hard gates,
    and only if every hard gate passes append the accepted rows to the record history.
    ``backfill``: a backfill's run of one file (scoring.pipeline.backfill), judged as the first
    night would judge it: against the deliveries nights stored, not the backfill's other files;
    feed presence is the night's; the run is done (``loaded``) in the transaction that stores it.
    The staged tables are read and judged ``chunk_rows`` rows at a time (scoring.quality.stream):
    memory follows the chunk, not what arrived; the verdicts are those of the whole tables."""
    store = open_store(ctx)
    cat, _ = configs(ctx)
    folder = store.run_folder(ctx.run_id)
    sinks = _sinks(folder, chunk_rows)
    try:
        files, gates, outcome = _judge(ctx, store, folder, cat, backfill, sinks, chunk_rows)
        failed, waived = apply_waivers(gates, from_dicts(ctx.waivers))
        _record(ctx, store, files, gates, sinks, failed, LOADED if backfill else "running")
    finally:
        for sink in sinks.values():
            sink.close()
        shutil.rmtree(folder.path / "gate-spool", ignore_errors=True)
    docs = {
        suite: outcome.validations[t].docs_index for t, suite in _SUITES if t in outcome.validations
    }
    folder.data_docs.write_text(json.dumps(docs, indent=1))
    write_json(folder.waivers, waived)
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
