"""The landed files of a run: what earlier runs stored, what this one received, its verdicts."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from scoring.history.store import landed_files, runs

_f = landed_files.c
# What intake needs of the files earlier runs stored, to tell a new delivery from a repeat.
_INTAKE_COLUMNS = (
    "path",
    "provider",
    "feed",
    "layout",
    "encoding",
    "file_format",
    "sha256",
    "n_bytes",
    "arrived_at",
    "status",
    "delivered_on",
    "received",
    "run_id",
)
# What the gates need of them, to judge a feed's presence and volume.
_GATE_COLUMNS = ("provider", "feed", "delivered_on", "received", "status", "path")


def clear_run_files(conn, run_id: str) -> None:
    conn.execute(sa.delete(landed_files).where(_f.run_id == run_id))


def earlier_files(conn, run_id: str) -> pd.DataFrame:
    """Files landed by every other run, oldest delivery first."""
    return pd.read_sql(
        sa.select(*(_f[c] for c in _INTAKE_COLUMNS))
        .where(_f.run_id != run_id)
        .order_by(_f.delivered_on, _f.run_id, _f.path),
        conn,
    )


def earlier_deliveries(conn, run_id: str) -> pd.DataFrame:
    """Every other run's files as the gates compare against, with the kind of run that read each."""
    return pd.read_sql(
        sa.select(*(_f[c] for c in _GATE_COLUMNS), runs.c.kind.label("run_kind"))
        .select_from(landed_files.outerjoin(runs, runs.c.run_id == _f.run_id))
        .where(_f.run_id != run_id),
        conn,
    )


def run_files(conn, run_id: str) -> pd.DataFrame:
    return pd.read_sql(sa.select(landed_files).where(_f.run_id == run_id), conn)


def file_outcomes(conn, run_id: str) -> pd.DataFrame:
    """(status, message) of each file the run received."""
    return pd.read_sql(sa.select(_f.status, _f.message).where(_f.run_id == run_id), conn)


def record_file_verdicts(conn, run_id: str, files: pd.DataFrame, held: bool) -> None:
    """Each file's accepted, quarantined and excluded (repeated) rows, and its status: rejected and repeated files as
    they were; the others held when a hard gate stopped the night, else stored."""
    for f in files.itertuples():
        status = (
            f.status if f.status in ("rejected", "same_content") else ("held" if held else "stored")
        )
        conn.execute(
            sa.update(landed_files)
            .where((_f.run_id == run_id) & (_f.path == f.path))
            .values(
                accepted=int(f.accepted),
                quarantined=int(f.quarantined),
                # repeats: of an earlier delivery, or of records an earlier file of the night has
                excluded=int(getattr(f, "excluded", 0) or 0),
                status=status,
            )
        )


def record_landed(store, conn, files: list[dict]) -> None:
    """The files a run received, as intake classified them."""
    store.insert_frame(conn, landed_files, pd.DataFrame(files))
