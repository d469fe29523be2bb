"""Storage: SQL for metadata and results (SQLite embedded, PostgreSQL in production), Parquet for
bulk record history.

Record history is append-only and bitemporal. Each accepted batch of records is one Parquet file,
content-hashed and listed in ``record_batches`` with the run that stored it and its knowledge
date. A record carries its valid time (decision date, publicity window) and its knowledge time
(``known_from``, the day we learned it; the batch sequence orders same-day knowledge). A later
correction is a new version, never an edit, so what an earlier run saw can always be re-read.

The tables are in ``tables``, the batch files in ``batches``, bulk SQL writes in ``bulk``; their
public names are importable from here too.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from scoring.common.partitions import BUCKET_COLUMN
from scoring.history import batches as lake_batches
from scoring.history.batches import BUCKETED, ROW_GROUP_ROWS, sha256_bytes, sha256_file
from scoring.history.bulk import copy_csv_chunks, copy_files, insert_frame, write_copy_file
from scoring.history.folders import RunFolder, db_slug
from scoring.history.tables import (
    agency_scope,
    artifacts,
    entity_results,
    gate_results,
    landed_files,
    metadata,
    policy_registry,
    publications,
    quarantine,
    read_log,
    record_batches,
    runs,
    sampling_plans,
    schema_include_object,
)

__all__ = [
    "BUCKETED",
    "ROW_GROUP_ROWS",
    "Store",
    "agency_scope",
    "artifacts",
    "copy_csv_chunks",
    "copy_files",
    "default_db_url",
    "default_home",
    "entity_results",
    "gate_results",
    "insert_frame",
    "landed_files",
    "metadata",
    "migrate",
    "policy_registry",
    "publications",
    "quarantine",
    "read_log",
    "read_parquet",
    "record_batches",
    "run_row",
    "runs",
    "sampling_plans",
    "schema_include_object",
    "sha256_bytes",
    "sha256_file",
    "update_run",
    "write_copy_file",
    "write_parquet",
]


def default_home() -> Path:
    return Path(os.environ.get("CREDIT_HOME") or Path.cwd() / "var").resolve()


def default_db_url(home: Path | None = None) -> str:
    url = os.environ.get("CREDIT_DB_URL")
    if url:
        return url
    home = home or default_home()
    return f"sqlite:///{home / 'credit.db'}"


def migrate(url: str, home: Path | None = None, policy_seed: Path | None = None) -> None:
    """Bring the schema to the newest Alembic revision. ``home`` and ``policy_seed`` tell the
    policy registry's migration where an older store kept its policy history (carried over)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).resolve().parents[1] / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes.update(credit_home=home, policy_seed=policy_seed)
    command.upgrade(cfg, "head")


