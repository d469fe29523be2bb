"""The canonical published result, written with Arrow kernels instead of a Python call per value.

The canonical form is defined by what it has always been (every stored output hash depends on it):
the result columns in a fixed order, rows sorted by USCC, the CSV that pandas' ``to_csv(index=False,
float_format="%.1f", lineterminator="\\n")`` writes -- fields quoted only when they hold a comma, a
double quote or a line feed (quotes doubled), floats rounded as C's ``%.1f`` rounds them, missing
values empty, UTF-8. tests/evaluation/test_canonical.py holds the pandas writer as the reference and
checks this one against it, byte for byte, on generated frames.

Rows are produced in chunks, so the hash of a province's output (and its file) is made without
holding the whole CSV in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

CHUNK_ROWS = 50_000
_NEEDS_QUOTES = r'[,"\n]'


def _strings(arr: pa.Array) -> pa.Array:
    s = arr.cast(pa.string()) if not pa.types.is_string(arr.type) else arr
    s = pc.fill_null(s, "")
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(s, '"', '""'), '"', "")
    return pc.if_else(pc.match_substring_regex(s, _NEEDS_QUOTES), quoted, s)


def _floats_1dp(arr: pa.Array) -> pa.Array:
    """``"%.1f" % x`` for every x, vectorised: round |x|·10 to an integer and place the point. Where
    |x|·10 lies within rounding error of a half (where C's correctly rounded result could differ
    from the float product's), and for non-finite values, the value is formatted by Python itself."""
    x = arr.to_numpy(zero_copy_only=False).astype(np.float64)
    missing = np.isnan(x) if not arr.null_count else np.asarray(pc.is_null(arr, nan_is_null=True))
    finite = np.isfinite(x) & (np.abs(x) < 1e15)
    a = np.where(finite, np.abs(x), 0.0) * 10.0
    frac = a - np.floor(a)
    q = np.rint(a).astype(np.int64)
    text = pc.binary_join_element_wise(
        pc.if_else(pa.array(np.signbit(x) & finite), "-", ""),
        pa.array(q // 10).cast(pa.string()),
        ".",
        pa.array(q % 10).cast(pa.string()),
        "",
    )
    exact = finite & (np.abs(frac - 0.5) > 1e-6)
    odd = np.flatnonzero(~exact & ~missing)
    if len(odd) or missing.any():
        values = text.to_pylist()
        for i in odd:
            values[i] = "%.1f" % x[i]  # noqa: UP031 - the canonical text form, byte for byte
        for i in np.flatnonzero(missing):
            values[i] = ""
        text = pa.array(values, type=pa.string())
    return text


def _field(arr: pa.Array) -> pa.Array:
    t = arr.type
    if pa.types.is_dictionary(t):
        return _field(arr.cast(t.value_type))
    if pa.types.is_floating(t):
        return _floats_1dp(arr)
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        s = pc.fill_null(arr.cast(pa.string()), "")
        return (
            pc.replace_substring(pc.replace_substring(s, "true", "True"), "false", "False")
            if pa.types.is_boolean(t)
            else s
        )
    return _strings(arr)


def _table(results: pd.DataFrame | pa.Table, columns: list[str]) -> pa.Table:
    if isinstance(results, pa.Table):
        t = results.select(columns)
    else:
        t = pa.Table.from_pandas(results[columns], preserve_index=False)
    return t.take(
        pc.sort_indices(t, sort_keys=[(columns[0], "ascending")])
    )  # stable, by bytes = code points


def canonical_lines(table: pa.Table, columns: list[str]) -> pa.Array:
    """One canonical CSV line (with its line feed) per row of ``table``, in the table's order."""
    fields = [_field(table.column(c).combine_chunks()) for c in columns]
    lines = pc.binary_join_element_wise(*fields, ",") if len(fields) > 1 else fields[0]
    lines = pc.binary_join_element_wise(lines, "\n", "")
    return lines.combine_chunks() if isinstance(lines, pa.ChunkedArray) else lines


def join_lines(lines: pa.Array) -> bytes:
    """The lines as one byte string (their data buffer, no per-line copy)."""
    lines = lines.cast(pa.large_string()) if pa.types.is_string(lines.type) else lines
    if not len(lines):
        return b""
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[
        lines.offset : lines.offset + len(lines) + 1
    ]
    return lines.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0])).to_pybytes()


def header(columns: list[str]) -> bytes:
    return (",".join(columns) + "\n").encode("utf-8")


def iter_canonical(
    results: pd.DataFrame | pa.Table, columns: list[str], chunk_rows: int | None = None
) -> Iterator[bytes]:
    """The canonical CSV of ``results`` (sorted by the first column), header first, in chunks."""
    chunk_rows = chunk_rows or CHUNK_ROWS
    t = _table(results, columns)
    yield header(columns)
    for start in range(0, t.num_rows, chunk_rows):
        yield join_lines(canonical_lines(t.slice(start, chunk_rows), columns))


def write_chunks(chunks: Iterator[bytes], path=None) -> str:
    """Hash a stream of bytes (and write it to ``path`` if given) in one pass; returns the sha256."""
    h = hashlib.sha256()
    fh = open(path, "wb") if path is not None else None
    try:
        for chunk in chunks:
            h.update(chunk)
            if fh:
                fh.write(chunk)
    finally:
        if fh:
            fh.close()
    return h.hexdigest()


def canonical_bytes(results, columns: list[str]) -> bytes:
    return b"".join(iter_canonical(results, columns))


def write_canonical(results, columns: list[str], path=None) -> str:
    """Hash the canonical CSV (and write it to ``path`` if given) in one pass; returns the sha256."""
    return write_chunks(iter_canonical(results, columns), path)
