"""A night's gate over its staged tables in bounded chunks, with the verdicts of
``gates.validate_staged`` over the whole tables: the same reasons per row, quarantine rows, counts
per file and accepted rows (in the same order, so the same batches).

The staged tables are read ``chunk_rows`` rows at a time, the register first, then the records,
then the changes, as ``validate_staged`` orders them. What a row's verdict needs from rows outside
its chunk is kept as keys, never rows:

- the duplicate expectation's key index, per suite (``chunks.ChunkedSuite``);
- resends: the first file each (record_key, content_sha) came in (``ResendIndex``);
- registration dates of the register rows accepted tonight (a record is checked against its
  entity's date, a register row accepted in any chunk counting as in one pass);
- for the changes: the reference columns of the accepted records the night's changes name (their
  keys are read first, so only those records are held), and the night's objection filings.

Stored rows are looked up per chunk, by the chunk's keys. Accepted rows go to ``sinks`` chunk by
chunk (``history.spool.BatchSpool`` writes them as the batch ``write_batch`` would), quarantine
rows likewise; what the whole night decides on (reconciliation, quarantine share, row count) is
decided from the counts per file added up here.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from scoring.common.catalogue import Catalogue
from scoring.common.frames import concat_frames
from scoring.common.law import SIMPLIFIED, SIMPLIFIED_REASON
from scoring.intake.ingest import record_key
from scoring.quality import gates as qg
from scoring.quality.changes import annotate_changes
from scoring.quality.chunks import DEFAULT_CHUNK_ROWS, ChunkedSuite
from scoring.quality.keyindex import KeyIndex
from scoring.quality.quarantine import staged_quarantine, unparsed_quarantine
from scoring.quality.resends import RESEND_REASON, split_earlier_resends

REF_COLUMNS = ["record_key", "item_code", "decision_date", "grade", "provider", "penalty_category"]
OPENING_OPS = ["objection_filed", "objection"]
# Where excluded rows go, in the order validate_staged concatenates them.
EXCLUSION_SINKS = ("exclusions.simplified", "exclusions.resent", "exclusions.earlier")


def read_chunks(path: Path, chunk_rows: int, columns=None) -> Iterator[pd.DataFrame]:
    """A staged table (Parquet) ``chunk_rows`` rows at a time, each chunk as ``pd.read_parquet``
    converts it, its index the rows' positions in the table. A missing file has no rows."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
    if not Path(path).exists():
        return
    start = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows, columns=columns):
        frame = pa.Table.from_batches([batch]).to_pandas()
        frame.index = pd.RangeIndex(start, start + len(frame))
        start += len(frame)
        if len(frame):
            yield frame


