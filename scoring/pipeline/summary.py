"""A run as stored, the way ``credit run --json``, ``credit status`` and the DAG's last task show it."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from scoring.common.errors import NotPublished
from scoring.history.files import file_outcomes
from scoring.history.folders import RunFolder
from scoring.history.runs import run_publications
from scoring.history.store import Store, run_row
from scoring.pipeline.context import RunContext
from scoring.pipeline.steps.common import open_store, read_json


def run_summary(ctx: RunContext) -> dict:
    """What ``credit run --json`` prints: the run's state as stored."""
    store = open_store(ctx)
    with store.engine.connect() as conn:
        row = run_row(conn, ctx.run_id) or {}
        pubs = run_publications(conn, ctx.run_id)
    tiers = json.loads(row["tiers_json"]) if row.get("tiers_json") else {t: 0 for t in "ABCD"}
    folder = store.run_folder(ctx.run_id)
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
        "report": str(folder.report),
        "db_url": redact(store.url),
        **night_notes(store, ctx.run_id, folder),
    }


def night_notes(store: Store, run_id: str, folder: RunFolder) -> dict:
    """What a night received, what it could not read, and the waivers it ran under."""
    with store.engine.connect() as conn:
        files = file_outcomes(conn, run_id)
    landing = read_json(folder.landing, {})
    some = bool(len(files))
    corrections = (
        int(files["message"].fillna("").str.startswith("correction of").sum()) if some else 0
    )
    return {
        "deliveries": {
            "files": int(len(files)),
            "same_content": int((files["status"] == "same_content").sum()) if some else 0,
            "corrections": corrections,
            "rejected": int((files["status"] == "rejected").sum()) if some else 0,
        },
        "no_new_deliveries": not some,
        "landing_problems": landing.get("problems", []),
        "arrival_cut": landing.get("arrival_cut"),
        "waivers": read_json(folder.waivers, []),
    }


def redact(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def published_night(ctx: RunContext) -> dict:
    """The night as agencies now see it, or NotPublished if this run did not publish it (the
    nightly DAG's last task: a night that did not publish ends failed)."""
    s = run_summary(ctx)
    if s["status"] != "published":
        raise NotPublished(
            f"night {s['run_id']} was not published (status {s['status']}"
            + (f": {s['message']})" if s.get("message") else ")")
        )
    return {
        k: s[k] for k in ("run_id", "as_of", "status", "entities_scored", "tiers", "output_sha256")
    }


def night_facts(ctx: RunContext) -> dict:
    """What an alert names of a night: its as-of date, run id and report (without a database)."""
    from scoring.history.folders import db_slug
    from scoring.history.store import default_db_url

    slug = db_slug(ctx.db_url or default_db_url(ctx.home))
    report = RunFolder(Path(ctx.home) / "runs" / slug / ctx.run_id).report
    return {
        "night": ctx.as_of.isoformat(),
        "run_id": ctx.run_id,
        "report_url": report.resolve().as_uri(),
    }
