"""The run rows: a run started, the runs a crash left open, the list ``credit status`` shows.

(``run_row`` and ``update_run``, used everywhere, stay in scoring.history.store.)
"""

from __future__ import annotations

import sqlalchemy as sa

from scoring.history.store import publications, runs

# A backfill loads a province's history file by file, one run of this kind per file
# (scoring.pipeline.backfill); a file run whose rows are stored ends ``loaded``.
BACKFILL_KIND = "backfill"
LOADED = "loaded"


def start_run(conn, run_id: str, kind: str, as_of, knowledge_cutoff, catalogue, policy) -> None:
    """The run's row, fresh (a redone unpublished attempt starts over): running its first step."""
    conn.execute(sa.delete(runs).where(runs.c.run_id == run_id))
    conn.execute(
        runs.insert().values(
            run_id=run_id,
            kind=kind,
            as_of=as_of,
            knowledge_cutoff=knowledge_cutoff,
            status="running",
            step="ingest",
            catalogue_sha256=catalogue,
            policy_sha256=policy,
        )
    )


def interrupted_runs(conn, current: str, unpublished: set[str]) -> list:
    """Runs other than ``current`` still marked running, or left scored by a publication that was
    killed before its commit (``unpublished``): (run_id, status, step), in run order."""
    return conn.execute(
        sa.select(runs.c.run_id, runs.c.status, runs.c.step)
        .where(runs.c.run_id != current)
        .where(
            (runs.c.status == "running")
            | ((runs.c.status == "scored") & runs.c.run_id.in_(sorted(unpublished)))
        )
        .order_by(runs.c.run_id)
    ).all()


def run_list(conn) -> list[dict]:
    """Every run, in run order: what ``credit status`` lists."""
    return [
        dict(r._mapping)
        for r in conn.execute(
            sa.select(
                runs.c.run_id,
                runs.c.as_of,
                runs.c.status,
                runs.c.entities_scored,
                runs.c.tiers_json,
                runs.c.output_sha256,
            ).order_by(runs.c.run_id)
        )
    ]


def run_publications(conn, run_id: str) -> list:
    """The files a run delivered: (agency_id, path under the outbox), in order."""
    return conn.execute(
        sa.select(publications.c.agency_id, publications.c.path)
        .where(publications.c.run_id == run_id)
        .order_by(publications.c.agency_id, publications.c.path)
    ).all()
