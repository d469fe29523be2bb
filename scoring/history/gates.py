"""What the gate step records: quarantined rows, gate verdicts, the batches it appended."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from scoring.history.store import Store, gate_results, quarantine, record_batches


def record_gate(store: Store, conn, run_id: str, quarantined, verdicts: pd.DataFrame) -> None:
    """The run's quarantine and gate verdicts, replacing any earlier attempt's (and the batches
    that attempt appended: the gate appends them again only if every hard gate passes).
    ``quarantined``: a frame, or frames one after another (a night's, chunk by chunk)."""
    for table in (quarantine, gate_results, record_batches):
        conn.execute(sa.delete(table).where(table.c.run_id == run_id))
    for frame in [quarantined] if isinstance(quarantined, pd.DataFrame) else quarantined:
        if len(frame):
            store.insert_frame(conn, quarantine, frame)
    store.insert_frame(conn, gate_results, verdicts)


def record_appended_batches(store: Store, conn, batches: list[dict]) -> None:
    store.insert_frame(conn, record_batches, pd.DataFrame(batches))


def gate_verdicts(conn, run_id: str) -> pd.DataFrame:
    """(gate, passed, hard) of each gate the run was judged by."""
    g = gate_results.c
    return pd.read_sql(sa.select(g.gate, g.passed, g.hard).where(g.run_id == run_id), conn)
