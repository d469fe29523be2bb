"""The latest version of each key over batches in order, and the compacted snapshot that spares a
night from re-reading and re-sorting the whole history.

Batches are immutable and a night's batch list only grows at its end, so "latest over A then B"
is "latest over A" with B's versions laid over it. A partition keeps the first as a snapshot (one
Parquet file, sorted by key, checked against its sha256 on every read) and a night reads it plus
the few batches stored since; a snapshot is (re)written when those grow large. The snapshot is
a cache, never a source: a batch list it is not a prefix of, a changed partition range or a file
that does not match its hash take the full path, whose result is the same by construction
(tests/history/test_latest_snapshot.py holds both to it). Both give text columns as plain text,
whatever type a batch gave them (dictionary, string), so that what a snapshot holds does not
depend on which batches' dictionaries it was made from.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from scoring.history.harmonise import harmonised

SNAPSHOT_FORMAT = 1
REWRITE_FRACTION = 0.05  # rows stored since the snapshot, as a share of it, that make it rewritten
REWRITE_BATCHES = 32  # or batches stored since it (a month and a half of nights)
SPLICE_LIMIT = 20_000  # newer versions laid over the snapshot by splicing; more: one sort


def filled_keys(table: pa.Table, key: str) -> pa.Array:
    """The key column as one large_string array, a missing key counting as ""."""
    return pc.fill_null(table[key].cast(pa.large_string()), "").combine_chunks()


def latest_of(table: pa.Table, key: str) -> pa.Table:
    """The last row of each key (rows in batch order), sorted by key: one stable sort of the keys,
    then a take a column at a time (a partition's rows are copied once, not twice at once);
    dictionary columns come out as their values (``plain_text``)."""
    if not table.num_rows:
        return plain_text(table)
    keys = filled_keys(table, key)
    order = pc.sort_indices(keys)  # stable: a key's versions stay in batch order, the latest last
    keys = keys.take(order)
    last = np.ones(len(keys), dtype=bool)
    if len(keys) > 1:
        last[:-1] = np.asarray(pc.not_equal(keys.slice(0, len(keys) - 1), keys.slice(1)))
    keep = order.filter(pa.array(last))
    del keys, order
    table = table.unify_dictionaries()  # dictionaries taken first (indices only), then decoded
    return plain_text(
        pa.Table.from_arrays(
            [(c.combine_chunks() if c.num_chunks > 1 else c).take(keep) for c in table.columns],
            schema=table.schema,
        )
    )


def plain_text(table: pa.Table) -> pa.Table:
    """Dictionary-typed columns as large_string (the values unchanged): how ``harmonised`` types a
    text column that batches disagree about, and the one form a snapshot holds."""
    dicts = [i for i, f in enumerate(table.schema) if pa.types.is_dictionary(f.type)]
    for i in dicts:
        col = table.column(i)
        table = table.set_column(
            i, table.schema.field(i).name, col.cast(col.type.value_type).cast(pa.large_string())
        )
    return table


def _key_at(keys: pa.ChunkedArray, i: int) -> str:
    return keys[i].as_py() or ""  # a missing key sorts as ""


def _bisect_left(keys: pa.ChunkedArray, value: str, lo: int) -> int:
    hi = len(keys)
    while lo < hi:
        mid = (lo + hi) // 2
        if (
            _key_at(keys, mid) < value
        ):  # Python orders str by code point: Arrow's byte order of UTF-8
            lo = mid + 1
        else:
            hi = mid
    return lo


def lay_over(base: pa.Table, newer: pa.Table, key: str) -> pa.Table:
    """``latest_of(concat(base, newer))`` for ``base`` and ``newer`` each already the latest of
    their batches: the newer versions spliced into the base at their key's place (the base's rows
    are not copied); many newer rows take one sort instead."""
    both = pa.concat_tables(harmonised([base, newer]), promote_options="permissive")
    if not newer.num_rows:
        return both  # the base's rows, with a newer batch's columns as the full read has them
    if newer.num_rows > SPLICE_LIMIT or not base.num_rows:
        return latest_of(both, key)
    base_keys, new_keys = (
        base[key],
        filled_keys(newer, key).to_pylist(),
    )  # the base's keys not copied
    pieces, cur, n = [], 0, base.num_rows
    for j, k in enumerate(new_keys):
        at = _bisect_left(base_keys, k, cur)
        if at > cur:
            pieces.append(both.slice(cur, at - cur))
        pieces.append(both.slice(n + j, 1))
        cur = at + 1 if at < n and _key_at(base_keys, at) == k else at  # an older version: replaced
    if cur < n:
        pieces.append(both.slice(cur, n - cur))
    return pa.concat_tables(pieces)


class Snapshot:
    """One partition's compacted latest versions: ``<name>-<sha>.parquet`` and ``<name>.json``
    (the batches it holds, in order, with their hashes, and the file's sha256)."""

    def __init__(self, folder: Path, name: str):
        self.folder, self.name = Path(folder), name

    @property
    def meta_path(self) -> Path:
        return self.folder / f"{self.name}.json"

    def batches(self) -> list[list[str]] | None:
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return None
        return meta["batches"] if meta.get("format") == SNAPSHOT_FORMAT else None

    def read(self) -> tuple[list[list[str]], pa.Table] | None:
        """(the batches it holds, the table), or None when absent or not what its record says."""
        try:
            meta = json.loads(self.meta_path.read_text())
            data = (self.folder / meta["file"]).read_bytes()
        except (OSError, ValueError, KeyError):
            return None
        if meta.get("format") != SNAPSHOT_FORMAT or hashlib.sha256(data).hexdigest() != meta.get(
            "sha256"
        ):
            return None
        return meta["batches"], pq.read_table(pa.BufferReader(data))

    def write(self, batches: list[list[str]], table: pa.Table) -> None:
        """Atomically: the file under a name of its own, then the record naming it; this
        partition's older files removed (``remove_overlapping`` removes other ranges')."""
        self.folder.mkdir(parents=True, exist_ok=True)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd", row_group_size=262_144)
        data = memoryview(
            sink.getvalue()
        )  # hashed and written from Arrow's buffer, not a copy of it
        sha = hashlib.sha256(data).hexdigest()
        fname = f"{self.name}-{sha[:16]}.parquet"
        _atomic(self.folder / fname, data)
        meta = {
            "format": SNAPSHOT_FORMAT,
            "batches": batches,
            "file": fname,
            "sha256": sha,
            "rows": table.num_rows,
        }
        _atomic(self.meta_path, json.dumps(meta, sort_keys=True).encode())
        for other in self.folder.glob(f"{self.name}-*.parquet"):
            if other.name != fname:
                other.unlink(missing_ok=True)


def _atomic(path: Path, data: bytes | memoryview) -> None:
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(path)


def remove_overlapping(folder: Path, prefix: str, lo: int, hi: int) -> None:
    """Snapshots named ``<prefix>-<a>-<b>`` of bucket ranges overlapping [lo, hi) but not it: left
    by another partition count, they would never be read again."""
    for meta in Path(folder).glob(f"{prefix}-*.json"):
        try:
            a, b = (int(x) for x in meta.stem[len(prefix) + 1 :].split("-")[:2])
        except ValueError:
            continue
        if (a, b) != (lo, hi) and a < hi and lo < b:
            for f in Path(folder).glob(f"{meta.stem}-*.parquet"):
                f.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)


def should_rewrite(held: int, since_rows: int, since_batches: int) -> bool:
    return since_batches >= REWRITE_BATCHES or since_rows > REWRITE_FRACTION * max(held, 1)
