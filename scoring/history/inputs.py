"""Point-in-time inputs: the entities, records and changes known by a knowledge cutoff."""

from __future__ import annotations

import pandas as pd

# What a record carries that no evaluation reads (provenance and free text): left on disk.
UNUSED_RECORD_COLUMNS = (
    "doc_number",
    "layout",
    "legal_rep_name",
    "legal_rep_id_number",
    "authority_name",
    "inspection_result",
    "removal_reason",
    "content_sha",
    "source_file",
    "line_no",
)


def visible_inputs(store, conn, knowledge_cutoff, batch_ids: list[str] | None = None) -> list[dict]:
    """The batches a night reads: everything known by the cutoff (or exactly the listed batches)."""
    batches = (
        store.visible_batches(conn, "entities", knowledge_cutoff)
        + store.visible_batches(conn, "records", knowledge_cutoff)
        + store.visible_batches(conn, "changes", knowledge_cutoff)
    )
    if batch_ids is not None:
        batches = [b for b in batches if b["batch_id"] in set(batch_ids)]
    return batches


def read_inputs(
    store,
    batches: list[dict],
    buckets: tuple[int, int] | None = None,
    verified: bool = False,
    lean: bool = False,
    snapshot: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Entities and records of the batches (of entity-hash buckets [lo, hi) only, if given): the
    latest version of each, in key order. Changes are few and name records by key: all of them.
    ``lean``: records without the columns no evaluation reads (the night's partitions);
    ``snapshot``: entities and records read through the partition's compacted snapshot (``latest``)."""
    ent = store.read_latest(
        [b for b in batches if b["table_name"] == "entities"],
        "uscc",
        buckets,
        verified,
        snapshot=snapshot,
    )
    rec = store.read_latest(
        [b for b in batches if b["table_name"] == "records"],
        "record_key",
        buckets,
        verified,
        skip=UNUSED_RECORD_COLUMNS if lean else (),
        snapshot=snapshot,
    )
    chg = store.read_batches(
        [b for b in batches if b["table_name"] == "changes"], verified=verified
    )
    return ent, rec, chg


def load_inputs(
    store, conn, knowledge_cutoff, batch_ids: list[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[dict]]:
    """Entities and records as known at the cutoff (or exactly the listed batches)."""
    batches = visible_inputs(store, conn, knowledge_cutoff, batch_ids)
    return (*read_inputs(store, batches), batches)
