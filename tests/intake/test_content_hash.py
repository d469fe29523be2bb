"""record_content_hash joins a record's fields column by column: the hashes are those of the
row-by-row join the stored history was hashed with (a resend must still match what is stored)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.intake.ingest import RECORD_CONTENT, record_content_hash


def _row_by_row(stg: pd.DataFrame) -> pd.Series:
    cols = stg.reindex(columns=RECORD_CONTENT)
    text = {}
    for c in RECORD_CONTENT:
        v = cols[c]
        if c.endswith("_date"):
            v = pd.to_datetime(v).dt.strftime("%Y-%m-%d")
        elif c == "amount_yuan":
            v = (
                pd.to_numeric(v, errors="coerce")
                .round(2)
                .map(lambda x: "" if pd.isna(x) else f"{x:.2f}")
            )
        text[c] = v.astype("string").fillna("")
    joined = pd.DataFrame(text, index=stg.index).agg("\x1f".join, axis=1)
    return pd.util.hash_pandas_object(joined, index=False).astype("uint64")


texts = st.one_of(
    st.none(), st.text(alphabet=st.sampled_from(["a", "键", "\x1f", " ", "|", "0"]), max_size=4)
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            texts,
            texts,
            st.one_of(st.none(), st.floats(-1e6, 1e6)),
            st.one_of(st.none(), st.dates(dt.date(1990, 1, 1), dt.date(2100, 12, 31))),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_column_join_hashes_as_the_row_join(rows):
    stg = pd.DataFrame(
        {
            "item_code": pd.Series([r[0] for r in rows], dtype="string"),
            "subject_name": pd.Series([r[1] for r in rows], dtype="string"),
            "amount_yuan": [r[2] for r in rows],
            "decision_date": pd.to_datetime(
                pd.Series([r[3] for r in rows], dtype=object)
            ),  # typed, as staged
        },
        index=[7 * i for i in range(len(rows))],
    )
    got = record_content_hash(stg)
    pd.testing.assert_series_equal(got, _row_by_row(stg))
