"""Keys a chunked pass has seen, held as 128-bit digests: a key costs 16 bytes (24 with a value)
whatever its length, and a lookup is a binary search, not a hash table rebuilt over every key
held (at 3M entities the night's keys are tens of millions: strings and a per-chunk table were
the gate's largest growing part).

Two keys are the same when both halves of their digests are (two SipHash-2-4 hashes under
different keys, pandas' ``hash_array``): two distinct keys of a night colliding in 128 bits is
far less likely (about n² / 2¹²⁹, 10⁻²⁵ for 30M keys) than a disk returning a wrong byte."""

from __future__ import annotations

import numpy as np
import pandas as pd

_HASH_KEYS = ("keyindex-half-a0", "keyindex-half-b1")  # 16 bytes each, as SipHash wants


def digests(keys: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(first, second) 64-bit halves of each key's digest; keys must not be missing."""
    text = keys.astype("string").to_numpy(dtype=object)
    return tuple(pd.util.hash_array(text, hash_key=k, categorize=False) for k in _HASH_KEYS)


class KeyIndex:
    """Distinct string keys, each with an optional integer value (the first one added)."""

    def __init__(self):
        empty = np.zeros(0, np.uint64)
        self._hi, self._lo, self._val = empty, empty, np.zeros(0, np.int64)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.size = 0

    def _merged(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The held digests ordered by their first half (pending additions merged in: a stable
        sort of sorted runs is a linear merge)."""
        if self._pending:
            parts = [(self._hi, self._lo, self._val), *self._pending]
            hi, lo, val = (np.concatenate([p[i] for p in parts]) for i in range(3))
            order = np.argsort(hi, kind="stable")
            self._hi, self._lo, self._val = hi[order], lo[order], val[order]
            self._pending = []
        return self._hi, self._lo, self._val

    def _lookup(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """Per digest its place among the held ones, -1 where it is not held."""
        held_hi, held_lo, _ = self._merged()
        out = np.full(len(hi), -1, dtype=np.int64)
        if not len(hi) or not len(held_hi):
            return out
        # Searched in sorted order (then put back): each search starts near the last one, not in
        # a random part of millions of held digests (5x faster at 250,000 in 9M).
        order = np.argsort(hi, kind="stable")
        left, right = np.empty(len(hi), np.intp), np.empty(len(hi), np.intp)
        left[order] = np.searchsorted(held_hi, hi[order], "left")
        right[order] = np.searchsorted(held_hi, hi[order], "right")
        one = np.flatnonzero(right - left == 1)
        match = held_lo[left[one]] == lo[one]
        out[one[match]] = left[one[match]]
        # Held keys sharing a first half (about one pair in 10⁶ at 30M keys): scan the run.
        for i in np.flatnonzero(right - left > 1):
            same = np.flatnonzero(held_lo[left[i] : right[i]] == lo[i])
            if len(same):
                out[i] = left[i] + same[0]
        return out

    def _places(self, keys: pd.Series) -> np.ndarray:
        out = np.full(len(keys), -1, dtype=np.int64)
        present = keys.notna().to_numpy()
        if present.any():
            hi, lo = digests(keys[present])
            out[present] = self._lookup(hi, lo)
        return out

    def contains(self, keys: pd.Series) -> np.ndarray:
        return self._places(keys) >= 0

    def values(self, keys: pd.Series) -> np.ndarray:
        """Per key the value it was added with (-1 where it is not held)."""
        place = self._places(keys)
        _, _, val = self._merged()
        return np.where(place >= 0, val[np.maximum(place, 0)] if len(val) else -1, -1)

    def add(self, keys: pd.Series, values: np.ndarray | None = None) -> None:
        """Hold the keys not held yet (missing keys are never held); the first value wins."""
        present = keys.notna().to_numpy()
        if not present.any():
            return
        hi, lo = digests(keys[present])
        fresh = self._lookup(hi, lo) < 0
        pair = pd.DataFrame({"hi": hi[fresh], "lo": lo[fresh]})
        first = ~pair.duplicated(keep="first").to_numpy()
        if not first.any():
            return
        vals = (
            np.asarray(values)[present][fresh][first]
            if values is not None
            else np.zeros(int(first.sum()), np.int64)
        )
        new_hi = hi[fresh][first]
        order = np.argsort(new_hi, kind="stable")
        self._pending.append((new_hi[order], lo[fresh][first][order], vals.astype(np.int64)[order]))
        self.size += int(first.sum())
