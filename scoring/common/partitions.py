"""Entity-hash partitions: how a province's night is cut into pieces that are evaluated apart.

Every entity (and every record, by the entity it names) falls in one of ``N_BUCKETS`` buckets by a
fixed hash of its identifier; a night in K partitions gives partition p the contiguous bucket range
``bucket_range(p, K)``. The hash is defined here, in integer arithmetic on the identifier's UTF-8
bytes, so it is the same on every machine, Python and library version (no ``hash()``, no seed), and
the same entity is always in the same bucket whatever K is. Record batches are stored sorted by
bucket, so a partition reads only its own row groups.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

N_BUCKETS = 1024
BUCKET_COLUMN = "part_bucket"
_MUL = np.uint64(0x100000001B3)  # FNV-1a 64-bit prime
_BASIS = np.uint64(0xCBF29CE484222325)  # FNV-1a 64-bit offset basis


def bucket_of(values) -> np.ndarray:
    """The bucket (0..N_BUCKETS-1) of each identifier: FNV-1a (64 bit) over its UTF-8 bytes, then
    the top bits folded in. Missing values hash as the empty string."""
    arr = (
        values
        if isinstance(values, (pa.Array, pa.ChunkedArray))
        else pa.array(values, type=pa.string())
    )
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks else pa.array([], type=pa.string())
    arr = pc.fill_null(arr.cast(pa.large_string()), "")
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=np.int16)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    data = (
        np.frombuffer(arr.buffers()[2], dtype=np.uint8)
        if arr.buffers()[2] is not None
        else np.zeros(0, dtype=np.uint8)
    )
    lengths = np.diff(offsets)
    h = np.full(n, _BASIS, dtype=np.uint64)
    with np.errstate(over="ignore"):
        # Identifiers of one length at a time, as a byte matrix (USCCs: one length, one reshape).
        for length in np.unique(lengths):
            rows = np.flatnonzero(lengths == length)
            if length == 0:
                continue
            if len(rows) == n and offsets[-1] - offsets[0] == n * length:
                m = data[offsets[0] : offsets[-1]].reshape(n, int(length))
            else:
                m = data[offsets[rows][:, None] + np.arange(length)]
            g = h[rows]
            for j in range(int(length)):
                g = (g ^ m[:, j].astype(np.uint64)) * _MUL
            h[rows] = g
        h ^= h >> np.uint64(29)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(32)
    return (h % np.uint64(N_BUCKETS)).astype(np.int16)


def bucket_range(partition: int, partitions: int) -> tuple[int, int]:
    """Buckets [lo, hi) of partition ``partition`` of ``partitions``."""
    if not 1 <= partitions <= N_BUCKETS:
        raise ValueError(f"partitions must be 1..{N_BUCKETS}, not {partitions}")
    if not 0 <= partition < partitions:
        raise ValueError(f"partition {partition} is not one of 0..{partitions - 1}")
    return partition * N_BUCKETS // partitions, (partition + 1) * N_BUCKETS // partitions


def record_bucket_key(frame) -> pa.Array:
    """What places a record: the entity it names (USCC), else its own key (it then names no
    registered entity, but must still be in exactly one partition)."""
    uscc = frame["uscc"] if "uscc" in frame else None
    key = frame["record_key"] if "record_key" in frame else None
    if uscc is None:
        return key
    return uscc.fillna(key) if key is not None else uscc
