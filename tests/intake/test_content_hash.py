"""Content hashes join a row's fields column by column: the hashes are those of the row-by-row
joins the stored history and snapshot indexes were hashed with (a resend must still match what is
stored, an unchanged register row what its snapshot holds)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.intake.ingest import RECORD_CONTENT, record_content_hash
from scoring.intake.snapshots import ENTITY_CONTENT, content_hashes
from scoring.intake.staging import date_text


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


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.datetimes(dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31)))),
    st.sampled_from(["datetime64[s]", "datetime64[ms]", "datetime64[us]"]),
)
def test_date_text_is_strftime(moments, unit):
    """Dates of any year and time of day written as strftime writes them (numpy's way or not)."""
    v = pd.Series(
        pd.to_datetime(pd.Series(moments, dtype=object)).astype(unit), index=range(len(moments))
    )
    want = pd.to_datetime(v).dt.strftime("%Y-%m-%d").astype("string")
    pd.testing.assert_series_equal(date_text(v), want)


def _entity_row_join(frame: pd.DataFrame) -> np.ndarray:
    text = []
    for c in ENTITY_CONTENT:
        v = frame[c]
        if c.endswith("_date"):
            v = pd.to_datetime(v).dt.strftime("%Y-%m-%d")
        text.append(v.astype("string").fillna(""))
    joined = text[0].str.cat(text[1:], sep="\x1f").astype(object)
    return pd.util.hash_pandas_object(joined, index=False).to_numpy(dtype=np.uint64)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(texts, st.one_of(st.none(), st.dates(dt.date(1000, 1, 1), dt.date(2100, 1, 1)))),
        min_size=1,
        max_size=20,
    )
)
def test_register_rows_hash_as_the_snapshots_were_hashed(rows):
    """A register row's content hash is the one its stored snapshot index holds."""
    frame = pd.DataFrame(
        {
            c: (
                pd.to_datetime(pd.Series([r[1] for r in rows], dtype=object))
                if c.endswith("_date")
                else pd.Series([r[0] for r in rows], dtype="string")
            )
            for c in ENTITY_CONTENT
        },
        index=[3 * i for i in range(len(rows))],
    )
    assert (content_hashes("entities", frame) == _entity_row_join(frame)).all()
