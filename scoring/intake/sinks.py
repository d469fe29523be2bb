"""Where a night's staged rows go as they are staged: one Parquet writer per staged table, a chunk
at a time, so the night holds counts and file rows, never the rows themselves.

Each table has one explicit Arrow schema (with the pandas metadata a whole-night frame of the
same dtypes would carry), so every chunk's row group has the same types whatever the chunk held
(an all-null column, no rows) and the file reads back with the dtypes the staged frames had.
A file that fails part-way is taken back out: the row groups written before it are kept, its own
are dropped (rare: the reader's verdicts come before any row is written).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from scoring.intake.staging import STG_ENTITY_COLUMNS, STG_RECORD_COLUMNS
from scoring.intake.staging_changes import STG_CHANGE_COLUMNS

UNPARSED_COLUMNS = ["line_no", "reason", "raw", "path", "provider"]
# kind of staged rows → the staged table's file name (scoring.history.folders.RunFolder)
TABLES = {
    "records": "stg_record",
    "entities": "stg_entity",
    "changes": "stg_change",
    "held": "unparsed",
}

_DATES = {
    "delivered_on",
    "decision_date",
    "publicity_end_date",
    "valid_to_date",
    "removal_date",
    "registered_date",
    "effective_date",
    "new_decision_date",
    "new_publicity_end_date",
    "new_removal_date",
    "assist_notified",
    "assist_replied",
}
# staging leaves these as Python strings in object columns; the others are pandas strings
_OBJECT_TEXT = {"penalty_category", "violation_type", "inspection_result"}


def _template(columns: list[str], special: dict) -> pd.DataFrame:
    """One row of each column's dtype, as staging makes it (a value, so Arrow infers the type)."""
    out = {}
    for c in columns:
        if c in special:
            out[c] = special[c]
        elif c in _DATES:
            out[c] = pd.Series([pd.Timestamp("2000-01-01")]).astype("datetime64[s]")
        elif c in _OBJECT_TEXT:
            out[c] = pd.Series(["x"], dtype=object)
        else:
            out[c] = pd.Series(["x"], dtype="string")
    return pd.DataFrame(out)


def _schema(frame: pd.DataFrame) -> pa.Schema:
    return pa.Schema.from_pandas(frame, preserve_index=False)


_LINE = pd.Series([1], dtype="int64")
SCHEMAS = {
    "records": _schema(
        _template(
            STG_RECORD_COLUMNS, {"line_no": _LINE, "amount_yuan": pd.Series([1.0], dtype="float64")}
        )
    ),
    "entities": _schema(_template(STG_ENTITY_COLUMNS, {"line_no": _LINE})),
    "changes": _schema(
        _template(
            STG_CHANGE_COLUMNS,
            {
                "line_no": _LINE,
                "new_amount_yuan": pd.Series([1.0], dtype="float64"),
                "assisted": pd.Series([True], dtype=bool),
                "excluded_days": pd.Series([1], dtype="Int64"),
            },
        )
    ),
    "held": _schema(
        pd.DataFrame(
            {"line_no": _LINE}
            | {
                c: pd.Series(["x"], dtype=pd.StringDtype(na_value=np.nan))
                for c in UNPARSED_COLUMNS[1:]
            }
        )
    ),
}


def as_table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """The frame's rows under the table's schema (column order, types), whatever its dtypes."""
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)


class TableSink:
    """One staged table's Parquet file, written a row group per chunk beside its final name and
    moved there when closed (a reader never sees half a file)."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.path, self.schema = path, schema
        self.tmp = path.with_suffix(".tmp")
        self.writer = pq.ParquetWriter(self.tmp, schema)
        self.groups = 0  # row groups written
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        if not len(frame):
            return
        self.writer.write_table(as_table(frame, self.schema), row_group_size=len(frame))
        self.groups += 1
        self.rows += len(frame)

    def mark(self) -> int:
        return self.groups

    def rollback(self, mark: int) -> None:
        """Drop the row groups written since `mark`: the file is rewritten from its first `mark`
        row groups, one at a time."""
        if mark == self.groups:
            return
        self.writer.close()
        old = self.tmp.with_suffix(".rollback")
        self.tmp.replace(old)
        self.writer = pq.ParquetWriter(self.tmp, self.schema)
        kept = pq.ParquetFile(old)
        self.rows = 0
        for i in range(mark):
            group = kept.read_row_group(i).cast(self.schema)  # (Parquet keeps seconds as ms)
            self.writer.write_table(group, row_group_size=max(group.num_rows, 1))
            self.rows += group.num_rows
        kept.close()
        old.unlink()
        self.groups = mark

    def close(self) -> None:
        self.writer.close()
        self.tmp.replace(self.path)

    def abandon(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
        self.tmp.unlink(missing_ok=True)


class RawSink:
    """One file's rows as the provider sent them (its own headers, every value a string, plus
    line_no), a row group per chunk: what a quarantined row is shown beside."""

    def __init__(self, path: Path):
        self.path = path
        self.writer: pq.ParquetWriter | None = None
        self.schema: pa.Schema | None = None

    def write(self, raw: pd.DataFrame) -> None:
        if self.writer is None:
            fields = [
                pa.field(c, pa.int64() if c == "line_no" else pa.large_string())
                for c in raw.columns
            ]
            self.schema = pa.schema(fields)
            self.writer = pq.ParquetWriter(self.path.with_suffix(".tmp"), self.schema)
        if len(raw):
            table = pa.Table.from_pandas(raw, schema=self.schema, preserve_index=False)
            self.writer.write_table(table, row_group_size=len(raw))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.path.with_suffix(".tmp").replace(self.path)

    def abandon(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
        self.path.with_suffix(".tmp").unlink(missing_ok=True)
        self.path.unlink(missing_ok=True)


class StagedSinks:
    """The night's staged tables in the folder `out` (``<kind table>.parquet``) and each file's raw
    values in ``out/raw``."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.raw_dir = self.out / "raw"
        self.raw_dir.mkdir(parents=True, exist_ok=True)
        self.tables = {kind: TableSink(self.path(kind), SCHEMAS[kind]) for kind in TABLES}

    def path(self, kind: str) -> Path:
        return self.out / f"{TABLES[kind]}.parquet"

    def write(self, kind: str, frame: pd.DataFrame) -> None:
        self.tables[kind].write(frame)

    def mark(self) -> dict[str, int]:
        return {k: t.mark() for k, t in self.tables.items()}

    def rollback(self, mark: dict[str, int]) -> None:
        for k, t in self.tables.items():
            t.rollback(mark[k])

    def close(self) -> None:
        for t in self.tables.values():
            t.close()

    def abandon(self) -> None:
        for t in self.tables.values():
            t.abandon()
