"""A run's results in ``entity_results``: COPY files made by the workers on PostgreSQL, inserted a
chunk at a time elsewhere."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from scoring.history.store import Store, copy_files, entity_results, write_copy_file


def copies_results(store: Store) -> bool:
    """Whether results go in by COPY (PostgreSQL) rather than by insert."""
    return store.engine.dialect.name == "postgresql"


def clear_results(conn, run_id: str) -> None:
    conn.execute(sa.delete(entity_results).where(entity_results.c.run_id == run_id))


def write_results_copy(path: Path, rows: pd.DataFrame) -> None:
    """Rows made ready for ``copy_results`` (by a worker, so the night's tail only streams)."""
    write_copy_file(path, entity_results, rows)


def copy_results(conn, paths: list[Path]) -> None:
    copy_files(conn, entity_results, paths)


def insert_results(store: Store, conn, rows: pd.DataFrame) -> None:
    store.insert_frame(conn, entity_results, rows)
