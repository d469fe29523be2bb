"""The records' key lookup gives what ``Series.reindex`` gives, for every dtype the rights read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.evaluation.rights import KeyLookup

KEYS = st.lists(st.sampled_from(["a", "b", "c", "d", "e|1", "公示|2"]), max_size=30)
DTYPES = [
    "bool",
    "float64",
    "int64",
    "object",
    "string",
    "string[pyarrow]",
    "datetime64[s]",
    "datetime64[ns]",
    "Int64",
    "boolean",
]


def _values(keys: list[str], dtype: str) -> pd.Series:
    n = len(keys)
    raw = {
        "bool": [i % 2 == 0 for i in range(n)],
        "float64": [i / 2 for i in range(n)],
        "int64": list(range(n)),
        "object": [None if i % 3 == 0 else f"v{i}" for i in range(n)],
        "string": [None if i % 3 == 0 else f"v{i}" for i in range(n)],
        "string[pyarrow]": [None if i % 3 == 0 else f"v{i}" for i in range(n)],
        "datetime64[s]": pd.to_datetime(
            [None if i % 3 == 0 else f"2024-01-{i + 1:02d}" for i in range(n)]
        ),
        "datetime64[ns]": pd.to_datetime(
            [None if i % 3 == 0 else f"2024-02-{i + 1:02d}" for i in range(n)]
        ),
        "Int64": [None if i % 3 == 0 else i for i in range(n)],
        "boolean": [None if i % 3 == 0 else i % 2 == 0 for i in range(n)],
    }[dtype]
    return pd.Series(raw, index=pd.Index(keys, dtype=object), dtype=dtype)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype != b.dtype or len(a) != len(b):
        return False
    return all(
        (x is y) or (pd.isna(x) and pd.isna(y) and type(x) is type(y)) or x == y
        for x, y in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=40, deadline=None)
@given(
    records=KEYS,
    looked_up=st.lists(st.sampled_from(["a", "b", "c", "x", "公示|2"]), unique=True),
    changes=st.lists(st.sampled_from(["a", "b", "c", "d", "x", "公示|2", "y"])),
)
def test_lookup_is_reindex(dtype, records, looked_up, changes):
    """Values keyed by the changes' keys (and by keys no change names: the slow way) per record."""
    keys = pd.Series(records, dtype="string[pyarrow]")
    values = _values(looked_up, dtype)
    expected = values.reindex(keys.to_numpy()).to_numpy()
    lookup = KeyLookup(keys, pd.Series(changes, dtype="string[pyarrow]"))
    assert _same(lookup(values), expected)


@settings(max_examples=100, deadline=None)
@given(records=KEYS, asked=KEYS, changes=KEYS)
def test_isin_and_named_are_series_isin(records, asked, changes):
    keys = pd.Series(records, dtype="string[pyarrow]")
    lookup = KeyLookup(keys, pd.Series(changes, dtype="string[pyarrow]"))
    assert lookup.isin(asked).tolist() == keys.isin(set(asked)).tolist()
    assert lookup.named().tolist() == keys.isin(set(changes)).tolist()
