"""The snapshot diff (scoring.intake.snapshots) is the same in chunks as in one pass: for the
register and a record feed of a demo province, against a previous snapshot with rows dropped,
changed and added, any chunk size gives the same staged rows, unchanged count, vanished keys and
next index as the whole file; the index looks keys up exactly; the guard's verdicts."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring.common.catalogue import Catalogue
from scoring.intake import snapshots as snap
from scoring.intake.ingest import file_chunks, read_file, stage_entities, stage_records

AS_OF = "2026-03-31"
DELIVERED = pd.Timestamp(AS_OF)
SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from scoring.world.province import write_deliveries

    root = tmp_path_factory.mktemp("snapshot_diff")
    write_deliveries(root, AS_OF, n_entities=150, seed=11, defect_rate=0.05)
    landing = root / "landing"
    cat = Catalogue.load()
    return {
        "entities": (
            read_file(landing / "samr" / "20260331_register.csv"),
            lambda r: stage_entities(r, DELIVERED),
        ),
        "records": (
            read_file(landing / "samr" / "20260331_penalty.csv"),
            lambda r: stage_records(r, cat, DELIVERED),
        ),
    }


def _sha(frame: pd.DataFrame) -> str:
    buf = io.BytesIO()
    frame.reset_index(drop=True).to_parquet(buf, index=False)
    return hashlib.sha256(buf.getvalue()).hexdigest()


def _previous(kind: str, whole: pd.DataFrame, seed: int) -> snap.SnapshotIndex:
    """A previous snapshot of the same file: some rows absent (new tonight), some saying other
    things (changed tonight), some keys only it had (vanished tonight)."""
    rng = np.random.default_rng(seed)
    keys = snap.row_keys(kind, whole)
    content = snap.content_hashes(kind, whole).copy()
    keep = rng.random(len(whole)) > 0.2
    content[rng.random(len(whole)) < 0.2] ^= np.uint64(1)
    extra = pd.Series([f"gone-{seed}-{i}" for i in range(int(rng.integers(0, 8)))], dtype="string")
    k = pd.concat([keys[keep & keys.notna().to_numpy()], extra], ignore_index=True)
    c = np.concatenate(
        [content[keep & keys.notna().to_numpy()], np.arange(len(extra), dtype=np.uint64)]
    )
    return snap.SnapshotIndex.build(
        pa.array(k.to_numpy(dtype=object, na_value=None), type=pa.large_string()), c
    )


def _diff(raw, stage, kind: str, index: snap.SnapshotIndex, chunk_rows: int):
    d = snap.FileDiff(kind, index)
    # as the night passes a file's staged chunks, one after the other (scoring.intake.deliveries)
    frame = pd.concat([d.chunk(stage(c)) for c in file_chunks(raw, chunk_rows)])
    return _sha(frame), len(frame), d.unchanged, d.vanished().to_pylist(), d.next_index().table


@SETTINGS
@given(
    kind=st.sampled_from(["entities", "records"]), chunk=st.integers(1, 40), seed=st.integers(0, 99)
)
def test_a_snapshot_diffed_in_chunks_is_diffed_as_whole(files, kind, chunk, seed):
    raw, stage = files[kind]
    index = _previous(kind, stage(raw), seed)
    whole = _diff(raw, stage, kind, index, 10**9)
    parts = _diff(raw, stage, kind, index, chunk)
    assert parts[:4] == whole[:4]
    assert parts[4].equals(whole[4])
    sha, staged, unchanged, vanished, nxt = whole
    assert staged + unchanged == len(raw.rows)
    assert all(k.startswith("gone-") for k in vanished)


def test_an_unchanged_snapshot_stages_nothing_and_a_first_one_everything(files):
    raw, stage = files["entities"]
    first = _diff(raw, stage, "entities", snap.SnapshotIndex.empty(), 7)
    assert (first[1], first[2], first[3]) == (len(raw.rows), 0, [])
    again = _diff(raw, stage, "entities", snap.SnapshotIndex(first[4]), 7)
    assert (again[1], again[2], again[3]) == (0, len(raw.rows), [])
    assert again[4].equals(first[4])


def test_the_index_finds_keys_exactly_even_when_their_hashes_collide():
    idx = snap.SnapshotIndex.build(
        pa.array(["a", "b", "c", "a"], type=pa.large_string()), np.array([1, 2, 3, 4], np.uint64)
    )
    assert idx.n == 3  # a key given twice keeps its last content
    pos = idx.lookup(pa.array(["a", "zz", None, "c"], type=pa.large_string()))
    assert pos[1] == pos[2] == -1
    assert idx.contents(pos[[0, 3]]).tolist() == [4, 3]
    # two keys forced onto one hash: each still found as itself
    table = idx.table
    clash = pa.table(
        [table["key"], pa.array([7, 7, 7], pa.uint64()), table["content"]],
        schema=snap.INDEX_SCHEMA,
    )
    forced = snap.SnapshotIndex(clash)
    original = snap.key_hashes
    try:
        snap.key_hashes = lambda keys: np.full(len(keys), 7, dtype=np.uint64)
        got = forced.lookup(pa.array(["c", "b", "a", "x"], type=pa.large_string()))
    finally:
        snap.key_hashes = original
    assert forced.keys_at(got[:3]).to_pylist() == ["c", "b", "a"] and got[3] == -1


def test_the_guard():
    assert snap.guard(0, 0, 0, False, 0.05) is None  # a first snapshot withdraws nothing
    assert "empty" in snap.guard(100, 0, 100, False, 0.05)
    assert "truncated" in snap.guard(100, 99, 1, True, 0.05)
    assert "drops 6 of the previous snapshot's 100 rows" in snap.guard(100, 94, 6, False, 0.05)
    assert snap.guard(100, 95, 5, False, 0.05) is None


def test_withdrawals_are_rows_of_their_own_never_deletes():
    stored = pd.DataFrame(
        {
            "uscc": ["B", "A", "C"],
            "provider": ["samr", "samr", "other"],
            "entity_status": ["存续", "注销", "存续"],
            "subject_name": ["b", "a", "c"],
            "registered_date": pd.to_datetime(["2020-01-01"] * 3),
            "delivered_on": pd.to_datetime(["2026-01-01"] * 3),
        }
    )
    rows = snap.withdrawal_rows("entities", stored, "samr/x.csv", "samr", DELIVERED)
    assert rows["uscc"].tolist() == ["A", "B"]  # key order; another provider's row untouched
    assert (rows["entity_status"] == snap.WITHDRAWN_STATUS).all()
    assert rows["line_no"].tolist() == [-1, -2]
    assert (rows["delivered_on"] == DELIVERED).all() and stored["entity_status"].iloc[0] == "存续"
    rec = pd.DataFrame(
        {
            "record_key": ["k1", "k2"],
            "provider": ["court", "court"],
            "decision_date": pd.to_datetime(["2025-01-01", "2025-01-01"]),
            "removal_date": pd.to_datetime([None, "2026-01-05"]),
            "removal_reason": [None, "履行完毕"],
        }
    )
    out = snap.withdrawal_rows("records", rec, "court/x.csv", "court", DELIVERED)
    # k2 was removed before: nothing to withdraw; k1 counted until the snapshot's date
    assert out["removal_date"].tolist() == [DELIVERED]
    assert out["removal_reason"].tolist() == [snap.WITHDRAWN_REASON]
