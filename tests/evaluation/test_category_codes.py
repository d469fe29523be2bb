"""category_codes gives what pandas' Categorical gives, for text, object and categorical columns."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.evaluation.evaluate import category_codes

values = st.lists(
    st.one_of(st.none(), st.sampled_from(["A01", "B02", "C03", "a01", "", "A01 ", "严重"])),
    max_size=40,
)
categories = st.lists(
    st.sampled_from(["A01", "B02", "C03", "", "严重", "D04"]), unique=True, max_size=6
)


@settings(max_examples=200, deadline=None)
@given(values, categories, st.sampled_from(["object", "string", "category"]), st.booleans())
def test_same_codes_as_pandas_categorical(vals, cats, dtype, subset):
    s = pd.Series(vals, dtype=dtype)
    rows = np.arange(0, len(s), 2) if subset else None
    with (
        warnings.catch_warnings()
    ):  # the reference: pandas warns that values outside categories will raise
        warnings.simplefilter("ignore")
        want = pd.Categorical(
            s.to_numpy(dtype=object)[rows] if subset else s.to_numpy(dtype=object), categories=cats
        ).codes
    got = category_codes(s, cats, rows)
    assert got.tolist() == want.tolist()
