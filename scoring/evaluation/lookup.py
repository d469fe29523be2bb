"""Arrow hash lookups the engine, the report and publication share: positions of values in an
index, and category codes, without turning text columns into Python objects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def arrow_array(s: pd.Series):
    """The Arrow array behind a string Series (no copy when it is Arrow-backed already)."""
    arr = getattr(s.array, "_pa_array", None)
    return arr if arr is not None else pa.array(s.astype("string").array._pa_array)


def positions(values: pd.Series, index: pd.Series, rows: np.ndarray | None = None) -> np.ndarray:
    """Position in ``index`` of each value (of ``values[rows]`` if given; -1 if absent), with one
    Arrow hash lookup (the value set's table is built once)."""
    arr = arrow_array(values)
    if rows is not None:
        arr = arr.take(pa.array(rows))
    if not len(arr):
        return np.zeros(0, dtype=np.int32)
    return (
        pc.index_in(arr, value_set=arrow_array(index))
        .fill_null(-1)
        .to_numpy(zero_copy_only=False)
        .astype(np.int32)
    )


def category_codes(values: pd.Series, categories, rows: np.ndarray | None = None) -> np.ndarray:
    """``pd.Categorical(values, categories=categories).codes`` (of ``values[rows]`` if given) by
    one Arrow hash lookup: a text column is not turned into Python objects first, and a
    categorical column is looked up by its categories only."""
    categories = pd.Series(list(categories), dtype="string")
    if isinstance(values.dtype, pd.CategoricalDtype):
        lookup = (
            positions(pd.Series(values.cat.categories.astype("string")), categories)
            if len(values.cat.categories)
            else np.zeros(0, dtype=np.int32)
        )
        codes = values.cat.codes.to_numpy()
        if rows is not None:
            codes = codes[rows]
        return np.where(codes >= 0, lookup[np.maximum(codes, 0)] if len(lookup) else -1, -1).astype(
            np.int32
        )
    return positions(values, categories, rows)
