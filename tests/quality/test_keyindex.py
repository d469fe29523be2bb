"""KeyIndex answers as a dict of the keys seen so far would: membership and first values."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.quality.keyindex import KeyIndex

keys = st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c|1", "", "键", "a\x1f2"])))


@settings(max_examples=80, deadline=None)
@given(st.lists(keys, min_size=1, max_size=5), keys)
def test_key_index_is_a_dict_of_first_values(chunks, probe):
    index, ref = KeyIndex(), {}
    for i, chunk in enumerate(chunks):
        s = pd.Series(chunk, dtype="string")
        values = np.arange(len(chunk)) + 100 * i
        index.add(s, values)
        for k, v in zip(chunk, values, strict=True):
            if k is not None:
                ref.setdefault(k, int(v))
    p = pd.Series(probe, dtype="string")
    assert index.contains(p).tolist() == [k is not None and k in ref for k in probe]
    assert index.values(p).tolist() == [ref.get(k, -1) if k is not None else -1 for k in probe]
    assert index.size == len(ref)
