"""A batch added chunk by chunk (BatchSpool) is the very file write_batch writes for all its rows
at once: the same bytes, so the same content hash and batch row, whatever the chunks."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring.history import batches, spool
from scoring.history.batches import write_batch
from scoring.history.spool import BatchSpool

KNOWN = dt.date(2026, 7, 1)
USCCS = ["91230100MA1BXXXX0Y", "91230100MA1BXXXX1Y", "92230100MA1BXXXX2Y", "", None]

row = st.tuples(
    st.sampled_from(["k1", "k2", "k10", "", None]),
    st.sampled_from(USCCS),
    st.sampled_from(["A01", "B02", "C03"]),
    st.one_of(st.none(), st.sampled_from(["x", "y"])),
    st.integers(0, 9),
)


def _frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "record_key": pd.Series([r[0] for r in rows], dtype="string"),
            "uscc": [r[1] for r in rows],  # object: missing values, typed by what it holds
            "item_code": pd.Series([r[2] for r in rows], dtype="category"),
            "note": [r[3] for r in rows],  # often wholly empty in a chunk (Arrow null)
            "decided": pd.Timestamp("2026-01-01") + pd.to_timedelta([r[4] for r in rows], unit="D"),
            "amount_yuan": [float(r[4]) for r in rows],
        }
    )


@pytest.fixture
def small_groups(monkeypatch):
    """Row groups of 5 rows, so a few dozen rows cross several groups and bucket ranges."""
    monkeypatch.setattr(batches, "ROW_GROUP_ROWS", 5)
    monkeypatch.setattr(spool, "ROW_GROUP_ROWS", 5)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(row, min_size=1, max_size=40),
    chunk=st.integers(1, 12),
    range_rows=st.integers(1, 12),
    table=st.sampled_from(["records", "entities", "changes", "exclusions"]),
)
def test_chunked_batch_is_byte_identical(
    tmp_path_factory, small_groups, rows, chunk, range_rows, table
):
    tmp = tmp_path_factory.mktemp("spool")
    frame = _frame(rows)
    whole = write_batch(tmp / "whole", "r1", table, frame, KNOWN)
    sp = BatchSpool(tmp / "parts", table, range_rows=range_rows)
    for start in range(0, len(frame), chunk):
        sp.add(frame.iloc[start : start + chunk])
    got = sp.write(tmp / "chunked", "r1", KNOWN)
    sp.close()
    assert got == whole
    assert (tmp / "chunked" / got["path"]).read_bytes() == (
        tmp / "whole" / whole["path"]
    ).read_bytes()
    assert not (tmp / "parts").exists()


def test_nothing_added_writes_nothing(tmp_path):
    sp = BatchSpool(tmp_path / "parts", "records")
    sp.add(_frame([("k1", None, "A01", None, 1)]).iloc[0:0])
    assert sp.write(tmp_path / "lake", "r1", KNOWN) is None
    assert len(sp) == 0
