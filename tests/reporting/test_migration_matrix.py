"""The migration matrix counts what a pandas outer merge and crosstab of the two runs count."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.reporting.report import migration_matrix


def reference(previous: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    m = previous[["uscc", "tier"]].merge(
        current[["uscc", "tier"]], on="uscc", how="outer", suffixes=("_prev", "_now")
    )
    m["tier_prev"] = m["tier_prev"].astype("object").fillna("new")
    m["tier_now"] = m["tier_now"].astype("object").fillna("gone")
    t = pd.crosstab(m["tier_prev"], m["tier_now"])
    rows = [r for r in ["A", "B", "C", "D", "new"] if r in t.index]
    cols = [c for c in ["A", "B", "C", "D", "gone"] if c in t.columns]
    return t.reindex(index=rows, columns=cols, fill_value=0)


def run(entities: dict[int, str]) -> pd.DataFrame:
    keys = sorted(entities)
    return pd.DataFrame(
        {
            "uscc": pd.Series([f"9123{k:014d}" for k in keys], dtype="string"),
            "tier": pd.Series([entities[k] for k in keys], dtype="category"),
        }
    )


tiers = st.dictionaries(st.integers(0, 40), st.sampled_from("ABCD"), max_size=30)


@settings(max_examples=200, deadline=None)
@given(tiers, tiers)
def test_same_counts_as_merge_and_crosstab(before, after):
    got, want = migration_matrix(run(before), run(after)), reference(run(before), run(after))
    assert (
        got.index.tolist() == want.index.tolist() and got.columns.tolist() == want.columns.tolist()
    )
    assert got.to_numpy().tolist() == want.to_numpy().tolist()
    assert (got.index.name, got.columns.name) == ("tier_prev", "tier_now")
