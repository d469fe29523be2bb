"""Storage: SQL for metadata and results (SQLite embedded, PostgreSQL in production), Parquet for
bulk record history.

Record history is append-only and bitemporal. Each accepted batch of records is one Parquet file,
content-hashed and listed in ``record_batches`` with the run that stored it and its knowledge
date. A record carries its valid time (decision date, publicity window) and its knowledge time
(``known_from``, the day we learned it; the batch sequence orders same-day knowledge). A later
correction is a new version, never an edit, so what an earlier run saw can always be re-read.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from scoring.common.partitions import BUCKET_COLUMN, bucket_of, record_bucket_key
from scoring.history import latest
from scoring.history.folders import RunFolder, db_slug
from scoring.history.harmonise import harmonised

metadata = sa.MetaData()


def _bucket_default(context) -> int:
    """The bucket of a result row inserted without one, from its USCC."""
    return int(bucket_of([context.get_current_parameters()["uscc"]])[0])


runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(80), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),  # nightly | rerun
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("knowledge_cutoff", sa.Date, nullable=False),
    sa.Column(
        "status", sa.String(20), nullable=False
    ),  # running | gate_failed | scored | published | failed
    sa.Column("step", sa.String(20)),
    sa.Column("catalogue_sha256", sa.String(64)),
    sa.Column("policy_sha256", sa.String(64)),
    sa.Column("input_sha256", sa.String(64)),
    sa.Column("output_sha256", sa.String(64)),
    sa.Column("entities_scored", sa.Integer),
    sa.Column("tiers_json", sa.Text),
    sa.Column("manifest_json", sa.Text),
    sa.Column("message", sa.Text),
)

landed_files = sa.Table(
    "landed_files",
    metadata,
    sa.Column("run_id", sa.String(80), nullable=False, index=True),
    sa.Column("path", sa.String(500), nullable=False),  # relative to the landing folder
    sa.Column("provider", sa.String(40), nullable=False),
    sa.Column("feed", sa.String(40)),
    sa.Column("layout", sa.String(40)),
    sa.Column("encoding", sa.String(20)),
    sa.Column("file_format", sa.String(10)),
    sa.Column("delivered_on", sa.Date),
    sa.Column("arrived_at", sa.DateTime),  # file modification time (UTC): when it landed
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("n_bytes", sa.BigInteger),
    sa.Column(
        "status", sa.String(20), nullable=False
    ),  # staged | stored | rejected | held | same_content
    sa.Column("reject_code", sa.String(40)),
    sa.Column("message", sa.Text),
    sa.Column("received", sa.Integer, nullable=False, default=0),
    sa.Column("accepted", sa.Integer, nullable=False, default=0),
    sa.Column("quarantined", sa.Integer, nullable=False, default=0),
    sa.Column(
        "excluded", sa.Integer, nullable=False, default=0, server_default="0"
    ),  # repeats of an earlier delivery
    sa.PrimaryKeyConstraint("run_id", "path", name="pk_landed_files"),
)

quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("run_id", sa.String(80), nullable=False, index=True),
    sa.Column("path", sa.String(500), nullable=False),
    sa.Column("line_no", sa.Integer, nullable=False),
    sa.Column("provider", sa.String(40), nullable=False),
    sa.Column("reasons", sa.String(400), nullable=False),  # comma-separated stable reason codes
    sa.Column("raw_json", sa.Text),
    sa.PrimaryKeyConstraint("run_id", "path", "line_no", name="pk_quarantine"),
)

gate_results = sa.Table(
    "gate_results",
    metadata,
    sa.Column("run_id", sa.String(80), nullable=False, index=True),
    sa.Column("gate", sa.String(60), nullable=False),
    sa.Column("scope", sa.String(500), nullable=False),
    sa.Column("hard", sa.Boolean, nullable=False),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("observed", sa.String(200)),
    sa.Column("threshold", sa.String(200)),
    sa.Column("message", sa.Text),
    sa.Column("waiver", sa.Text),  # who waived this failed gate, and why
    sa.PrimaryKeyConstraint("run_id", "gate", "scope", name="pk_gate_results"),
)

record_batches = sa.Table(
    "record_batches",
    metadata,
    sa.Column("batch_id", sa.String(120), primary_key=True),
    sa.Column("run_id", sa.String(80), nullable=False, index=True),
    sa.Column("table_name", sa.String(40), nullable=False),  # records | entities
    sa.Column("known_from", sa.Date, nullable=False),
    sa.Column("path", sa.String(500), nullable=False),  # relative to the lake folder
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
)

entity_results = sa.Table(
    "entity_results",
    metadata,
    sa.Column("run_id", sa.String(80), nullable=False),
    sa.Column("uscc", sa.String(18), nullable=False),
    sa.Column("name", sa.String(200)),
    sa.Column("division_code", sa.String(6)),
    sa.Column("industry", sa.String(2)),
    sa.Column("eval_class", sa.String(30)),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("tier", sa.String(1), nullable=False),
    sa.Column("dim_law_abiding", sa.Float),
    sa.Column("dim_contracts_promises", sa.Float),
    sa.Column("dim_qualifications_honours", sa.Float),
    sa.Column("dim_social_responsibility", sa.Float),
    sa.Column("dim_supervisory_risk", sa.Float),
    sa.Column("override", sa.String(40)),
    sa.Column("flags", sa.String(200)),
    sa.Column("reasons", sa.Text),
    # The entity-hash bucket of the USCC: on PostgreSQL the table is partitioned by range of it
    # (migration 0007), so it is part of the key. Bulk writes fill it (insert_frame); single-row
    # Core inserts get it from the USCC through the default.
    sa.Column(BUCKET_COLUMN, sa.Integer, nullable=False, default=_bucket_default),
    sa.PrimaryKeyConstraint("run_id", "uscc", BUCKET_COLUMN, name="pk_entity_results"),
)

publications = sa.Table(
    "publications",
    metadata,
    sa.Column("run_id", sa.String(80), nullable=False),
    sa.Column("agency_id", sa.String(40), nullable=False),
    sa.Column("path", sa.String(500), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.PrimaryKeyConstraint("run_id", "agency_id", "path", name="pk_publications"),
)

agency_scope = sa.Table(
    "agency_scope",
    metadata,
    sa.Column("agency_id", sa.String(40), nullable=False),
    sa.Column("role_name", sa.String(80), nullable=False, index=True),
    sa.Column("division_prefix", sa.String(12), nullable=False),
    sa.Column("industry", sa.String(2)),
)

read_log = sa.Table(
    "read_log",
    metadata,
    sa.Column("read_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("agency_id", sa.String(40), nullable=False),
    sa.Column("run_id", sa.String(80)),
    sa.Column("rows", sa.Integer),
    sa.Column("channel", sa.String(20), nullable=False),  # sql | file | cli
    sa.Column("read_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Column("db_role", sa.String(80)),  # the database role that read
    sa.Column("query", sa.Text),  # the statement it ran (query registration)
    sa.Column("backend_pid", sa.Integer),  # with statement_at: "once per statement"
    sa.Column("statement_at", sa.DateTime(timezone=True)),
    sa.Index("ix_read_log_statement", "backend_pid", "statement_at"),
)

sampling_plans = sa.Table(
    "sampling_plans",
    metadata,
    sa.Column("plan_id", sa.String(120), primary_key=True),
    sa.Column("agency_id", sa.String(40), nullable=False, index=True),
    sa.Column("run_id", sa.String(80), nullable=False),
    sa.Column("as_of", sa.String(10), nullable=False),
    sa.Column("record_json", sa.Text, nullable=False),  # the draw record, hashed inside
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),  # catalogue | policy | model
    sa.Column("label", sa.String(100)),
    sa.Column("content_json", sa.Text, nullable=False),
)


# Every policy approval, in the order recorded: the one record of which policy is in force from
# when, by whose approval (scoring.history.policy_registry reads and writes it).
policy_registry = sa.Table(
    "policy_registry",
    metadata,
    sa.Column("entry_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("origin", sa.String(40), nullable=False),  # shipped seed | file | candidate | ...
    sa.Column("source", sa.String(200), nullable=False),  # the file name or candidate id
    sa.Column("document_json", sa.Text, nullable=False),  # the policy itself, as approved
    sa.Column("effective_from", sa.String(10), nullable=False),
    sa.Column("approved_by", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("diff_json", sa.Text),  # the diff it was approved on (reference and body)
    # None: shipped with the code, or carried over from a history that kept no time
    sa.Column("recorded_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("sha256", "effective_from", name="uq_policy_registry_entry"),
)


def schema_include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Alembic's filter for comparing the database with these models: a partition of a table
    (PostgreSQL reflects it as a table inheriting from its parent) is that table's storage, not a
    table of its own, so autogenerate and the drift check leave it out."""
    return not (
        type_ == "table"
        and reflected
        and compare_to is None
        and obj.kwargs.get("postgresql_inherits")
    )


