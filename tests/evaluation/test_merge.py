"""Pieces sorted by key, merged by columns, equal the pieces concatenated and sorted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.evaluation import piece_files
from scoring.evaluation.merge import iter_merged, write_merged


def _pieces(tmp_path, sizes, seed, arrow=False):
    rng = np.random.default_rng(seed)
    keys = rng.choice(10_000_000, size=sum(sizes), replace=False)
    frames, start = [], 0
    for i, n in enumerate(sizes):
        k = np.sort(keys[start : start + n])
        start += n
        frames.append(
            pd.DataFrame(
                {
                    "uscc": pd.array([f"9123{v:014d}" for v in k], dtype="string"),
                    "score": rng.integers(0, 1000, n),
                    "tier": pd.Categorical(rng.choice(list("ABCD"), n), categories=list("ABCD")),
                    # a category set of its own in each piece, as a partition's unused categories are removed
                    "override": pd.Categorical(
                        rng.choice(["", f"cap{i}"], n)
                    ).remove_unused_categories(),
                    "reasons": pd.array(
                        [None if v % 7 == 0 else f"R{v % 13} 理由" for v in k], dtype="string"
                    ),
                }
            )
        )
    paths = []
    for i, f in enumerate(
        frames
    ):  # as the night's workers write them, or as Parquet (earlier code)
        paths.append(tmp_path / f"piece-{i}.{'arrow' if arrow else 'parquet'}")
        if arrow:
            piece_files.write_table(
                paths[-1], pa.Table.from_pandas(f, preserve_index=False), chunk_rows=7
            )
        else:
            f.to_parquet(paths[-1], index=False)
    whole = pd.concat(frames, ignore_index=True).sort_values("uscc", ignore_index=True)
    for col in ("override", "tier"):
        cats = sorted(set().union(*(f[col].cat.categories for f in frames)), key=str)
        whole[col] = pd.Categorical(whole[col].astype(object), categories=cats)
    return paths, whole


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 60), min_size=1, max_size=6),
    chunk=st.integers(1, 50),
    seed=st.integers(0, 99),
    arrow=st.booleans(),
)
def test_merged_rows_are_the_sorted_union_in_any_chunk_size(
    tmp_path_factory, sizes, chunk, seed, arrow
):
    tmp = tmp_path_factory.mktemp("m")
    paths, whole = _pieces(tmp, sizes, seed, arrow)
    chunks = list(iter_merged(paths, "uscc", ["uscc", "score", "reasons"], chunk_rows=chunk))
    assert all(c.num_rows <= chunk for c in chunks)
    got = pa.concat_tables(chunks).to_pandas()
    assert got["uscc"].tolist() == whole["uscc"].tolist()
    assert got["score"].tolist() == whole["score"].tolist()

    def plain(s):
        return [None if pd.isna(v) else v for v in s]

    assert plain(got["reasons"]) == plain(whole["reasons"])


@pytest.mark.parametrize("arrow", [True, False])
def test_a_merged_file_reads_back_as_the_assembled_frame(tmp_path, arrow):
    paths, whole = _pieces(tmp_path, [500, 0, 321, 77], seed=3, arrow=arrow)
    dest = tmp_path / "all.parquet"
    assert write_merged(paths, "uscc", dest) == len(whole)
    back = pd.read_parquet(dest)
    pd.testing.assert_frame_equal(back, whole, check_dtype=False)
    assert list(back["override"].cat.categories) == [
        "",
        "cap0",
        "cap2",
        "cap3",
    ]  # sorted union, as assembled
    assert str(back["tier"].dtype) == "category"


def test_an_unsorted_piece_is_put_in_order_first(tmp_path):
    paths, whole = _pieces(tmp_path, [40, 40], seed=5)
    t = pq.read_table(paths[1])
    pq.write_table(
        t.take(pa.array(np.arange(t.num_rows)[::-1])), paths[1]
    )  # a piece from older code
    got = pa.concat_tables(iter_merged(paths, "uscc", ["uscc"], chunk_rows=9)).to_pandas()
    assert got["uscc"].tolist() == whole["uscc"].tolist()


def test_an_unsorted_arrow_piece_is_put_in_order_and_stays_arrow(tmp_path):
    paths, whole = _pieces(tmp_path, [40, 40], seed=5, arrow=True)
    t = piece_files.read_table(paths[1])
    piece_files.write_table(paths[1], t.take(pa.array(np.arange(t.num_rows)[::-1])), chunk_rows=11)
    got = pa.concat_tables(iter_merged(paths, "uscc", ["uscc"], chunk_rows=9)).to_pandas()
    assert got["uscc"].tolist() == whole["uscc"].tolist()
    assert piece_files.is_ipc(paths[1])
