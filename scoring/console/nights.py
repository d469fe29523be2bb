"""The operators' overview of the last nights: status, hard gates failed and waived, deliveries
per provider with the overdue feeds (a failed ``feed_present`` gate), the tier shares night by
night, and the entities with an objection pending. Times are shown in Asia/Shanghai."""

from __future__ import annotations

import json
import zoneinfo

import sqlalchemy as sa

from scoring.history.nights import (
    deliveries_by_provider,
    gates_of,
    latest_nights,
    objections_pending,
)
from scoring.history.store import record_batches, runs

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
TIERS = ("A", "B", "C", "D")


def _local(ts) -> str | None:
    if ts is None:
        return None
    if ts.tzinfo is None:  # stored as UTC
        ts = ts.replace(tzinfo=zoneinfo.ZoneInfo("UTC"))
    return ts.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def overview(store, nights: int = 30) -> list[dict]:
    """One row per night (its latest run), newest first."""
    with store.engine.connect() as conn:
        chosen = latest_nights(conn, nights)
        ids = [r.run_id for r in chosen]
        gates = gates_of(conn, ids)
        files = deliveries_by_provider(conn, ids)
        pending = objections_pending(conn, ids)
    out = []
    for r in chosen:
        mine = [g for g in gates if g.run_id == r.run_id]
        tiers = json.loads(r.tiers_json) if r.tiers_json else {}
        total = sum(int(tiers.get(t, 0)) for t in TIERS) or 1
        out.append(
            {
                "run_id": r.run_id,
                "as_of": str(r.as_of),
                "status": r.status,
                "message": (r.message or "").splitlines()[0] if r.message else "",
                "hard_failed": sorted(
                    f"{g.gate}:{g.scope}" for g in mine if g.hard and not g.passed and not g.waiver
                ),
                "waived": sorted(f"{g.gate}:{g.scope} — {g.waiver}" for g in mine if g.waiver),
                "overdue": sorted(
                    g.scope for g in mine if g.gate == "feed_present" and not g.passed
                ),
                "deliveries": [
                    {
                        "provider": f.provider,
                        "files": int(f.files),
                        "received": int(f.received or 0),
                        "quarantined": int(f.quarantined or 0),
                        "arrived": _local(f.arrived),
                    }
                    for f in files
                    if f.run_id == r.run_id
                ],
                "tier_shares": {t: round(int(tiers.get(t, 0)) / total, 4) for t in TIERS},
                "entities": r.entities_scored,
                "objections_pending": int(pending.get(r.run_id, 0)),
            }
        )
    return out


def overdue_objections(store, run_id: str) -> list[dict]:
    """Objections pending past their decision deadline on a night, per provider of the record: the
    run report's own answer (the same library functions over the batches the night used)."""
    with store.engine.connect() as conn:
        run = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
        if run is None or not run.manifest_json:
            return []
        ids = {b["batch_id"] for b in json.loads(run.manifest_json)["input_batches"]}
        batches = [
            dict(b._mapping)
            for b in conn.execute(
                sa.select(record_batches).order_by(
                    record_batches.c.known_from, record_batches.c.batch_id
                )
            )
            if b.batch_id in ids
        ]
    if not any(b["table_name"] == "changes" for b in batches):
        return []
    import pandas as pd

    from scoring.evaluation.partitioned import objections as night_objections
    from scoring.reporting.lifecycle import overdue_by_provider

    od = overdue_by_provider(night_objections(store, batches, str(run.as_of)))
    od = od[od["overdue"] > 0]
    return [
        {"provider": str(r.provider) if pd.notna(r.provider) else "?", "overdue": int(r.overdue)}
        for r in od.itertuples(index=False)
    ]