def default_home() -> Path:
    return Path(os.environ.get("CREDIT_HOME") or Path.cwd() / "var").resolve()


BUCKETED = ("entities", "records")  # tables read by partition
ROW_GROUP_ROWS = 256 * 1024  # small enough that a partition's read skips the others' groups


def default_db_url(home: Path | None = None) -> str:
    url = os.environ.get("CREDIT_DB_URL")
    if url:
        return url
    home = home or default_home()
    return f"sqlite:///{home / 'credit.db'}"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
        """Write one immutable Parquet batch; its name is its content hash, so a retry is a no-op.
        Entities and records carry their entity-hash bucket and are stored sorted by it (stable, so
        rows of one entity keep their order), so a partition of a night reads only its row groups."""
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if table_name in BUCKETED and len(frame):
            key = frame["uscc"] if table_name == "entities" else record_bucket_key(frame)
            bucket = bucket_of(pa.array(key, from_pandas=True))
            order = np.argsort(bucket, kind="stable")
            table = table.append_column(BUCKET_COLUMN, pa.array(bucket)).take(pa.array(order))
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd", row_group_size=ROW_GROUP_ROWS)
        data = buf.getvalue()
        digest = sha256_bytes(data)
        rel = Path(table_name) / f"{digest[:2]}" / f"{digest}.parquet"
        path = self.lake / rel
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(path)
        return {
            "batch_id": f"{table_name}:{digest[:32]}:{run_id}",
            "run_id": run_id,
            "table_name": table_name,
            "known_from": pd.Timestamp(known_from).date(),
            "path": rel.as_posix(),
            "sha256": digest,
            "rows": int(len(frame)),
        }

    def verify_batches(self, batches: list[dict]) -> None:
        """Check every batch file against its recorded sha256 (streamed, nothing parsed)."""
        for b in batches:
            if sha256_file(self.lake / b["path"]) != b["sha256"]:
                raise RuntimeError(f"batch {b['batch_id']} does not match its recorded sha256")

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
        for b, t in self._read_tables(batches, columns, buckets, where_in, verified):
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
        t = self._latest_table(batches, key, buckets, verified, skip, snapshot)
        return t.to_pandas() if t is not None else pd.DataFrame()

    def snapshot_folder(self) -> Path:
        return self.home / "snapshots" / db_slug(self.url)

    def _latest_table(self, batches, key, buckets, verified, skip, snapshot) -> pa.Table | None:
        held = known = None
        if snapshot and buckets is not None and batches:
            prefix = f"{batches[0]['table_name']}-{key}-{hashlib.sha256(repr(sorted(skip)).encode()).hexdigest()[:8]}"
            snap = latest.Snapshot(self.snapshot_folder(), f"{prefix}-{buckets[0]}-{buckets[1]}")
            listed = [[b["batch_id"], b["sha256"]] for b in batches]
            known = snap.batches()
            if known is not None and listed[: len(known)] == known:
                held = snap.read()
                if held is not None and held[0] != known:
                    held = None
        if held is not None:
            done, base = held
            newer = self._concat(batches[len(done) :], buckets, verified, skip)
            if newer is None:
                return base
            t = latest.lay_over(base, latest.latest_of(newer, key), key)
            if latest.should_rewrite(base.num_rows, newer.num_rows, len(batches) - len(done)):
                snap.write(listed, t)
            return t
        t = self._concat(batches, buckets, verified, skip)
        if t is None:
            return None
        t = latest.latest_of(t, key)
        if (
            snapshot
            and buckets is not None
            and not (known is not None and known[: len(listed)] == listed)
        ):  # never put back an older one
            latest.remove_overlapping(self.snapshot_folder(), prefix, *buckets)
            snap.write(listed, t)
        return t

    def _concat(self, batches, buckets, verified, skip) -> pa.Table | None:
        tables = [t for _, t in self._read_tables(batches, None, buckets, None, verified, skip)]
        if not tables:
            return None
        return (
            pa.concat_tables(harmonised(tables), promote_options="permissive")
            if len(tables) > 1
            else tables[0]
        )

    def _read_tables(self, batches, columns, buckets, where_in, verified, skip=()):
        for b in batches:
            path = self.lake / b["path"]
            if verified:
                source = str(path)
            else:
                data = path.read_bytes()
                if sha256_bytes(data) != b["sha256"]:
                    raise RuntimeError(f"batch {b['batch_id']} does not match its recorded sha256")
                source = pa.BufferReader(data)
            names = set(pq.read_schema(source).names)
            cols = (
                None if columns is None else [c for c in columns if c in names]
            )  # older batches lack newer columns
            if skip:
                cols = [
                    c
                    for c in (cols if cols is not None else pq.read_schema(source).names)
                    if c not in skip
                ]
            filt = None
            if buckets is not None and BUCKET_COLUMN in names:
                filt = (pc.field(BUCKET_COLUMN) >= buckets[0]) & (
                    pc.field(BUCKET_COLUMN) < buckets[1]
                )
            if where_in is not None and where_in[0] in names:
                f = pc.field(where_in[0]).isin(pa.array(list(where_in[1]), type=pa.string()))
                filt = f if filt is None else filt & f
            extra = (
                [c for c in (BUCKET_COLUMN, "uscc", "record_key") if c in names]
                if buckets is not None and BUCKET_COLUMN not in names
                else []
            )
            read_cols = None if cols is None else cols + [c for c in extra if c not in cols]
            t = pq.read_table(source, columns=read_cols, filters=filt)
            if extra:  # a batch from before buckets: place its rows now
                key = (
                    t.column("uscc")
                    if b["table_name"] == "entities" or "record_key" not in names
                    else pc.coalesce(t.column("uscc"), t.column("record_key"))
                )
                bk = bucket_of(key)
                t = t.filter(pa.array((bk >= buckets[0]) & (bk < buckets[1])))
                if cols is not None:
                    t = t.select(cols)
            if BUCKET_COLUMN in t.column_names and (
                columns is None or BUCKET_COLUMN not in columns
            ):
                t = t.drop_columns([BUCKET_COLUMN])
            yield b, t

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
        """Bulk insert: COPY on PostgreSQL, executemany elsewhere. No per-row ORM objects."""
        if frame.empty:
            return
        if conn.dialect.name == "postgresql":
            _copy_csv(conn, table, frame)
            return
        frame = _prepared(table, frame)
        cols = list(frame.columns)
        rows = [
            {k: (None if _isna(v) else v) for k, v in zip(cols, row)}
            for row in frame.itertuples(index=False, name=None)
        ]
        conn.execute(table.insert(), rows)

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


