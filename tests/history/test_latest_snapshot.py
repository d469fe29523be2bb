"""A partition's compacted snapshot is a cache: nights read through it exactly what they would read
without it, whatever the nights, reruns of older cuts, partition counts or damage to the file."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring.common.partitions import bucket_range
from scoring.history import latest
from scoring.history.store import Store

USCCS = [
    "91230100MA1BXXXX0Y",
    "91230100MA1BXXXX1Y",
    "92230100MA1BXXXX2Y",
    "93230100MA1BXXXX3Y",
    "",
    None,
]


def _batch(rows: list[tuple], extra: bool, coded: bool) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "record_key": pd.Series([r[0] for r in rows], dtype="string"),
            "uscc": pd.Series([r[1] for r in rows], dtype="string"),
            # Some code paths store a text column as a dictionary (pandas category), others as text.
            "item_code": pd.Series([r[2] for r in rows], dtype="category" if coded else "string"),
            "amount_yuan": [float(r[3]) for r in rows],
        }
    )
    # A later catalogue version's column: batches before it lack it.
    return (
        frame.assign(grade=pd.Series([f"g{r[3]}" for r in rows], dtype="string"))
        if extra
        else frame
    )


rows = st.tuples(
    st.sampled_from(["k1", "k2", "k10", "k2|x", "键", "", None]),
    st.sampled_from(USCCS),
    st.sampled_from(["A01", "B02", "C03"]),
    st.integers(0, 9),
)
nights = st.lists(st.lists(rows, min_size=0, max_size=8), min_size=1, max_size=7)


def _write(
    store: Store, nights_rows: list[list[tuple]], coded: tuple[bool, ...] = ()
) -> list[dict]:
    return [
        store.write_batch(
            f"run{i}",
            "records",
            _batch(b, extra=i >= 3, coded=i < len(coded) and coded[i]),
            dt.date(2026, 7, 1) + dt.timedelta(days=i),
        )
        for i, b in enumerate(nights_rows)
        if b
    ]


@pytest.fixture
def small_limits(monkeypatch):
    """Snapshots rewritten often and newer versions spliced, both sorted: every path exercised."""
    monkeypatch.setattr(latest, "REWRITE_BATCHES", 3)
    monkeypatch.setattr(latest, "SPLICE_LIMIT", 4)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    nights,
    st.sampled_from([1, 2, 4]),
    st.sampled_from([1, 2, 4]),
    st.lists(st.booleans(), max_size=7),
)
def test_nights_read_through_snapshots_what_the_batches_hold(
    tmp_path_factory, small_limits, nights_rows, k1, k2, coded
):
    tmp = tmp_path_factory.mktemp("snap")
    store = Store.open(f"sqlite:///{tmp}/s.db", tmp / "home")
    written = _write(store, nights_rows, tuple(coded))
    # Night after night in k1 partitions, then the partition count changes to k2, then an audit
    # rerun of an older cut: every read equals the full read of the same batches.
    plan = [(n, k1) for n in range(1, len(written) + 1)] + [
        (len(written), k2),
        (max(1, len(written) // 2), k2),
        (len(written), k2),
    ]
    for upto, k in plan:
        for p in range(k):
            buckets = bucket_range(p, k)
            want = store.read_latest(written[:upto], "record_key", buckets)
            got = store.read_latest(written[:upto], "record_key", buckets, snapshot=True)
            pd.testing.assert_frame_equal(got, want)


def test_a_snapshot_that_does_not_match_its_hash_is_not_used(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path}/s.db", tmp_path / "home")
    written = _write(
        store,
        [[("k1", USCCS[0], "A01", 1), ("k2", USCCS[1], "B02", 2)], [("k1", USCCS[0], "A01", 3)]],
    )
    buckets = bucket_range(0, 1)
    first = store.read_latest(written[:1], "record_key", buckets, snapshot=True)
    files = list(store.snapshot_folder().glob("*.parquet"))
    assert len(files) == 1 and first["amount_yuan"].tolist() == [1.0, 2.0]
    # Someone edits the cached versions: the night reads the batches again, and is right.
    damaged = first.assign(amount_yuan=[9.0, 9.0])
    damaged.to_parquet(files[0], index=False)
    got = store.read_latest(written, "record_key", buckets, snapshot=True)
    assert got["amount_yuan"].tolist() == [3.0, 2.0]
    pd.testing.assert_frame_equal(got, store.read_latest(written, "record_key", buckets))


def test_an_older_cut_does_not_put_back_an_older_snapshot(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path}/s.db", tmp_path / "home")
    written = _write(store, [[("k1", USCCS[0], "A01", 1)], [("k2", USCCS[0], "A01", 2)]])
    buckets = bucket_range(0, 1)
    store.read_latest(written, "record_key", buckets, snapshot=True)
    meta = next(store.snapshot_folder().glob("*.json"))
    held = meta.read_text()
    older = store.read_latest(written[:1], "record_key", buckets, snapshot=True)
    assert older["record_key"].tolist() == ["k1"] and meta.read_text() == held


def test_another_partition_count_replaces_the_overlapping_snapshots(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path}/s.db", tmp_path / "home")
    written = _write(store, [[(f"k{i}", USCCS[i % 4], "A01", i) for i in range(8)]])
    for k in (4, 2):
        for p in range(k):
            store.read_latest(written, "record_key", bucket_range(p, k), snapshot=True)
    assert len(list(store.snapshot_folder().glob("*.json"))) == 2
    assert len(list(store.snapshot_folder().glob("*.parquet"))) == 2


def test_batches_of_dictionary_columns_are_snapshotted_too(tmp_path):
    # A store whose batches all code item_code as a dictionary (the bench's province) once took
    # the full path every night without a word: the snapshot must hold it, as plain text.
    store = Store.open(f"sqlite:///{tmp_path}/s.db", tmp_path / "home")
    written = _write(
        store,
        [[(f"k{i}", USCCS[i % 4], "A01", i) for i in range(8)], [("k3", USCCS[0], "B02", 9)]],
        coded=(True, True),
    )
    buckets = bucket_range(0, 1)
    store.read_latest(written[:1], "record_key", buckets, snapshot=True)
    assert len(list(store.snapshot_folder().glob("*.parquet"))) == 1
    got = store.read_latest(written, "record_key", buckets, snapshot=True)
    assert got["item_code"].tolist() == ["A01"] * 3 + ["B02"] + ["A01"] * 4
    pd.testing.assert_frame_equal(got, store.read_latest(written, "record_key", buckets))
