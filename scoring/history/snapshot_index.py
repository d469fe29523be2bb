"""Where the index of each full-snapshot feed's previous accepted snapshot lives, and when it is
replaced (the diff itself is scoring.intake.snapshots).

The index is (key, key hash, content hash) per row of the snapshot, never the rows: one Parquet
file in the lake per accepted snapshot, named in ``snapshot_indexes`` with its sha256. A night's
ingest writes the next index into its run folder; the gate's transaction that appends the night's
rows registers it (``commit_indexes``), and only then is it the one the next snapshot is diffed
against. A night a gate stops, or one that fails before its gate commits, leaves the previous
index in force: it is run again against the same index and gets the same result.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from scoring.history.batches import sha256_file
from scoring.history.tables import metadata

snapshot_indexes = sa.Table(
    "snapshot_indexes",
    metadata,
    sa.Column("index_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("provider", sa.String(40), nullable=False),
    sa.Column("feed", sa.String(40), nullable=False),
    sa.Column("run_id", sa.String(80), nullable=False),  # the night that accepted the snapshot
    sa.Column("path", sa.String(500), nullable=False),  # the snapshot file, in the landing
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("index_file", sa.String(300), nullable=False),  # relative to the store's lake
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Index("ix_snapshot_indexes_feed", "provider", "feed"),
)
_s = snapshot_indexes.c


def current(conn, provider: str, feed: str) -> dict | None:
    """The index of the provider feed's last accepted snapshot (None: it has none yet)."""
    row = conn.execute(
        sa.select(snapshot_indexes)
        .where((_s.provider == provider) & (_s.feed == feed))
        .order_by(_s.index_id.desc())
        .limit(1)
    ).first()
    return dict(row._mapping) if row else None


def read_index(lake: Path, row: dict) -> pa.Table:
    """An accepted index, checked against its recorded sha256."""
    path = lake / row["index_file"]
    if sha256_file(path) != row["sha256"]:
        raise RuntimeError(f"snapshot index {row['index_file']} does not match its recorded hash")
    return pq.read_table(path)


def write_candidate(path: Path, table: pa.Table) -> None:
    """A night's next index, in its run folder (written beside, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def read_entries(path: Path) -> list[dict]:
    """The night's snapshot files as its ingest recorded them (none: not a snapshot night)."""
    return json.loads(path.read_text()) if path.exists() else []


def commit_indexes(lake: Path, conn, run_id: str, run_dir: Path, entries: list[dict]) -> int:
    """Make the night's next indexes the accepted ones, inside the transaction that stores its
    rows: each copied into the lake, then named in ``snapshot_indexes``. Entries without a next
    index (a superseded file) change nothing. Returns how many were committed."""
    n = 0
    for e in entries:
        if not e.get("index"):
            continue
        rel = f"snapshot_index/{e['provider']}/{e['feed']}/{run_id}.parquet"
        target = lake / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run_dir / e["index"], target)
        conn.execute(
            sa.insert(snapshot_indexes).values(
                provider=e["provider"],
                feed=e["feed"],
                run_id=run_id,
                path=e["path"],
                rows=int(e["index_rows"]),
                index_file=rel,
                sha256=sha256_file(target),
            )
        )
        n += 1
    return n
