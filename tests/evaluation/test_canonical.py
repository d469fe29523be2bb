"""The canonical result writer (Arrow kernels) against its definition: pandas' to_csv, byte for byte."""

import io

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import province as bench
from scoring.common.catalogue import Catalogue
from scoring.evaluation import canonical
from scoring.evaluation.evaluate import (
    CANONICAL_COLUMNS,
    Policy,
    canonical_bytes,
    output_sha256,
    score_entities,
)


def reference_bytes(frame: pd.DataFrame, columns) -> bytes:
    """The definition the stored hashes were made with (the writer before Arrow)."""
    r = frame[columns].sort_values(columns[0], kind="stable")
    buf = io.StringIO()
    r.to_csv(buf, index=False, float_format="%.1f", lineterminator="\n")
    return buf.getvalue().encode("utf-8")


texts = st.text(alphabet=st.sampled_from(list('ab,"\n\r\t ;，信用R0-/|') + ["é", "𝄞"]), max_size=12)
floats = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.sampled_from(
    [0.05, 0.15, 0.25, 0.35, -0.05, -0.04, -0.0, 0.0, 12.45, -12.45, 2.5e-7, 1e15, 1e20, 999.95]
)
rows = st.tuples(
    st.text(alphabet="0123456789ABCY", min_size=1, max_size=18),
    texts,
    floats,
    st.integers(-(10**12), 10**12),
    st.sampled_from(["", "A", "D,x", None]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(rows, min_size=0, max_size=30))
def test_arrow_writer_matches_the_pandas_definition(data):
    frame = pd.DataFrame(data, columns=["uscc", "reasons", "dim", "score", "flags"])
    frame = frame.astype(
        {
            "uscc": "string",
            "reasons": "string",
            "dim": "float64",
            "score": "int64",
            "flags": "category",
        }
    )
    cols = list(frame.columns)
    assert canonical.canonical_bytes(frame, cols) == reference_bytes(frame, cols)


def test_a_province_hashes_as_before_in_chunks(tmp_path, monkeypatch):
    ent, rec = bench.synthetic_province(3_000, 30_000)
    results = score_entities(ent, rec, Catalogue.load(), Policy.load(), "2026-06-30")
    want = reference_bytes(results, CANONICAL_COLUMNS)
    monkeypatch.setattr(canonical, "CHUNK_ROWS", 701)  # many chunks, one odd-sized
    assert canonical_bytes(results) == want
    import hashlib

    assert output_sha256(results, tmp_path / "out.csv") == hashlib.sha256(want).hexdigest()
    assert (tmp_path / "out.csv").read_bytes() == want


@pytest.mark.parametrize("value", [np.nan, None])
def test_missing_values_are_empty_fields(value):
    frame = pd.DataFrame({"uscc": ["1"], "x": pd.array([value], dtype="Float64")})
    assert canonical.canonical_bytes(frame, ["uscc", "x"]) == b"uscc,x\n1,\n"
