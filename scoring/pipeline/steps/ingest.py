"""ingest: read the deliveries due by the as-of date that no earlier run has stored, and stage
them in the run folder (after closing any run a crash left open)."""

from __future__ import annotations

import pandas as pd

from scoring.common.config import canonical_json
from scoring.history import files as landed
from scoring.history import snapshot_index
from scoring.history.exchange import pulled_with
from scoring.history.runs import interrupted_runs, start_run
from scoring.history.store import Store, update_run
from scoring.intake.arrivals import Listing, list_landing
from scoring.intake.deliveries import intake_config, stage_deliveries
from scoring.intake.snapshot_files import SnapshotNight
from scoring.intake.snapshots import KEY_COLUMN
from scoring.pipeline.context import RunContext
from scoring.pipeline.steps.common import (
    configs,
    open_store,
    refuse_published,
    save_versions,
    write_json,
)
from scoring.publication import publish as pub


def close_interrupted_runs(store: Store, ctx: RunContext) -> list[str]:
    """A run that died (killed, crashed) never stays ``running``. At the start of a run (under the
    store's run lock, so nothing else is running): a publication whose database commit was made is
    finished, the staged files of one that was not are removed, and every other run still marked
    running, or left scored by a killed publication, is closed as failed with a reason."""
    notes, unpublished = pub.recover_publications(store)
    closed = []
    with store.engine.begin() as conn:
        for r in interrupted_runs(conn, ctx.run_id, unpublished):
            what = "publishing" if r.status == "scored" else (r.step or "its first step")
            msg = f"interrupted during {what}; closed as failed by {ctx.run_id} at its start"
            update_run(conn, r.run_id, status="failed", message=msg)
            closed.append(f"{r.run_id}: {msg}")
    for line in notes + closed:
        ctx.say(f"recovery: {line}")
    return notes + closed


def _snapshot_night(store: Store, ctx: RunContext, registry, folder, one_file) -> SnapshotNight:
    """The night's full-snapshot feeds: each diffed against the index its provider's last
    accepted snapshot left (scoring.history.snapshot_index), vanished keys withdrawn from the
    latest stored version of their rows."""

    def previous(provider: str, feed: str):
        with store.engine.connect() as conn:
            row = snapshot_index.current(conn, provider, feed)
        return snapshot_index.read_index(store.lake, row) if row else None

    def stored(kind: str, keys: list[str]) -> pd.DataFrame:
        with store.engine.connect() as conn:
            batches = [
                b
                for b in store.visible_batches(conn, kind, ctx.knowledge_cutoff)
                if b["run_id"] != ctx.run_id
            ]
        key = KEY_COLUMN[kind]
        rows = store.read_batches(batches, where_in=(key, keys))
        if not len(rows):
            return rows
        rows = rows.drop_duplicates(key, keep="last")  # batches in order: the latest version
        return rows.rename(columns={"known_from": "delivered_on"})

    # A run of one file (a backfill) judges which snapshots are superseded as one night would:
    # by the files of the whole landing due by its date.
    rels = None
    if one_file:
        listed = list_landing(ctx.landing, ctx.as_of, ctx.arrival_cut, registry)
        rels = [c.rel for c in listed.candidates]
    return SnapshotNight(registry, previous, stored, folder.staged, rels)


def ingest(ctx: RunContext, listing: Listing | None = None) -> dict:
    """Read the deliveries due by the as-of date that no earlier run has stored, and stage them
    (or only the files of ``listing``: a backfill's run of one file, scoring.pipeline.backfill)."""
    store = open_store(ctx)
    cat, pol = configs(ctx)
    layouts, registry = intake_config(ctx.as_of)  # a broken one: the night does not start
    close_interrupted_runs(store, ctx)
    folder = store.run_folder(ctx.run_id)
    with store.engine.begin() as conn:
        refuse_published(conn, ctx)
        start_run(
            conn, ctx.run_id, ctx.kind, ctx.as_of, ctx.knowledge_cutoff, cat.sha256, pol.sha256
        )
        landed.clear_run_files(conn, ctx.run_id)
        history = landed.earlier_files(conn, ctx.run_id)
        save_versions(store, conn, cat, pol)
        # The layouts and provider registry the night reads with, named in its manifest.
        store.save_artifact(conn, "layouts", layouts.sha256, canonical_json(layouts.doc))
        store.save_artifact(conn, "providers", registry.sha256, canonical_json(registry.doc))
    snapshots = _snapshot_night(store, ctx, registry, folder, listing is not None)
    night = stage_deliveries(
        ctx.landing,
        pd.Timestamp(ctx.as_of),
        cat,
        history,
        ctx.run_id,
        out=folder.staged,
        say=ctx.say,
        arrival_cut=ctx.arrival_cut,
        registry=registry,
        layouts=layouts,
        listing=listing,
        snapshots=snapshots,
    )
    write_json(folder.snapshots, snapshots.entries)
    cut = ctx.arrival_cut.isoformat() if ctx.arrival_cut else None
    with store.engine.connect() as conn:
        pulled = pulled_with(conn, night.files)
    write_json(
        folder.landing,
        {
            "arrival_cut": cut,
            "problems": night.problems,
            "versions": {**night.versions, "pulled_with": pulled},
        },
    )
    write_json(folder.raw_index, night.raw_index, indent=None)
    with store.engine.begin() as conn:
        landed.record_landed(store, conn, night.files)
        update_run(conn, ctx.run_id, step="ingest")
    summary = night.summary(ctx.run_id)
    ctx.say(
        f"ingest: {summary['files']} new files, {summary['received']:,} rows received, "
        f"{summary['rejected']} files rejected"
        + ("" if summary["files"] else " — no new deliveries")
    )
    return summary
