"""Pieces each sorted by a key, read back as one stream in key order: a k-way merge done by columns.

A night's partitions are entity-hash ranges, so the province's USCC order interleaves all of
them. Putting the pieces in that order used to mean holding the whole province (and sorting it);
here only the key column of every piece is held (about 40 bytes a row), the global order is one
stable sort of it, and the rows are then pulled from each piece in chunks: since every piece is
itself in key order, the rows a chunk needs from a piece are simply its next ones. Memory is a
chunk per piece, whatever the province's size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from scoring.evaluation import piece_files

# Rows held per chunk (a test sets a handful through CREDIT_CHUNK_ROWS to cross many boundaries).
# Small enough that a first night of a few hundred thousand entities is several chunks, not one:
# the tail's memory then stops growing with the province well before 3M (250,000 held a 300k
# province's night whole: 0.77 GB in the score step's tail against 0.61 GB at 50,000).
CHUNK_ROWS = int(os.environ.get("CREDIT_CHUNK_ROWS") or 50_000)
CURSOR_ROWS = 8_192


def plain_type(t: pa.DataType) -> pa.DataType:
    """Dictionaries as their values; strings as large strings (a province's text passes 2 GB)."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.large_string() if pa.types.is_string(t) else t


def plain(table: pa.Table, schema: pa.Schema | None = None) -> pa.Table:
    """The table with plain column types (or cast to ``schema``, whose columns it must have)."""
    cols = []
    names = schema.names if schema is not None else table.column_names
    for name in names:
        col = table[name]
        want = schema.field(name).type if schema is not None else plain_type(col.type)
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        cols.append(col if col.type == want else col.cast(want))
    return pa.table(cols, names=names)


def is_sorted(keys: pa.Array | pa.ChunkedArray) -> bool:
    if len(keys) < 2:
        return True
    keys = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
    return bool(pc.all(pc.less_equal(keys.slice(0, len(keys) - 1), keys.slice(1))).as_py())


def sort_piece(path: Path, key: str) -> None:
    """Rewrite a piece in key order if it is not (pieces written by code that did not sort them)."""
    keys = piece_files.read_table(path, columns=[key])[key]
    if is_sorted(keys):
        return
    t = piece_files.read_table(path)
    t = t.take(pc.sort_indices(t, [(key, "ascending")]))
    if piece_files.is_ipc(path):
        piece_files.write_table(path, t, CURSOR_ROWS)
        return
    tmp = path.with_name(path.name + f".sort{os.getpid()}")
    pq.write_table(t, tmp, compression="zstd")
    os.replace(tmp, path)


class _Cursor:
    """The next rows of one piece, read a row group at a time."""

    def __init__(self, path: Path, columns: list[str] | None, schema: pa.Schema):
        # A few thousand rows at a time: with a province in 64 or more pieces, reading each piece a
        # chunk ahead would hold the whole province (what the 10M night did before this).
        self._batches = piece_files.iter_batches(path, CURSOR_ROWS, columns)
        self._schema = schema
        self._buf = schema.empty_table()

    def take(self, n: int) -> pa.Table:
        while self._buf.num_rows < n:
            batch = next(
                self._batches
            )  # StopIteration here would mean a piece shorter than its keys
            self._buf = pa.concat_tables(
                [self._buf, plain(pa.Table.from_batches([batch]), self._schema)]
            )
        out, self._buf = self._buf.slice(0, n), self._buf.slice(n)
        return out


def first_schema(paths: list[Path]) -> pa.Schema:
    """The schema of the first non-empty piece (an empty piece may carry null columns), else the
    first piece's."""
    first = None
    for path in paths:
        schema = piece_files.read_schema(path)
        if first is None:
            first = schema
        if piece_files.num_rows(path):
            return schema
    return first


def merged_schema(paths: list[Path], columns: list[str] | None = None) -> pa.Schema:
    """The plain schema of the pieces (see ``first_schema``)."""
    first = first_schema(paths)
    names = columns or [n for n in first.names]
    return pa.schema([pa.field(n, plain_type(first.field(n).type)) for n in names])


def iter_merged(
    paths: list[Path], key: str, columns: list[str] | None = None, chunk_rows: int | None = None
) -> Iterator[pa.Table]:
    """The rows of all pieces in key order (stable: equal keys keep piece order), in chunks of
    ``chunk_rows``, with plain column types. Each piece must be sorted by ``key``."""
    paths = [Path(p) for p in paths]
    chunk_rows = chunk_rows or CHUNK_ROWS
    for path in paths:
        sort_piece(path, key)
    keys = [piece_files.read_table(p, columns=[key])[key] for p in paths]
    sizes = np.array([len(k) for k in keys], dtype=np.int64)
    every = pa.chunked_array(
        [c.cast(pa.large_string()) for k in keys for c in k.chunks], type=pa.large_string()
    )
    del keys
    order = pc.sort_indices(pa.table({"k": every}), sort_keys=[("k", "ascending")]).to_numpy()
    del every
    piece = np.repeat(np.arange(len(paths), dtype=np.int32), sizes)[order]
    del order
    schema = merged_schema(paths, columns)
    cursors = [_Cursor(p, schema.names, schema) for p in paths]
    for start in range(0, len(piece), chunk_rows):
        which = piece[start : start + chunk_rows]
        counts = np.bincount(which, minlength=len(paths))
        parts = [cursors[p].take(int(n)) for p, n in enumerate(counts) if n]
        joined = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        # joined holds each piece's rows in piece order; put them back in the chunk's key order.
        back = np.empty(len(which), dtype=np.int64)
        back[np.argsort(which, kind="stable")] = np.arange(len(which), dtype=np.int64)
        yield joined.take(pa.array(back))
    if not len(piece):
        yield schema.empty_table()


def sorted_dictionaries(paths: list[Path], columns: list[str]) -> dict[str, pa.Array]:
    """For each dictionary column, the union of the pieces' dictionaries in sorted order (what a
    pandas categorical put together from the pieces has, once its categories are sorted)."""
    if not columns:
        return {}
    values: dict[str, set] = {col: set() for col in columns}
    for path in paths:  # each piece read once for all its dictionary columns
        table = piece_files.read_table(path, columns=columns)
        for col in columns:
            for chunk in table[col].chunks:
                values[col].update(
                    v
                    for v in (
                        chunk.dictionary if pa.types.is_dictionary(chunk.type) else pc.unique(chunk)
                    ).to_pylist()
                    if v is not None
                )
    return {col: pa.array(sorted(values[col], key=str), type=pa.string()) for col in columns}


def write_merged(
    paths: list[Path],
    key: str,
    dest: Path,
    columns: list[str] | None = None,
    keep_categories: bool = True,
) -> int:
    """Merge the pieces into one Parquet file in key order (atomically); returns its row count.
    ``keep_categories``: dictionary (pandas categorical) columns stay dictionaries, with one sorted
    dictionary for the whole file, so pandas reads back what it read from the assembled frame."""
    paths = [Path(p) for p in paths]
    first = first_schema(paths)
    names = columns or first.names
    dicts = (
        sorted_dictionaries(
            paths, [n for n in names if pa.types.is_dictionary(first.field(n).type)]
        )
        if keep_categories
        else {}
    )
    fields = [
        pa.field(
            n,
            pa.dictionary(first.field(n).type.index_type, pa.string())
            if n in dicts
            else plain_type(first.field(n).type),
        )
        for n in names
    ]
    # The pandas metadata (categorical, string dtypes) holds only for the same columns.
    schema = pa.schema(fields, metadata=first.metadata if columns is None else None)
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    rows = 0
    with pq.ParquetWriter(tmp, schema, compression="snappy") as writer:
        for chunk in iter_merged(paths, key, names):
            cols = []
            for field in schema:
                col = chunk[field.name].combine_chunks()
                if field.name in dicts:
                    idx = pc.index_in(col.cast(pa.string()), value_set=dicts[field.name]).cast(
                        field.type.index_type
                    )
                    col = pa.DictionaryArray.from_arrays(idx, dicts[field.name])
                elif col.type != field.type:
                    col = col.cast(field.type)
                cols.append(col)
            table = pa.Table.from_arrays(cols, schema=schema)
            writer.write_table(table)
            rows += table.num_rows
    os.replace(tmp, dest)
    return rows
