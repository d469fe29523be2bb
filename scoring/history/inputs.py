"""Point-in-time inputs: the entities, records and changes known by a knowledge cutoff."""
from __future__ import annotations

import pandas as pd


def load_inputs(store, conn, knowledge_cutoff, batch_ids: list[str] | None = None
                ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[dict]]:
    """Entities and records as known at the cutoff (or exactly the listed batches)."""
    batches = store.visible_batches(conn, "entities", knowledge_cutoff) + \
        store.visible_batches(conn, "records", knowledge_cutoff) + \
        store.visible_batches(conn, "changes", knowledge_cutoff)
    if batch_ids is not None:
        batches = [b for b in batches if b["batch_id"] in set(batch_ids)]
    ent = store.read_batches([b for b in batches if b["table_name"] == "entities"])
    rec = store.read_batches([b for b in batches if b["table_name"] == "records"])
    chg = store.read_batches([b for b in batches if b["table_name"] == "changes"])
    if len(ent):
        ent = ent.drop_duplicates("uscc", keep="last").sort_values("uscc", ignore_index=True)
    if len(rec):
        rec = rec.drop_duplicates("record_key", keep="last").sort_values("record_key", ignore_index=True)
    return ent, rec, chg, batches
