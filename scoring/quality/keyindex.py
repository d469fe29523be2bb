"""Keys a chunked pass has seen, held as Arrow arrays: a key costs its bytes and an offset, not a
Python object and a hash-table slot (a night's 1.5M record keys are tens of MB, not hundreds)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


class KeyIndex:
    """Distinct string keys in the order first added, each with an optional integer value."""

    def __init__(self):
        self._keys: list[pa.Array] = []
        self._values: list[np.ndarray] = []
        self._all: tuple[pa.Array, np.ndarray] | None = None
        self.size = 0

    @staticmethod
    def _arrow(keys: pd.Series) -> pa.Array:
        return pa.array(keys.astype("string"), type=pa.large_string(), from_pandas=True)

    def _combined(self) -> tuple[pa.Array, np.ndarray]:
        if self._all is None:
            keys = (
                pa.chunked_array(self._keys, type=pa.large_string()).combine_chunks()
                if self._keys
                else pa.array([], type=pa.large_string())
            )
            values = np.concatenate(self._values) if self._values else np.zeros(0, np.int64)
            self._keys, self._values = [keys], [values]
            self._all = keys, values
        return self._all

    def positions(self, keys: pd.Series) -> np.ndarray:
        """Per key its position among the keys held, -1 where it is not held (or missing)."""
        held, _ = self._combined()
        if not len(keys) or not len(held):
            return np.full(len(keys), -1, dtype=np.int64)
        found = pc.index_in(self._arrow(keys), value_set=held)
        return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)

    def contains(self, keys: pd.Series) -> np.ndarray:
        return self.positions(keys) >= 0

    def values(self, keys: pd.Series) -> np.ndarray:
        """Per key the value it was added with (-1 where it is not held)."""
        pos = self.positions(keys)
        _, values = self._combined()
        return np.where(pos >= 0, values[np.maximum(pos, 0)] if len(values) else -1, -1)

    def add(self, keys: pd.Series, values: np.ndarray | None = None) -> None:
        """Hold the keys not held yet (missing keys are never held); the first value wins."""
        keep = keys.notna().to_numpy() & ~self.contains(keys)
        fresh = keys[keep]
        first = ~fresh.duplicated(keep="first").to_numpy()
        if not first.any():
            return
        vals = (
            np.asarray(values)[keep][first]
            if values is not None
            else np.zeros(first.sum(), np.int64)
        )
        self._keys.append(self._arrow(fresh[first]))
        self._values.append(vals.astype(np.int64))
        self._all = None
        self.size += int(first.sum())
