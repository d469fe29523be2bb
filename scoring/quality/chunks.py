"""A staged table through its GX suite in bounded chunks, with the verdicts of one whole-table run.

Every expectation of the staging suites judges a row by its own values, except one: a row whose key
appeared earlier in the table is a duplicate (``ExpectRecordsToBeFirstOccurrence``). Chunk by
chunk, that one is fed a key index: the keys of the earlier chunks (the keys only, never the rows)
are marked as seen in the column the expectation already reads, so a repeat in a later chunk is the
same duplicate it would have been in one batch. GX's own memory (its COMPLETE result format lists
every unexpected value) then follows the chunk, not the night.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scoring.common.catalogue import Catalogue
from scoring.quality import validate as quality
from scoring.quality.keyindex import KeyIndex

# Rows per GX run: large enough that the per-run overhead (a checkpoint run costs ~0.2 s) stays
# small against the rows' own cost, small enough that GX's result lists stay a few hundred MB.
DEFAULT_CHUNK_ROWS = 250_000
FIRST_OCCURRENCE = "expect_records_to_be_first_occurrence"


def _first_occurrence(suite) -> tuple[str, str] | None:
    """(key column, seen-before column) of the suite's duplicate expectation, if it has one."""
    for e in suite.expectations:
        cfg = e.configuration
        if cfg.type == FIRST_OCCURRENCE:
            key, seen = cfg.kwargs["column_list"][:2]
            return key, seen
    return None


def validate_in_chunks(
    ctx,
    table: str,
    frame: pd.DataFrame,
    cat: Catalogue,
    as_of: str,
    run_name: str,
    with_docs: bool,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> quality.Verdicts:
    """``validate_table`` over chunks of at most ``chunk_rows`` rows, giving the same reasons per
    row; the summary adds up the chunks' unexpected counts per expectation. A table that fits in
    one chunk is validated as it always was."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
    if len(frame) <= chunk_rows:
        return quality.validate_table(ctx, table, frame, cat, as_of, run_name, with_docs)
    suite = ChunkedSuite(ctx, table, cat, as_of, run_name, with_docs, chunk_rows)
    codes = suite.validate(frame)
    v = suite.verdicts()
    v.reasons = pd.Series(codes, index=pd.RangeIndex(len(frame))).astype("string")
    return v


class ChunkedSuite:
    """One suite run over a table that arrives in pieces (``validate`` each in turn, in table
    order), each piece in GX runs of at most ``chunk_rows`` rows, with the verdicts of one run over
    the whole table: the duplicate expectation is fed the key index of the earlier pieces."""

    def __init__(self, ctx, table, cat, as_of, run_name, with_docs, chunk_rows=DEFAULT_CHUNK_ROWS):
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
        self.ctx, self.table, self.cat, self.as_of = ctx, table, cat, as_of
        self.run_name, self.with_docs, self.chunk_rows = run_name, with_docs, chunk_rows
        self.seen_keys = KeyIndex()
        self.parts: list[quality.Verdicts] = []
        self._suite = None  # built at the first chunk (building a suite costs ~0.1 s)
        self._dup: tuple[str, str] | None = None

    @property
    def ran(self) -> bool:
        return bool(self.parts)

    def validate(self, frame: pd.DataFrame) -> np.ndarray:
        """Reasons per row of ``frame`` ("" = accepted), in its row order."""
        codes = np.empty(len(frame), dtype=object)
        if self._suite is None:
            self._suite = quality.build_suite(self.table, self.cat, self.as_of)
            self._dup = _first_occurrence(self._suite)
        for start in range(0, len(frame), self.chunk_rows):
            chunk = self._with_key_index(frame.iloc[start : start + self.chunk_rows])
            v = quality.validate_table(
                self.ctx,
                self.table,
                chunk,
                self.cat,
                self.as_of,
                self.run_name,
                self.with_docs,
                docs_now=False,
                suite=self._suite,
            )
            codes[start : start + len(chunk)] = v.reasons.to_numpy(dtype=object)
            v.reasons = v.reasons.iloc[0:0]  # given back: the parts keep their summaries only
            self.parts.append(v)
        return codes

    def _with_key_index(self, chunk: pd.DataFrame) -> pd.DataFrame:
        """The chunk with the keys of earlier chunks marked seen; its keys then join the index."""
        if self._dup is None or self._dup[0] not in chunk:
            return chunk
        key, seen = self._dup
        keys = chunk[key]
        earlier = self.seen_keys.contains(keys) & keys.notna().to_numpy()
        if earlier.any():
            base = (
                chunk[seen].fillna(False).astype(bool).to_numpy()
                if seen in chunk
                else np.zeros(len(chunk), dtype=bool)
            )
            chunk = chunk.assign(**{seen: base | earlier})
        self.seen_keys.add(keys)
        return chunk

    def verdicts(self) -> quality.Verdicts:
        """The suite's result over every piece (reasons were given back piece by piece); its
        Data Docs pages rendered here, once for all its GX runs."""
        # Chunks share suite, run and batch, so GX stores them under one key: render it once.
        pending = list(dict.fromkeys(k for p in self.parts for k in p.docs_pending))
        return quality.Verdicts(
            reasons=pd.Series([], dtype="string"),
            summary=_add_up([p.summary for p in self.parts]),
            docs_index=quality.build_docs(self.ctx, pending) if self.with_docs else None,
            success=all(p.success for p in self.parts),
        )


def _add_up(summaries: list[list[dict]]) -> list[dict]:
    """One summary line per expectation, its unexpected counts summed over the chunks (the suite
    is the same for every chunk, so the lines are in the same order)."""
    if not summaries:
        return []
    out = [dict(s) for s in summaries[0]]
    for other in summaries[1:]:
        for line, s in zip(out, other, strict=True):
            line["success"] = bool(line["success"] and s["success"])
            if line["unexpected"] is None or s["unexpected"] is None:
                line["unexpected"] = None
            else:
                line["unexpected"] += s["unexpected"]
            line["error"] = line["error"] or s["error"]
    return out
