"""gate: validate the staged rows with the GX suites, quarantine bad rows, reconcile, apply the
hard gates, and only if every hard gate passes append the accepted rows to the record history."""

from __future__ import annotations

import json

import pandas as pd

from scoring.common.errors import GateFailed
from scoring.history import files as landed
from scoring.history import snapshot_index
from scoring.history.folders import RunFolder
from scoring.history.gates import record_appended_batches, record_gate
from scoring.history.runs import BACKFILL_KIND, LOADED
from scoring.history.store import Store, read_parquet, update_run
from scoring.intake.deliveries import raw_values
from scoring.pipeline.context import RunContext
from scoring.pipeline.steps.common import configs, open_store, refuse_published, write_json
from scoring.quality import gates as qg
from scoring.quality import validate as quality
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


def _stored_lookups(store: Store, prior: dict, staged: dict) -> tuple:
    """The stored entities, records and changes this night's rows refer to (read by key, pushed
    down to the Parquet reader: the cost follows the delivery, not the province). A quiet night
    stages nothing and reads none of them."""
    if not _any(staged):
        return pd.DataFrame(), pd.DataFrame(), pd.DataFrame()
    rec_keys, usccs = qg.lookup_keys(staged["stg_record"], staged["stg_change"])
    read = store.read_batches
    return (
        read(prior["entities"], columns=["uscc", "registered_date"], where_in=("uscc", usccs)),
        read(prior["records"], columns=_RECORD_COLUMNS, where_in=("record_key", rec_keys)),
        read(prior["changes"], columns=_CHANGE_COLUMNS, where_in=("record_key", rec_keys)),
    )


def _earlier_files(store: Store, prior: dict, staged: dict, stored_rec: pd.DataFrame) -> dict:
    """The keys of this file's rows that the backfill's earlier files hold (one night, loaded file
    by file): records (by key and content) and registrations (by USCC)."""
    ours = {t: [b for b in prior[t] if b["run_id"].startswith(f"{BACKFILL_KIND}-")] for t in prior}
    ids = {b["batch_id"] for b in ours["records"]}
    records = (
        stored_rec.loc[stored_rec["batch_id"].isin(ids), ["record_key", "content_sha"]]
        if len(stored_rec) and "content_sha" in stored_rec
        else pd.DataFrame(columns=["record_key", "content_sha"])
    )
    ent = staged["stg_entity"]
    usccs = sorted(set(ent["uscc"].dropna())) if len(ent) and "uscc" in ent else []
    held = (
        store.read_batches(ours["entities"], columns=["uscc"], where_in=("uscc", usccs))
        if usccs
        else pd.DataFrame()
    )
    return {"records": records, "entities": set(held["uscc"]) if len(held) else set()}


def _judge(ctx: RunContext, store: Store, folder: RunFolder, cat, backfill: bool) -> tuple:
    """(files reconciled, gates, verdicts, quarantine) of the night's staged rows."""
    staged = {name: read_parquet(folder.staged_table(name)) for name in folder.STAGED_TABLES}
    raw_index = json.loads(folder.raw_index.read_text())
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
    stored_ent, stored_rec, stored_chg = _stored_lookups(store, prior, staged)
    earlier = _earlier_files(store, prior, staged, stored_rec) if backfill else None
    corrections = set(
        files.loc[files["message"].fillna("").str.startswith("correction of"), "path"]
    )
    verdicts = qg.validate_staged(
        quality.gx_context(folder.gx) if _any(staged) else None,
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
        earlier=earlier,
    )
    quar = qg.build_quarantine(
        verdicts,
        staged["unparsed"],
        lambda rows: raw_values(folder.raw, raw_index, rows),
        ctx.run_id,
    )
    files = qg.reconcile_files(files, verdicts, quar)
    snapshots = snapshot_index.read_entries(folder.snapshots)
    unchanged = {e["path"]: e["unchanged"] for e in snapshots}
    files["unchanged"] = files["path"].map(unchanged).fillna(0).astype(int)
    gates = qg.decide_gates(files, history, verdicts, cat, ctx.as_of)
    if backfill:  # a file is not a night: the night after the backfill judges feed presence
        gates = [g for g in gates if g.gate != "feed_present"]
    gates += snapshot_gates(snapshots)
    return files, gates, verdicts, quar


def _any(staged: dict) -> bool:
    return any(len(staged[n]) for n in ("stg_record", "stg_entity", "stg_change"))


def _record(ctx, store: Store, files, gates, verdicts, quar, failed, done: str) -> None:
    """The gate's verdicts in one transaction; the accepted rows appended only if none failed,
    the run then left ``done`` (running on to its score step, or a backfill's file loaded)."""
    with store.engine.begin() as conn:
        record_gate(
            store, conn, ctx.run_id, quar, pd.DataFrame([g.as_row(ctx.run_id) for g in gates])
        )
        landed.record_file_verdicts(conn, ctx.run_id, files, held=bool(failed))
        if failed:
            msg = "; ".join(f"{g.gate} {g.scope}: {g.message or g.observed}" for g in failed[:5])
            update_run(conn, ctx.run_id, status="gate_failed", step="gate", message=msg)
            return
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
        record_appended_batches(store, conn, batches)
        # The night's snapshots become the ones the next are diffed against, with its rows.
        entries = snapshot_index.read_entries(store.run_folder(ctx.run_id).snapshots)
        snapshot_index.commit_indexes(
            store.lake, conn, ctx.run_id, store.run_folder(ctx.run_id).staged, entries
        )
        update_run(conn, ctx.run_id, step="gate", status=done, message=None)


def gate(ctx: RunContext, backfill: bool = False) -> dict:
    """Validate staged rows with the GX suites, quarantine bad rows, reconcile, apply hard gates,
    and only if every hard gate passes append the accepted rows to the record history.
    ``backfill``: a backfill's run of one file (scoring.pipeline.backfill), judged as the first
    night would judge it: against the deliveries nights stored, not the backfill's other files;
    feed presence is the night's; the run is done (``loaded``) in the transaction that stores it."""
    store = open_store(ctx)
    cat, _ = configs(ctx)
    folder = store.run_folder(ctx.run_id)
    files, gates, verdicts, quar = _judge(ctx, store, folder, cat, backfill)
    failed, waived = apply_waivers(gates, from_dicts(ctx.waivers))
    _record(ctx, store, files, gates, verdicts, quar, failed, LOADED if backfill else "running")
    docs = {
        suite: verdicts.validations[t].docs_index
        for t, suite in _SUITES
        if t in verdicts.validations
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