def staged_rows(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows if Path(path).exists() else 0


class ResendIndex:
    """(record_key, content_sha) → the file it first came in, over the chunks so far (held as
    128-bit digests, ``keyindex.KeyIndex``): what ``resends.split_resends`` decides over a whole
    table, decided chunk by chunk."""

    def __init__(self):
        self.first = KeyIndex()
        self.files: dict[str, int] = {}

    def split(self, rec: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(rows kept, repeats of an earlier file excluded with their reason), as split_resends."""
        pair = rec["record_key"].astype("string") + "\x1f" + rec["content_sha"].astype("string")
        has_key = rec["record_key"].notna().to_numpy()
        src = rec["source_file"].astype("string").fillna("\x00")
        codes = np.array([self.files.setdefault(s, len(self.files)) for s in src], dtype=np.int64)
        earlier = self.first.values(pair)
        within = pair.duplicated(keep="first").to_numpy()
        first_code = pd.Series(codes, index=rec.index).groupby(pair.to_numpy(), sort=False)
        origin_within = first_code.transform("first").to_numpy()
        seen = earlier >= 0
        origin = np.where(seen, earlier, origin_within)
        resend = (seen | within) & has_key & (origin != codes)
        fresh = has_key & ~seen & ~within
        self.first.add(pair[fresh], codes[fresh])
        work = [c for c in ("record_key", "content_sha", "seen_before") if c in rec]
        gone = rec[resend].drop(columns=work).assign(reason=RESEND_REASON)
        return rec[~resend].reset_index(drop=True), gone.reset_index(drop=True)


@dataclass
class Sources:
    """What the gate reads besides the staged tables. ``stored(rec_keys, usccs)``: the stored
    (entities, records, changes) for those keys; ``earlier(stored_records, usccs)``: a backfill's
    earlier files' keys (None on a night); ``raw_values(rows)``: the provider's own values."""

    staged: dict[str, Path]
    stored: Callable
    raw_values: Callable[[pd.DataFrame], pd.Series]
    corrections: frozenset = frozenset()
    earlier: Callable | None = None


@dataclass
class Outcome:
    """Per file: rows accepted, quarantined, simplified (Art. 18) and resent; per table its
    suite's verdicts (reasons left empty: they went to the quarantine)."""

    accepted: Counter = field(default_factory=Counter)
    quarantined: Counter = field(default_factory=Counter)
    simplified: Counter = field(default_factory=Counter)
    resent: Counter = field(default_factory=Counter)
    validations: dict = field(default_factory=dict)


@dataclass
class _Night:
    src: Sources
    sinks: dict  # table (or EXCLUSION_SINKS) -> .add(frame); "quarantine" -> callable
    suites: dict
    cat: Catalogue
    run_id: str
    out: Outcome = field(default_factory=Outcome)
    resends: ResendIndex = field(default_factory=ResendIndex)
    register: pd.DataFrame | None = None
    register_dates: pd.Series | None = None
    named: pd.Index = field(default_factory=lambda: pd.Index([], dtype=object))
    known: list = field(default_factory=list)
    opens: pd.DataFrame | None = None


def gate_staged(
    gx_ctx,
    src: Sources,
    sinks: dict,
    cat: Catalogue,
    as_of: str,
    run_id: str,
    say: Callable[[str], None] = lambda _m: None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    with_docs: bool = True,
) -> Outcome:
    """The night's staged tables through their suites chunk by chunk; accepted rows, exclusions
    and quarantine rows handed to ``sinks`` as they are judged; the counts and suite results."""
    suites = {
        t: ChunkedSuite(gx_ctx, suite, cat, as_of, run_id, with_docs, chunk_rows)
        for t, suite in qg_suites()
    }
    n = _Night(src, sinks, suites, cat, run_id)
    # What exists before the first chunk (modules, GX's context) is set aside from the
    # collections after each chunk: collecting walks only what the chunks made.
    gc.collect()
    gc.freeze()
    try:
        _judge_tables(n, say, chunk_rows)
    finally:
        gc.unfreeze()
    n.out.validations = {t: s.verdicts() for t, s in suites.items() if s.ran}
    return n.out


def _judge_tables(n: _Night, say: Callable[[str], None], chunk_rows: int) -> None:
    src = n.src
    _read_change_keys(n, chunk_rows)
    for what, table, judge in (
        ("register", "stg_entity", _entities),
        ("record", "stg_record", _records),
        ("change", "stg_change", _changes),
    ):
        total = staged_rows(src.staged[table])
        if total:
            say(f"gate: validating {total:,} staged {what} rows in chunks of {chunk_rows:,}")
        for chunk in read_chunks(src.staged[table], chunk_rows):
            judge(n, chunk)
            del chunk
            # A chunk's frames sit in reference cycles (pandas, GX) that the collector's own
            # schedule frees late: collected now, the next chunk reuses their memory instead of
            # the process growing chunk by chunk.
            gc.collect()
        if table == "stg_entity":
            n.register_dates, n.register = qg.register_lookup(n.register), None
        if table == "stg_record":
            n.known = [concat_frames(n.known, columns=REF_COLUMNS)]
    for chunk in read_chunks(src.staged["unparsed"], chunk_rows):
        _quarantine(n, unparsed_quarantine(chunk))


def _read_change_keys(n: _Night, chunk_rows: int) -> None:
    """The record keys the night's changes name, and its objection filings: keys and dates only."""
    opens, named = [], []
    path = n.src.staged["stg_change"]
    if not staged_rows(path) or "record_key" not in pq.read_schema(path).names:
        return
    for chunk in read_chunks(path, chunk_rows, columns=["record_key", "op", "effective_date"]):
        named.append(np.asarray(chunk["record_key"].dropna().unique(), dtype=object))
        opens.append(chunk[chunk["op"].isin(OPENING_OPS).fillna(False).to_numpy(dtype=bool)])
    n.opens = pd.concat(opens, ignore_index=True)
    # An Index keeps its hash table: every record chunk asks it, none rebuilds it.
    n.named = pd.Index(pd.unique(np.concatenate(named)), dtype=object) if named else n.named


def _entities(n: _Night, ent: pd.DataFrame) -> None:
    if n.src.earlier is not None:
        usccs = sorted(set(ent["uscc"].dropna())) if "uscc" in ent else []
        ent["seen_before"] = ent["uscc"].isin(n.src.earlier(pd.DataFrame(), usccs)["entities"])
    else:
        ent["seen_before"] = False
    reasons = n.suites["entities"].validate(ent)
    accepted = ent[reasons == ""]
    if len(accepted):
        _accept(n, "entities", accepted, accepted.drop(columns=["seen_before", "bad_values"]))
        part = qg.register_frame(accepted)
        if part is not None:
            n.register = part if n.register is None else pd.concat([n.register, part])
            n.register = n.register.drop_duplicates("uscc", keep="last")
    _quarantine_rows(n, ent, reasons)


def _records(n: _Night, rec: pd.DataFrame) -> None:
    simple = (
        (rec["grade"] == SIMPLIFIED).fillna(False).to_numpy(dtype=bool)
        if "grade" in rec
        else np.zeros(len(rec), dtype=bool)
    )
    if simple.any():
        ex = rec[simple].assign(reason=SIMPLIFIED_REASON).reset_index(drop=True)
        n.out.simplified.update(ex["source_file"].tolist())
        _exclude(n, "exclusions.simplified", ex)
    rec = rec[~simple].reset_index(drop=True)
    if not len(rec):
        return
    usccs = sorted(set(rec["uscc"].dropna())) if "uscc" in rec else []
    stored_ent, stored_rec, _ = n.src.stored(sorted(set(record_key(rec).dropna())), usccs)
    latest = (
        stored_rec.drop_duplicates("record_key", keep="last") if len(stored_rec) else stored_rec
    )
    rec = qg.mark_seen_before(rec, latest, n.src.corrections)
    rec, resent = n.resends.split(rec)
    _exclude(n, "exclusions.resent", resent)
    if n.src.earlier is not None:
        earlier = n.src.earlier(stored_rec, [])
        rec, again = split_earlier_resends(rec, earlier["records"])
        _exclude(n, "exclusions.earlier", again)
    rec["registered_date"] = qg.registered_dates(rec["uscc"], [stored_ent], n.register_dates)
    reasons = n.suites["records"].validate(rec)
    accepted = rec[reasons == ""]
    if len(accepted):
        _accept(
            n,
            "records",
            accepted,
            accepted.drop(columns=["seen_before", "registered_date", "bad_values"]),
        )
        named = n.named.get_indexer(accepted["record_key"].to_numpy()) >= 0
        if named.any():
            n.known.append(accepted.reindex(columns=REF_COLUMNS)[named])
    _quarantine_rows(n, rec, reasons)


def _changes(n: _Night, chg: pd.DataFrame) -> None:
    keys = sorted(set(chg["record_key"].dropna())) if "record_key" in chg else []
    _, stored_rec, stored_chg = n.src.stored(keys, [])
    latest = (
        stored_rec.drop_duplicates("record_key", keep="last") if len(stored_rec) else stored_rec
    )
    known = concat_frames(
        [latest.reindex(columns=REF_COLUMNS), *n.known], columns=REF_COLUMNS
    ).drop_duplicates("record_key", keep="last")
    chg = annotate_changes(chg, known, n.cat, stored_chg, opens=n.opens)
    chg["seen_before"] = chg["seen_before"] & ~chg["source_file"].isin(n.src.corrections)
    reasons = n.suites["changes"].validate(chg)
    accepted = chg[reasons == ""]
    if len(accepted):
        _accept(n, "changes", accepted, accepted[qg.CHANGE_COLUMNS])
    _quarantine_rows(n, chg, reasons)


def _accept(n: _Night, table: str, accepted: pd.DataFrame, rows: pd.DataFrame) -> None:
    n.out.accepted.update(accepted["source_file"].tolist())
    n.sinks[table].add(rows.rename(columns={"delivered_on": "known_from"}))


def _exclude(n: _Night, sink: str, rows: pd.DataFrame) -> None:
    if not len(rows):
        return
    if sink != "exclusions.simplified":
        n.out.resent.update(rows["source_file"].tolist())
    rows = rows.drop(columns=[c for c in ("bad_values",) if c in rows])
    n.sinks[sink].add(rows.rename(columns={"delivered_on": "known_from"}))


def _quarantine_rows(n: _Night, stg: pd.DataFrame, reasons: np.ndarray) -> None:
    bad = reasons != ""
    if bad.any():
        rows = stg[bad]
        _quarantine(n, staged_quarantine(rows, reasons[bad], n.src.raw_values))


def _quarantine(n: _Night, quar: pd.DataFrame) -> None:
    if len(quar):
        n.out.quarantined.update(quar["path"].tolist())
        n.sinks["quarantine"](quar.assign(run_id=n.run_id))


def qg_suites() -> tuple[tuple[str, str], ...]:
    return (("entities", "stg_entity"), ("records", "stg_record"), ("changes", "stg_change"))


def reconcile(files: pd.DataFrame, out: Outcome) -> pd.DataFrame:
    """The night's files with their counts, as ``gates.reconcile_files`` gives them: simplified
    (Art. 18), resends added to ``excluded``, accepted and quarantined."""
    files = files.copy()

    def per_file(counts: Counter) -> pd.Series:
        return files["path"].map(counts).fillna(0).astype(int)

    files["simplified"] = per_file(out.simplified)
    base = files["excluded"] if "excluded" in files else 0
    files["excluded"] = (
        pd.Series(base, index=files.index).fillna(0) + per_file(out.resent)
    ).astype(int)
    files["accepted"] = per_file(out.accepted)
    files["quarantined"] = per_file(out.quarantined)
    return files
