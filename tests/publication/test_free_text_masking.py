"""Identifiers inside free text are masked in the values that can hold one only: the result is
what the replacements over every value give (Hypothesis), chunked or not."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.publication import free_text as ft


def _everywhere(arr: pa.Array) -> pa.Array:
    out = pc.replace_substring_regex(arr, ft.ID_RUN, ft.ID_MASK)
    return pc.replace_substring_regex(out, ft.PHONE, ft.PHONE_MASK)


pieces = st.sampled_from(
    [
        "1",
        "3",
        "8",
        "0",
        "５",
        "X",
        "-",
        " ",
        "店",
        "230102198001015018",
        "13812345678",
        "138-1234-5678",
        "１３８",
    ]
)
values = st.one_of(st.none(), st.lists(pieces, max_size=8).map("".join))


@settings(max_examples=200, deadline=None)
@given(st.lists(values, max_size=30), st.integers(0, 30))
def test_masking_the_candidates_equals_masking_everything(vals, cut):
    arr = pa.array(vals, type=pa.large_string())
    want = _everywhere(arr)
    assert ft.mask_identifiers(arr).equals(want)
    cut = min(cut, len(vals))
    chunked = pa.chunked_array([arr.slice(0, cut), arr.slice(cut)], type=pa.large_string())
    assert ft.mask_identifiers(chunked).combine_chunks().equals(want)
