"""Bulk SQL writes of frames: COPY on PostgreSQL (streamed as CSV written by Arrow), executemany
elsewhere; and COPY files prepared by a worker for the night's tail to stream."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa

from scoring.common.partitions import BUCKET_COLUMN, bucket_of


def insert_frame(conn, table: sa.Table, frame: pd.DataFrame) -> None:
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
