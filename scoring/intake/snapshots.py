"""Full-snapshot providers: a file that holds the provider's whole current list (every registered
entity, every listing in force), diffed against the provider's previous accepted snapshot of that
feed so that only what changed goes on to the gate and the history.

A snapshot's rows are keyed (a register row by its USCC, a record by ``record_key``) and hashed by
content (a record by ``record_content_hash``, the hash the gate judges a resend by). Against the
**index** of the previous accepted snapshot, (key, content hash) per row and never the rows:

- a row whose key and content are in the index is **unchanged**: counted as excluded
  (``snapshot_unchanged``), not staged;
- every other row (a new key, new content, a row with no usable key) is staged as from an
  increment;
- an index key that no row of the file carries **vanished**: the provider withdrew it. It is
  recorded as a row of its own, built from the latest stored version: a record removed from the
  snapshot's delivery date (``removal_date``; it counted until then), a registration whose
  status becomes ``WITHDRAWN_STATUS``. Never a silent delete.

Everything here is a pure function of a staged chunk and the index, row by row, except the set of
index keys seen, which the file's chunks fill in; so a file diffed in chunks gives the rows, counts,
vanished keys and next index of one pass. The index is looked up by a 64-bit hash of the key
(sorted; ``np.searchsorted``), each hit confirmed against the key itself, so a lookup of millions
costs two arrays, not a Python dict. Where the index lives and when it is replaced (only when the
night that read the snapshot commits) is scoring.history.snapshot_index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from scoring.intake.staging import (
    STG_ENTITY_COLUMNS,
    STG_RECORD_COLUMNS,
    date_text,
    hash_joined,
    record_content_hash,
    record_key,
)

UNCHANGED_REASON = "snapshot_unchanged"
SUPERSEDED_REASON = "snapshot_superseded"
# A registration the register's snapshot no longer carries. Not 注销 or 吊销: why the provider
# dropped it is the provider's to say; that it did is all the snapshot shows.
WITHDRAWN_STATUS = "快照撤回"
WITHDRAWN_REASON = "快照撤回：提供单位的全量快照不再包含此记录"
TRUNCATED_REASONS = ("truncated_row", "unterminated_quote")
INDEX_SCHEMA = pa.schema(
    [("key", pa.large_string()), ("key_hash", pa.uint64()), ("content", pa.uint64())]
)
ENTITY_CONTENT = [
    c
    for c in STG_ENTITY_COLUMNS
    if c not in ("source_file", "line_no", "provider", "delivered_on", "bad_values")
]
KEY_COLUMN = {"entities": "uscc", "records": "record_key"}


# --------------------------------------------------------------------------- keys and hashes


def row_keys(kind: str, frame: pd.DataFrame) -> pd.Series:
    """Each staged row's key (NA where it has none to diff by: it is then always staged)."""
    if kind == "entities":
        return frame["uscc"].astype("string")
    if kind != "records":
        raise ValueError(f"a {kind} feed is never a snapshot")
    subject = frame["uscc"].fillna(frame["id_number"]).fillna(frame["subject_name"])
    usable = frame["doc_number"].notna() & subject.notna()
    return record_key(frame).where(usable, pd.NA).astype("string")


