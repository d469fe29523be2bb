"""Night-by-night reads for the operators' overview: the latest run of each of the last nights,
their gate verdicts, deliveries per provider and entities with an objection pending."""

from __future__ import annotations

import sqlalchemy as sa

from scoring.history.store import entity_results, gate_results, landed_files, runs


def latest_nights(conn, nights: int) -> list:
    """The newest run of each of the last ``nights`` nightly as-of dates, newest first."""
    rows = conn.execute(
        sa.select(runs)
        .where(runs.c.kind == "nightly")
        .order_by(runs.c.as_of.desc(), runs.c.run_id.desc())
    ).all()
    seen, chosen = set(), []
    for r in rows:
        if r.as_of not in seen and len(chosen) < nights:
            seen.add(r.as_of)
            chosen.append(r)
    return chosen


def gates_of(conn, run_ids: list[str]) -> list:
    return conn.execute(sa.select(gate_results).where(gate_results.c.run_id.in_(run_ids))).all()


def deliveries_by_provider(conn, run_ids: list[str]) -> list:
    f = landed_files.c
    return conn.execute(
        sa.select(
            f.run_id,
            f.provider,
            sa.func.count().label("files"),
            sa.func.sum(f.received).label("received"),
            sa.func.sum(f.quarantined).label("quarantined"),
            sa.func.max(f.arrived_at).label("arrived"),
        )
        .where(f.run_id.in_(run_ids))
        .group_by(f.run_id, f.provider)
        .order_by(f.run_id, f.provider)
    ).all()


def objections_pending(conn, run_ids: list[str]) -> dict[str, int]:
    e = entity_results.c
    return dict(
        conn.execute(
            sa.select(e.run_id, sa.func.count())
            .where(e.run_id.in_(run_ids) & e.flags.like("%objection_pending%"))
            .group_by(e.run_id)
        ).all()
    )
