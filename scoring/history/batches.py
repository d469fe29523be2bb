"""Record batches in the lake: each accepted batch is one immutable Parquet file named by its
content hash, listed in ``record_batches``; reads verify every file against its recorded hash and
can take one entity-hash partition only, or the latest version of each key."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from scoring.common.partitions import BUCKET_COLUMN, bucket_of, record_bucket_key
from scoring.history import latest
from scoring.history.harmonise import harmonised

BUCKETED = ("entities", "records")  # tables read by partition
ROW_GROUP_ROWS = 256 * 1024  # small enough that a partition's read skips the others' groups


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_batch(lake: Path, run_id: str, table_name: str, frame: pd.DataFrame, known_from) -> dict:
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
    path = lake / rel
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    return batch_row(run_id, table_name, digest, len(frame), known_from)


def batch_row(run_id: str, table_name: str, digest: str, rows: int, known_from) -> dict:
    """The ``record_batches`` row of a batch file whose content hash is ``digest``."""
    rel = Path(table_name) / f"{digest[:2]}" / f"{digest}.parquet"
    return {
        "batch_id": f"{table_name}:{digest[:32]}:{run_id}",
        "run_id": run_id,
        "table_name": table_name,
        "known_from": pd.Timestamp(known_from).date(),
        "path": rel.as_posix(),
        "sha256": digest,
        "rows": int(rows),
    }


def verify_batches(lake: Path, batches: list[dict]) -> None:
    """Check every batch file against its recorded sha256 (streamed, nothing parsed)."""
    for b in batches:
        if sha256_file(lake / b["path"]) != b["sha256"]:
            raise RuntimeError(f"batch {b['batch_id']} does not match its recorded sha256")


def latest_table(
    lake: Path, snapshots: Path, batches, key, buckets, verified, skip, snapshot
) -> pa.Table | None:
    """The latest version of each key over the batches, through the partition's snapshot when
    ``snapshot`` (see ``Store.read_latest``)."""
    held = known = None
    if snapshot and buckets is not None and batches:
        prefix = f"{batches[0]['table_name']}-{key}-{hashlib.sha256(repr(sorted(skip)).encode()).hexdigest()[:8]}"
        snap = latest.Snapshot(snapshots, f"{prefix}-{buckets[0]}-{buckets[1]}")
        listed = [[b["batch_id"], b["sha256"]] for b in batches]
        known = snap.batches()
        if known is not None and listed[: len(known)] == known:
            held = snap.read()
            if held is not None and held[0] != known:
                held = None
    if held is not None:
        done, base = held
        newer = concat(lake, batches[len(done) :], buckets, verified, skip)
        if newer is None:
            return base
        t = latest.lay_over(base, latest.latest_of(newer, key), key)
        if latest.should_rewrite(base.num_rows, newer.num_rows, len(batches) - len(done)):
            snap.write(listed, t)
        return t
    t = concat(lake, batches, buckets, verified, skip)
    if t is None:
        return None
    t = latest.latest_of(t, key)
    if (
        snapshot
        and buckets is not None
        and not (known is not None and known[: len(listed)] == listed)
    ):  # never put back an older one
        latest.remove_overlapping(snapshots, prefix, *buckets)
        snap.write(listed, t)
    return t


def concat(lake: Path, batches, buckets, verified, skip) -> pa.Table | None:
    tables = [t for _, t in read_tables(lake, batches, None, buckets, None, verified, skip)]
    if not tables:
        return None
    return (
        pa.concat_tables(harmonised(tables), promote_options="permissive")
        if len(tables) > 1
        else tables[0]
    )


def read_tables(lake: Path, batches, columns, buckets, where_in, verified, skip=()):
    for b in batches:
        path = lake / b["path"]
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
            filt = (pc.field(BUCKET_COLUMN) >= buckets[0]) & (pc.field(BUCKET_COLUMN) < buckets[1])
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
        if BUCKET_COLUMN in t.column_names and (columns is None or BUCKET_COLUMN not in columns):
            t = t.drop_columns([BUCKET_COLUMN])
        yield b, t