def _prepared(table: sa.Table, frame: pd.DataFrame) -> pd.DataFrame:
    """A frame as rows of ``table``: its bucket filled (results: by entity), the table's columns
    in order, whole numbers as integers."""
    if BUCKET_COLUMN in table.c and BUCKET_COLUMN not in frame.columns and "uscc" in frame.columns:
        bucket = bucket_of(pa.array(frame["uscc"], from_pandas=True)).astype(np.int32)
        frame = frame.assign(**{BUCKET_COLUMN: bucket})
    cols = [c.name for c in table.columns if c.name in frame.columns]
    frame = frame[cols]
    whole = [
        c
        for c in cols
        if isinstance(table.c[c].type, sa.Integer) and pd.api.types.is_float_dtype(frame[c])
    ]
    if whole:  # integers that went through NaN come back as floats: 3.0 is not an integer to SQL
        frame = frame.astype({c: "Int64" for c in whole})
    return frame


def _copy_data(table: sa.Table, frame: pd.DataFrame) -> pa.Table:
    """A frame as COPY input for ``table`` (dictionaries as their values)."""
    data = pa.Table.from_pandas(_prepared(table, frame), preserve_index=False)
    return data.cast(
        pa.schema(
            [
                pa.field(f.name, pa.string()) if pa.types.is_dictionary(f.type) else f
                for f in data.schema
            ]
        )
    )


