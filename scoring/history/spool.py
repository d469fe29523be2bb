"""A batch that arrives in chunks: the accepted rows of a night's gate, chunk by chunk, written at
the end as the very Parquet file ``batches.write_batch`` writes for all of them at once (same rows,
order, schema, row groups, bytes, so the same content hash and batch id), without holding them.

Each chunk is parked on disk as an Arrow IPC file (sorted by entity-hash bucket where the table is
bucketed, with its rows per bucket counted). The batch is then written bucket range by bucket
range: each range's rows are taken from every parked chunk in order (memory-mapped, so only the
range is read), which is the stable sort by bucket of all the rows, and cut into the same row
groups. A range holds about as many rows as one chunk, so memory follows the chunk, not the night.

The schema is the one pandas would give the whole frame: an object column is typed by its values,
so a column empty in one chunk (Arrow ``null``) takes its type from a chunk that has values; the
schema is inferred once from a few representative rows (per column, the first that holds a value).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from scoring.common.partitions import BUCKET_COLUMN, N_BUCKETS, bucket_of, record_bucket_key
from scoring.history.batches import BUCKETED, ROW_GROUP_ROWS, batch_row, sha256_file


class BatchSpool:
    """Rows of one table for one batch, added chunk by chunk (``add``), written once (``write``).
    ``folder``: where the chunks are parked (removed by ``close``); ``range_rows``: about how many
    rows one bucket range holds when the batch is written."""

    def __init__(self, folder: Path, table_name: str, range_rows: int = ROW_GROUP_ROWS):
        self.folder = Path(folder)
        self.table_name = table_name
        self.range_rows = max(1, int(range_rows))
        self.parts: list[Path] = []
        self.counts: list[np.ndarray] = []  # per part: rows per bucket (bucketed tables)
        self.rows = 0
        self._samples: list[pd.DataFrame] = []
        self._unseen: set[str] | None = None
        self._empty: pd.DataFrame | None = None

    def __len__(self) -> int:
        return self.rows

    @classmethod
    def joined(cls, spools: list[BatchSpool]) -> BatchSpool:
        """One batch of the spools' rows, each spool's after the one before (unbucketed tables:
        the rows of several kinds, each kind parked as it came)."""
        out = cls(spools[0].folder, spools[0].table_name, spools[0].range_rows)
        if out.table_name in BUCKETED:
            raise ValueError(f"{out.table_name} rows are placed by bucket, not joined in order")
        for s in spools:
            out.parts += s.parts
            out.rows += s.rows
            out._samples += s._samples
            if out._empty is None and s._empty is not None:
                out._empty = s._empty
        return out

    def add(self, frame: pd.DataFrame) -> None:
        """Park one chunk's rows (in the order they come: chunks in order give the batch's)."""
        if self._empty is None:
            self._empty = frame.iloc[0:0]
            self._unseen = set(frame.columns)
        if not len(frame):
            return
        self._sample(frame)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self.table_name in BUCKETED:
            key = frame["uscc"] if self.table_name == "entities" else record_bucket_key(frame)
            bucket = bucket_of(pa.array(key, from_pandas=True))
            order = np.argsort(bucket, kind="stable")
            table = table.append_column(BUCKET_COLUMN, pa.array(bucket)).take(pa.array(order))
            self.counts.append(np.bincount(bucket, minlength=N_BUCKETS))
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.table_name}-{len(self.parts):06d}.arrow"
        with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
        self.parts.append(path)
        self.rows += len(frame)

    def _sample(self, frame: pd.DataFrame) -> None:
        """Keep, per column not yet seen holding a value, the first row that holds one."""
        found = [c for c in self._unseen if frame[c].notna().any()]
        if not found:
            return
        rows = sorted({int(np.argmax(frame[c].notna().to_numpy())) for c in found})
        self._samples.append(frame.iloc[rows])
        self._unseen -= set(found)

    def schema(self) -> pa.Schema:
        """The schema ``pa.Table.from_pandas`` gives all the rows together (bucket appended)."""
        sample = pd.concat([self._empty, *self._samples]) if self._samples else self._empty
        schema = pa.Schema.from_pandas(sample, preserve_index=False)
        if self.table_name in BUCKETED:
            schema = schema.append(pa.field(BUCKET_COLUMN, pa.int16()))
        return schema

    def write(self, lake: Path, run_id: str, known_from) -> dict | None:
        """Write the batch into the lake (named by its content hash: a retry is a no-op) and give
        its ``record_batches`` row; None when no row was added."""
        if not self.rows:
            return None
        schema = self.schema()
        tmp = lake / self.table_name / f".{run_id}.{os.getpid()}.tmp"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(str(tmp), schema, compression="zstd") as writer:
            groups = _RowGroups(writer, schema)
            for piece in self._pieces():
                groups.add(piece)
            groups.flush()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        digest = sha256_file(tmp)
        row = batch_row(run_id, self.table_name, digest, self.rows, known_from)
        path = lake / row["path"]
        if path.exists():
            tmp.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.replace(path)
        return row

    def _pieces(self):
        """The rows in batch order, a bucket range (or, unbucketed, a parked chunk) at a time."""
        if self.table_name not in BUCKETED:
            for path in self.parts:
                with pa.memory_map(str(path)) as src:
                    yield ipc.open_file(src).read_all()
            return
        offsets = [np.concatenate([[0], np.cumsum(c)]) for c in self.counts]
        for lo, hi in _ranges(np.sum(self.counts, axis=0), self.range_rows):
            slices = []
            for path, off in zip(self.parts, offsets, strict=True):
                if off[hi] > off[lo]:
                    with pa.memory_map(str(path)) as src:
                        t = ipc.open_file(src).read_all()
                        slices.append(t.slice(off[lo], off[hi] - off[lo]))
            if not slices:
                continue
            t = pa.concat_tables(slices, promote_options="permissive")
            order = np.argsort(t.column(BUCKET_COLUMN).to_numpy(), kind="stable")
            piece = t.take(pa.array(order))
            del t, slices  # not held (nor their mapped pages) while the piece is written
            yield piece

    def close(self) -> None:
        for path in self.parts:
            path.unlink(missing_ok=True)
        self.parts, self.counts = [], []
        if self.folder.exists() and not any(self.folder.iterdir()):
            shutil.rmtree(self.folder, ignore_errors=True)


def _ranges(per_bucket: np.ndarray, rows: int) -> list[tuple[int, int]]:
    """Contiguous bucket ranges [lo, hi) of about ``rows`` rows each (a bucket is never split)."""
    out, lo, held = [], 0, 0
    for b, n in enumerate(per_bucket.tolist()):
        held += n
        if held >= rows:
            out.append((lo, b + 1))
            lo, held = b + 1, 0
    if lo < len(per_bucket):
        out.append((lo, len(per_bucket)))
    return out


class _RowGroups:
    """Cuts the rows fed in into row groups of ``ROW_GROUP_ROWS``, as ``pq.write_table`` does with
    a whole table (each group written from one contiguous array, so its pages are the same)."""

    def __init__(self, writer: pq.ParquetWriter, schema: pa.Schema):
        self.writer, self.schema = writer, schema
        self.pending: list[pa.Table] = []
        self.held = 0

    def add(self, table: pa.Table) -> None:
        self.pending.append(table.cast(self.schema))
        self.held += table.num_rows
        if self.held >= ROW_GROUP_ROWS:
            t = pa.concat_tables(self.pending).combine_chunks()
            self.pending = []  # the parts given back before the groups are encoded
            full = (t.num_rows // ROW_GROUP_ROWS) * ROW_GROUP_ROWS
            for start in range(0, full, ROW_GROUP_ROWS):
                self._write(t.slice(start, ROW_GROUP_ROWS))
            rest = t.slice(full)
            self.pending, self.held = ([rest] if rest.num_rows else []), rest.num_rows

    def flush(self) -> None:
        if self.held:
            t, self.pending = pa.concat_tables(self.pending).combine_chunks(), []
            self._write(t)
        self.pending, self.held = [], 0

    def _write(self, table: pa.Table) -> None:
        self.writer.write_table(table.combine_chunks(), row_group_size=ROW_GROUP_ROWS)


class FrameSpool:
    """Frames parked on disk as they come (Arrow IPC) and given back one by one, in order: rows a
    step must keep until its end but need not hold (a hostile night's quarantine)."""

    def __init__(self, folder: Path, name: str):
        self.folder, self.name = Path(folder), name
        self.parts: list[Path] = []
        self.rows = 0

    def add(self, frame: pd.DataFrame) -> None:
        if not len(frame):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.name}-{len(self.parts):06d}.arrow"
        table = pa.Table.from_pandas(frame, preserve_index=False)
        with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
        self.parts.append(path)
        self.rows += len(frame)

    def __len__(self) -> int:
        return self.rows

    def frames(self):
        for path in self.parts:
            with pa.memory_map(str(path)) as src:
                yield ipc.open_file(src).read_all().to_pandas()

    def close(self) -> None:
        for path in self.parts:
            path.unlink(missing_ok=True)
        self.parts = []
