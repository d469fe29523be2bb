"""The bench's province is seeded a history batch at a time: the same records as the province made
whole, every record once, each batch stored sorted by entity bucket (what a partition's read needs)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from bench import night, province
from scoring.common.partitions import BUCKET_COLUMN
from scoring.history.store import Store


def test_record_chunks_are_the_province_cut_in_order_and_deterministic():
    ent, rec = province.synthetic_province(3_000, 30_000)
    for _ in range(2):  # twice: the seeded generator gives the same rows again
        ent_c, chunks = province.record_chunks(3_000, 30_000, 7)
        parts = list(chunks)
        pd.testing.assert_frame_equal(ent_c, ent)
        assert len(parts) == 7 and [lo for lo, _ in parts] == list(
            np.cumsum([0] + [len(f) for _, f in parts])[:-1]
        )
        pd.testing.assert_frame_equal(pd.concat([f for _, f in parts], ignore_index=True), rec)


def test_seeded_store_holds_every_record_once_in_bucket_sorted_batches(tmp_path: Path):
    store = Store.open(f"sqlite:///{tmp_path}/credit.db", tmp_path)
    # 4 history batches asked, but at most 6,000 rows a batch: 5 batches.
    uscc = province.seed_province_store(
        store, 2_000, 25_000, "2026-07-14", history_batches=4, batch_rows=6_000
    )
    assert len(uscc) == 2_000
    batches = pd.read_sql(
        "SELECT * FROM record_batches WHERE table_name = 'records' ORDER BY known_from",
        store.engine,
    )
    assert len(batches) == 5 and batches["rows"].sum() == 25_000 and batches["known_from"].is_unique
    docs = []
    for path in batches["path"]:
        t = pq.read_table(store.lake / path).to_pandas()
        assert t[BUCKET_COLUMN].is_monotonic_increasing
        assert (t["record_key"] == t["doc_number"] + "|" + t["uscc"]).all()
        docs.append(t["doc_number"].astype(int))
    assert sorted(pd.concat(docs)) == list(range(25_000))


def test_night_10m_cuts_pieces_of_at_most_1_6m_records():
    assert night.pieces_for(100_000_000) == 64
    assert night.pieces_for(30_000_000) == 32
    assert night.pieces_for(2_000_000) == 2
    assert night.pieces_for(1_000) == 1