def copy_csv_chunks(
    data: pa.Table, chunk_rows: int = 100_000, header: bool = False
) -> Iterator[bytes]:
    """COPY's CSV input, written by Arrow's C++ writer a chunk at a time. Every valid value is
    quoted, so an empty string stays empty and only a missing value (unquoted empty field) is NULL."""
    if header:
        yield (",".join(f'"{c}"' for c in data.column_names) + "\n").encode()
    opts = pacsv.WriteOptions(include_header=False, quoting_style="all_valid")
    for start in range(0, data.num_rows, chunk_rows):
        buf = io.BytesIO()
        pacsv.write_csv(data.slice(start, chunk_rows), buf, opts)
        yield buf.getvalue()


def write_copy_file(path: Path, table: sa.Table, frame: pd.DataFrame) -> None:
    """Rows made ready for ``copy_files`` (by a worker, so the night's tail only streams bytes);
    the header names the columns. Written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        for data in copy_csv_chunks(_copy_data(table, frame), header=True):
            fh.write(data)
    os.replace(tmp, path)


def copy_files(conn, table: sa.Table, paths: list[Path], block: int = 8 << 20) -> None:
    """COPY files written by ``write_copy_file`` into PostgreSQL on the caller's connection (its
    transaction), streamed in blocks."""
    raw = conn.connection.driver_connection
    for path in paths:
        with open(path, "rb") as fh, raw.cursor() as cur:
            cols = fh.readline().decode().strip()
            if not cols:
                continue
            with cur.copy(f'COPY "{table.name}" ({cols}) FROM STDIN WITH (FORMAT csv)') as copy:
                while data := fh.read(block):
                    copy.write(data)


def _copy_csv(conn, table: sa.Table, frame: pd.DataFrame) -> None:
    """COPY a frame into PostgreSQL chunk by chunk, so the server parses one chunk while the next
    is written."""
    data = _copy_data(table, frame)
    cols = ", ".join(f'"{c}"' for c in data.column_names)
    raw = conn.connection.driver_connection
    with (
        raw.cursor() as cur,
        cur.copy(f'COPY "{table.name}" ({cols}) FROM STDIN WITH (FORMAT csv)') as copy,
    ):
        for chunk in copy_csv_chunks(data):
            copy.write(chunk)


def _isna(v) -> bool:
    try:
        return v is None or (not isinstance(v, str) and pd.isna(v))
    except (TypeError, ValueError):
        return False


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
