"""Nights and their attempts: a re-run of a published night is built beside it and replaces it only
when it publishes.

A night's first run is ``nightly-YYYYMMDD`` (``-kYYYYMMDD`` for another knowledge cutoff). While
nothing of it is published, running the night again replaces that run in place. Once it is
published, the next run of the night is a new attempt ``<night>-r2``, ``-r3`` …, with its own rows,
run folder and outbox folders; the published attempt stays exactly as it was (manifest, hash,
results, deliveries and their ``delivered_at``, CURRENT) until the new one publishes, and then, in
the publishing transaction, becomes ``superseded``. A failed attempt is replaced in place by the
next try; it never touches the published one.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

# scoring.history.store is imported inside the functions: DAG files read RUN_ID_PATTERN at parse
# time and must not pull in pandas.

ATTEMPT = re.compile(r"^(?P<night>.+?)(?:-r(?P<n>[0-9]+))?$")
RUN_ID_PATTERN = r"^(nightly|rerun)-[0-9]{8}(-k[0-9]{8})?(-r[0-9]+)?$"


def night_of(run_id: str) -> str:
    """The night a run id belongs to (its id without the attempt suffix)."""
    return ATTEMPT.match(run_id).group("night")


def attempt_of(run_id: str) -> int:
    n = ATTEMPT.match(run_id).group("n")
    return int(n) if n else 1


def run_id_for(night: str, attempt: int) -> str:
    return night if attempt <= 1 else f"{night}-r{attempt}"


def attempts(conn, night: str) -> list[dict]:
    """Every stored attempt of a night, in attempt order: run_id, attempt, status."""
    from ..history.store import runs

    rows = conn.execute(
        sa.select(runs.c.run_id, runs.c.status).where(
            (runs.c.run_id == night) | runs.c.run_id.like(f"{night}-r%")
        )
    ).all()
    out = [
        {"run_id": r.run_id, "attempt": attempt_of(r.run_id), "status": r.status}
        for r in rows
        if night_of(r.run_id) == night
    ]
    return sorted(out, key=lambda a: a["attempt"])


def next_attempt(conn, night: str) -> int:
    """The attempt a new run of the night works in: a new one after a published attempt, else the
    latest (unpublished, so nothing of it is visible) again."""
    known = attempts(conn, night)
    if not known:
        return 1
    latest = known[-1]
    return (
        latest["attempt"] + 1
        if latest["status"] in ("published", "superseded")
        else latest["attempt"]
    )


def shown_attempt(conn, night: str, prefer_published: bool = True) -> str | None:
    """The attempt to show for a night: the published one, else (or when not preferred) the latest."""
    known = attempts(conn, night)
    published = [a for a in known if a["status"] == "published"]
    if published and prefer_published:
        return published[-1]["run_id"]
    return known[-1]["run_id"] if known else None


def supersede_others(conn, run_id: str) -> int:
    """Within the publishing transaction: the night's other published attempt stops being current."""
    from ..history.store import runs

    night = night_of(run_id)
    others = [
        a["run_id"]
        for a in attempts(conn, night)
        if a["status"] == "published" and a["run_id"] != run_id
    ]
    if others:
        conn.execute(sa.update(runs).where(runs.c.run_id.in_(others)).values(status="superseded"))
    return len(others)


def latest_published(conn) -> dict | None:
    """The newest published nightly run (what agencies see now), or None."""
    from ..history.store import runs

    row = conn.execute(
        sa.select(runs.c.run_id, runs.c.as_of, runs.c.output_sha256)
        .where((runs.c.status == "published") & (runs.c.kind == "nightly"))
        .order_by(runs.c.as_of.desc(), runs.c.run_id.desc())
        .limit(1)
    ).first()
    return dict(row._mapping) if row else None


def opens_its_month(conn, run: dict) -> bool:
    """Is this published night the first of its calendar month to be published? (Monthly work
    scheduled on publications runs once a month, and never before anything is published.)"""
    from ..history.store import runs

    as_of = run["as_of"]
    start = as_of.replace(day=1)
    earlier = conn.execute(
        sa.select(sa.func.count())
        .select_from(runs)
        .where(
            runs.c.status.in_(["published", "superseded"])
            & (runs.c.kind == "nightly")
            & (runs.c.as_of >= start)
            & (runs.c.as_of < as_of)
        )
    ).scalar()
    return not earlier