def content_hashes(kind: str, frame: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash of what each row says (not where it came from)."""
    if kind == "records":
        return record_content_hash(frame).to_numpy(dtype=np.uint64)
    if not len(frame):
        return np.zeros(0, dtype=np.uint64)
    text = [date_text(frame[c]) if c.endswith("_date") else frame[c] for c in ENTITY_CONTENT]
    return hash_joined(text, frame.index).to_numpy(dtype=np.uint64)


def key_hashes(keys: pa.Array) -> np.ndarray:
    values = keys.to_numpy(zero_copy_only=False).astype(object)
    return pd.util.hash_array(values, categorize=False).astype(np.uint64)


def _arrow_keys(keys: pd.Series) -> pa.Array:
    return pa.array(keys.to_numpy(dtype=object, na_value=None), type=pa.large_string())


# --------------------------------------------------------------------------- the index


@dataclass(frozen=True)
class SnapshotIndex:
    """(key, key hash, content hash) of one snapshot's rows: sorted by key hash, keys unique."""

    table: pa.Table

    @classmethod
    def empty(cls) -> SnapshotIndex:
        return cls(INDEX_SCHEMA.empty_table())

    @classmethod
    def build(
        cls, keys: pa.Array, content: np.ndarray, kh: np.ndarray | None = None
    ) -> SnapshotIndex:
        """The index of these rows (``kh``: their key hashes, when already known); a key given
        twice keeps its last content (file order)."""
        keys = keys.cast(pa.large_string())
        kh = key_hashes(keys) if kh is None else np.asarray(kh, dtype=np.uint64)
        order = np.lexsort((np.arange(len(kh)), kh))  # by hash, then file order
        kh_sorted = kh[order]
        keep = np.ones(len(order), dtype=bool)
        tied = np.zeros(len(order), dtype=bool)
        if len(order) > 1:
            same = kh_sorted[1:] == kh_sorted[:-1]
            tied[1:] |= same
            tied[:-1] |= same
        if tied.any():  # a key sent twice (or two keys of one hash, rarely): compare the keys
            at = np.flatnonzero(tied)
            rows = pd.DataFrame({"key": keys.take(pa.array(order[at])).to_pylist(), "at": at})
            keep[at] = ~rows.duplicated("key", keep="last").to_numpy()
        order = order[keep]
        return cls(
            pa.table(
                [
                    keys.take(pa.array(order)),
                    pa.array(kh[order]),
                    pa.array(np.asarray(content, dtype=np.uint64)[order]),
                ],
                schema=INDEX_SCHEMA,
            )
        )

    @property
    def n(self) -> int:
        return self.table.num_rows

    def lookup(self, keys: pa.Array, kh: np.ndarray | None = None) -> np.ndarray:
        """Each key's position in the index, -1 where it is not there (or is null). ``kh``: the
        keys' hashes, when already known."""
        out = np.full(len(keys), -1, dtype=np.int64)
        if not self.n or not len(keys):
            return out
        has = np.asarray(pc.is_valid(keys))
        kh = key_hashes(keys) if kh is None else kh
        ikh, ikeys = self._key_hash, self._keys
        # Needles in order: each search starts where the last ended (cache-friendly at millions).
        order = np.argsort(kh, kind="stable")
        pos = np.empty(len(kh), dtype=np.int64)
        pos[order] = np.searchsorted(ikh, kh[order])
        hit = has & (pos < len(ikh))
        hit[hit] &= ikh[pos[hit]] == kh[hit]
        rows = np.flatnonzero(hit)
        same = np.asarray(pc.equal(ikeys.take(pa.array(pos[rows])), keys.take(pa.array(rows))))
        out[rows[same]] = pos[rows[same]]
        clash = rows[~same]  # the hash of another key: look the key itself up (rare)
        if len(clash):
            exact = pc.index_in(keys.take(pa.array(clash)), value_set=ikeys)
            found = np.asarray(pc.fill_null(exact, -1), dtype=np.int64)
            out[clash] = found
        return out

    def contents(self, positions: np.ndarray) -> np.ndarray:
        return self._content[positions]

    def keys_at(self, positions: np.ndarray) -> pa.Array:
        return self._keys.take(pa.array(positions, type=pa.int64()))

    # The columns as one array each, made once per index (a night looks up chunk after chunk).
    @cached_property
    def _keys(self) -> pa.Array:
        return self.table["key"].combine_chunks()

    @cached_property
    def _key_hash(self) -> np.ndarray:
        return self.table["key_hash"].to_numpy()

    @cached_property
    def _content(self) -> np.ndarray:
        return self.table["content"].to_numpy()


# --------------------------------------------------------------------------- the diff


@dataclass(frozen=True)
class ChunkDiff:
    unchanged: np.ndarray  # per row: key and content as in the index
    found: np.ndarray  # per row: its key's position in the index, -1 if none
    keys: pa.Array  # per row: its key (null: none)
    content: np.ndarray  # per row: its content hash
    key_hash: np.ndarray  # per row: its key's hash


def diff_chunk(index: SnapshotIndex, kind: str, chunk: pd.DataFrame) -> ChunkDiff:
    """One staged chunk against the previous snapshot's index. Row by row: a chunk's result is
    the rows' results, whatever the chunk."""
    keys = _arrow_keys(row_keys(kind, chunk))
    content = content_hashes(kind, chunk)
    kh = key_hashes(keys)
    found = index.lookup(keys, kh)
    unchanged = found >= 0
    unchanged[unchanged] = index.contents(found[unchanged]) == content[unchanged]
    return ChunkDiff(unchanged, found, keys, content, kh)


def vanished_keys(index: SnapshotIndex, seen: np.ndarray) -> pa.Array:
    """The index keys no row of the file carried, sorted (the provider's withdrawals)."""
    gone = index.keys_at(np.flatnonzero(~seen))
    return gone.take(pc.sort_indices(gone))


def guard(previous: int, received: int, vanished: int, truncated: bool, max_drop: float):
    """Why a snapshot must be held for a person rather than applied (None: apply it). Against a
    previous snapshot only: a first snapshot withdraws nothing."""
    if not previous:
        return None
    if truncated:
        return "the snapshot is truncated (its last row was cut): not applied as withdrawals"
    if not received:
        return f"the snapshot is empty; the previous one had {previous:,} rows"
    share = vanished / previous
    if share > max_drop:
        return (
            f"the snapshot drops {vanished:,} of the previous snapshot's {previous:,} rows "
            f"({share:.1%}, more than {max_drop:.1%})"
        )
    return None


@dataclass
class FileDiff:
    """One snapshot file diffed chunk by chunk: ``chunk`` per staged chunk (the rows to stage),
    then the vanished keys, the next index and the counts."""

    kind: str
    index: SnapshotIndex
    seen: np.ndarray = field(init=False)
    unchanged: int = 0
    _keys: list = field(default_factory=list)
    _content: list = field(default_factory=list)
    _hashes: list = field(default_factory=list)

    def __post_init__(self):
        self.seen = np.zeros(self.index.n, dtype=bool)

    def chunk(self, frame: pd.DataFrame) -> pd.DataFrame:
        d = diff_chunk(self.index, self.kind, frame)
        self.seen[d.found[d.found >= 0]] = True
        has = np.asarray(pc.is_valid(d.keys))
        self._keys.append(d.keys.filter(pa.array(has)))
        self._content.append(d.content[has])
        self._hashes.append(d.key_hash[has])
        self.unchanged += int(d.unchanged.sum())
        return frame[~d.unchanged]

    def vanished(self) -> pa.Array:
        return vanished_keys(self.index, self.seen)

    def next_index(self) -> SnapshotIndex:
        """The index of this file's rows (what the next snapshot is diffed against)."""
        if not self._keys:
            return SnapshotIndex.empty()
        keys = pa.concat_arrays([k.cast(pa.large_string()) for k in self._keys])
        return SnapshotIndex.build(
            keys, np.concatenate(self._content), np.concatenate(self._hashes)
        )


def withdrawal_rows(
    kind: str, stored: pd.DataFrame, path: str, provider: str, delivered: pd.Timestamp
) -> pd.DataFrame:
    """Staged rows recording that the provider withdrew these keys: each from the latest stored
    version (``stored``, staged column names, the provider's own rows only), a record removed
    from ``delivered`` (unless already removed by then), a registration ``WITHDRAWN_STATUS``. Line
    numbers are negative, in key order: these rows are no line of the file."""
    cols = STG_ENTITY_COLUMNS if kind == "entities" else STG_RECORD_COLUMNS
    key = KEY_COLUMN[kind]
    if not len(stored):
        return pd.DataFrame(columns=cols)
    rows = stored[stored["provider"] == provider].copy()
    day = pd.Timestamp(delivered).normalize()
    if kind == "entities":
        rows = rows[rows["entity_status"] != WITHDRAWN_STATUS]
        rows["entity_status"] = WITHDRAWN_STATUS
    else:
        removed = pd.to_datetime(rows["removal_date"])
        rows = rows[~(removed.notna() & (removed <= day)).to_numpy()]
        rows["removal_date"] = day
        rows["removal_reason"] = WITHDRAWN_REASON
    rows = rows.sort_values(key, ignore_index=True)
    rows["source_file"] = path
    rows["provider"] = provider
    rows["delivered_on"] = day
    rows["line_no"] = -np.arange(1, len(rows) + 1, dtype=np.int64)
    rows["bad_values"] = pd.NA
    out = rows.reindex(columns=cols)
    # the staged tables' dtypes (stored batches may give text as dictionaries, dates as ms)
    for c in cols:
        if c.endswith(("_date", "_on")):
            out[c] = pd.to_datetime(out[c]).astype("datetime64[s]")
        elif c == "line_no":
            out[c] = out[c].astype("int64")
        elif c == "amount_yuan":
            out[c] = pd.to_numeric(out[c]).astype("float64")
        else:
            out[c] = out[c].astype(object).where(out[c].notna(), None).astype("string")
    return out


def truncated(bad_rows: pd.DataFrame) -> bool:
    """The reader's verdict that the file was cut short (its last row incomplete)."""
    return bool(len(bad_rows)) and bool(bad_rows["reason"].isin(TRUNCATED_REASONS).any())
