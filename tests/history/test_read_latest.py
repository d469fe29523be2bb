"""read_latest is what its docstring promises: the pandas reference, done in Arrow."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring.history.store import Store

USCCS = ["91230100MA1BXXXX0Y", "91230100MA1BXXXX1Y", "92230100MA1BXXXX2Y", "", None]


def _batch(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "record_key": pd.Series([r[0] for r in rows], dtype="string"),
            "uscc": pd.Series([r[1] for r in rows], dtype="string"),
            "item_code": pd.Series([r[2] for r in rows], dtype="category"),
            "amount_yuan": [float(r[3]) for r in rows],
        }
    )


rows = st.tuples(
    st.sampled_from(["k1", "k2", "k10", "k2|x", "", None]),
    st.sampled_from(USCCS),
    st.sampled_from(["A01", "B02", "C03"]),
    st.integers(0, 9),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.lists(rows, min_size=0, max_size=12), min_size=1, max_size=4))
def test_latest_version_of_each_key_in_key_order(tmp_path, batches):
    store = Store.open(f"sqlite:///{tmp_path}/s.db", tmp_path / "home")
    written = [
        store.write_batch(
            f"run{i}", "records", _batch(b), dt.date(2026, 7, 1) + dt.timedelta(days=i)
        )
        for i, b in enumerate(batches)
        if b
    ]
    if not written:
        return
    got = store.read_latest(written, "record_key")
    whole = store.read_batches(written)
    # The reference: missing keys count as one key (""), the last version wins, rows sorted by key.
    whole = whole.assign(_k=whole["record_key"].fillna(""))
    want = whole.drop_duplicates("_k", keep="last").sort_values("_k", kind="stable")
    cols = ["record_key", "uscc", "item_code", "amount_yuan"]
    assert got["record_key"].fillna("").tolist() == want["_k"].tolist()
    pd.testing.assert_frame_equal(
        got[cols].reset_index(drop=True).astype({"item_code": "string"}),
        want[cols].reset_index(drop=True).astype({"item_code": "string"}),
        check_dtype=False,
    )