@dataclass
class Store:
    """Where one deployment keeps its data: a database URL and a home folder for files."""

    url: str
    home: Path

    def __post_init__(self):
        self.home = Path(self.home)
        if self.url.startswith("sqlite:///"):
            Path(self.url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        self.engine = sa.create_engine(self.url, future=True)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)

    @classmethod
    def open(
        cls,
        url: str | None = None,
        home: Path | str | None = None,
        migrate_schema: bool = True,
        policy_seed: Path | None = None,
    ) -> Store:
        home = Path(home) if home else default_home()
        store = cls(url=url or default_db_url(home), home=home)
        if migrate_schema:
            migrate(store.url, store.home, policy_seed)
        return store

    @property
    def lake(self) -> Path:
        return self.home / "lake" / db_slug(self.url)

    def run_dir(self, run_id: str) -> Path:
        return self.home / "runs" / db_slug(self.url) / run_id

    def run_folder(self, run_id: str) -> RunFolder:
        return RunFolder(self.run_dir(run_id))

    # ---------------------------------------------------------------- bulk writes
    def write_batch(self, run_id: str, table_name: str, frame: pd.DataFrame, known_from) -> dict:
        """Write one immutable Parquet batch (``batches.write_batch``): a retry is a no-op."""
        return lake_batches.write_batch(self.lake, run_id, table_name, frame, known_from)

    def verify_batches(self, batches: list[dict]) -> None:
        """Check every batch file against its recorded sha256 (streamed, nothing parsed)."""
        lake_batches.verify_batches(self.lake, batches)

    def read_batches(
        self,
        batches: list[dict],
        columns: list[str] | None = None,
        buckets: tuple[int, int] | None = None,
        where_in: tuple[str, object] | None = None,
        verified: bool = False,
    ) -> pd.DataFrame:
        """Read batches back, verifying each file against its recorded sha256 (unless the caller
        has just done so: ``verified``). ``buckets``: only rows of entity-hash buckets [lo, hi)
        (older batches, stored before buckets, are read whole and filtered). ``where_in``: only
        rows whose column holds one of the values (a night's gate looks up only what it received)."""
        frames = []
        for b, t in lake_batches.read_tables(
            self.lake, batches, columns, buckets, where_in, verified
        ):
            t = t.to_pandas()
            if columns is not None:
                t = t.reindex(columns=columns)
            frames.append(
                t.assign(batch_id=b["batch_id"], batch_known_from=pd.Timestamp(b["known_from"]))
            )
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)

    def read_latest(
        self,
        batches: list[dict],
        key: str,
        buckets: tuple[int, int] | None = None,
        verified: bool = False,
        skip: tuple[str, ...] = (),
        snapshot: bool = False,
    ) -> pd.DataFrame:
        """The latest version of each ``key`` over the batches in order, sorted by key: what
        ``read_batches(...).drop_duplicates(key, keep="last").sort_values(key)`` gives, done in
        Arrow (one sort, one take, one conversion) so a partition's millions of rows cost seconds.
        ``skip``: columns the caller never reads (not even read from disk). ``snapshot``: through
        the partition's compacted snapshot (see ``latest``): read, extended, rewritten."""
        t = lake_batches.latest_table(
            self.lake, self.snapshot_folder(), batches, key, buckets, verified, skip, snapshot
        )
        return t.to_pandas() if t is not None else pd.DataFrame()

    def snapshot_folder(self) -> Path:
        return self.home / "snapshots" / db_slug(self.url)

    def visible_batches(
        self, conn, table_name: str, knowledge_cutoff, upto_run: str | None = None
    ) -> list[dict]:
        """Batches known by the cutoff, from runs that stored them (in a fixed order)."""
        q = (
            sa.select(record_batches)
            .where(record_batches.c.table_name == table_name)
            .where(record_batches.c.known_from <= pd.Timestamp(knowledge_cutoff).date())
            .order_by(record_batches.c.known_from, record_batches.c.batch_id)
        )
        return [dict(r._mapping) for r in conn.execute(q)]

    def insert_frame(self, conn, table: sa.Table, frame: pd.DataFrame) -> None:
        """Bulk insert: COPY on PostgreSQL, executemany elsewhere (``bulk.insert_frame``)."""
        insert_frame(conn, table, frame)

    def read_run_results(self, conn, run_id: str, manifest: dict) -> pd.DataFrame:
        """A scored run's results: its Parquet file, checked against the hash in its manifest (the
        database holds the same rows; reading them back row by row costs minutes at scale)."""
        expected = (manifest.get("result_files") or {}).get(RunFolder.ENTITY_SCORE)
        path = self.run_folder(run_id).entity_score
        if expected and path.exists():
            data = path.read_bytes()
            if sha256_bytes(data) != expected:
                raise RuntimeError(
                    f"run {run_id}: entity_score.parquet does not match its manifest; rescore the run"
                )
            return pd.read_parquet(io.BytesIO(data))
        cols = [
            c for c in entity_results.c if c.name != BUCKET_COLUMN
        ]  # the file holds no bucket either
        return pd.read_sql(
            sa.select(*cols)
            .where(entity_results.c.run_id == run_id)
            .order_by(entity_results.c.uscc),
            conn,
        )

    def save_artifact(
        self, conn, kind: str, sha256: str, content_json: str, label: str = ""
    ) -> None:
        exists = conn.execute(
            sa.select(artifacts.c.sha256).where(artifacts.c.sha256 == sha256)
        ).first()
        if not exists:
            conn.execute(
                artifacts.insert().values(
                    sha256=sha256, kind=kind, label=label, content_json=content_json
                )
            )


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def write_parquet(path: Path, frame: pd.DataFrame) -> None:
    """Write a frame so that a reader never sees half a file (write beside, then rename)."""
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)


def read_parquet(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.exists() else pd.DataFrame()


def update_run(conn, run_id: str, **values) -> None:
    conn.execute(sa.update(runs).where(runs.c.run_id == run_id).values(**values))


def run_row(conn, run_id: str) -> dict | None:
    row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
    return dict(row._mapping) if row else None
