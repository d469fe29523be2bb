"""What an agency's delivery holds, written chunk by chunk: its scope's rows (full) or what changed
since the base publication (delta), as CSV (formula-safe text, one-decimal floats, the agency's
encoding) and Parquet, with the manifest that lists them. Agencies with the same scope get the
same bytes."""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from scoring.evaluation.evaluate import positions
from scoring.history.store import sha256_file
from scoring.publication.labels import DICTIONARY_FILE, dictionary_table, labelled, variant
from scoring.publication.sheet import XlsxFile

# Published rows in memory at once (publication of a 300k first night: 0.82 GB at 250,000, 0.44 GB
# at 50,000).
CHUNK_ROWS = int(os.environ.get("CREDIT_CHUNK_ROWS") or 50_000)
SCHEMA_VERSION = "agency_results/1"
FORMULA_LEAD = ("=", "+", "-", "@", "\t", "\r")


def in_scope(results: pa.Table | pd.DataFrame, agency: dict):
    """Which rows of the results an agency may receive: division prefixes, then industries.
    An Arrow mask for a table; a boolean Series (same index) for a frame."""
    if isinstance(results, pd.DataFrame):
        cols = {
            c: pa.array(results[c].astype("string").array, type=pa.string())
            for c in ("division_code", "industry")
        }
        mask = in_scope(pa.table(cols), agency)
        return pd.Series(mask.to_numpy(zero_copy_only=False), index=results.index, dtype=bool)
    div = pc.fill_null(results["division_code"].cast(pa.string()), "")
    ok = None
    for prefix in agency.get("divisions") or [""]:
        hit = pc.starts_with(div, str(prefix))
        ok = hit if ok is None else pc.or_(ok, hit)
    inds = agency.get("industries") or []
    if inds:
        ok = pc.and_(
            ok,
            pc.fill_null(
                pc.is_in(results["industry"].cast(pa.string()), pa.array(inds, pa.string())), False
            ),
        )
    return ok


_FORMULA_PATTERN = "^[" + "".join("\\" + c if c in "-^]\\" else c for c in FORMULA_LEAD) + "]"


def _neutralised(col) -> pa.Array:
    """Text cells that a spreadsheet would run as a formula, prefixed with an apostrophe."""
    risky = pc.fill_null(pc.match_substring_regex(col, _FORMULA_PATTERN), False)
    if not pc.any(risky).as_py():
        return col
    col = col.cast(pa.large_string())
    quoted = pc.binary_join_element_wise(
        pa.scalar("'", pa.large_string()), col, pa.scalar("", pa.large_string())
    )
    return pc.if_else(risky, quoted, col)


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells that a spreadsheet would run as a formula with an apostrophe. Numeric
    columns are left alone: a plain negative number is a number to Excel/WPS, not a formula."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = pd.Series(
                pd.arrays.ArrowStringArray(_neutralised(pa.array(out[col].astype("string").array))),
                index=out.index,
            )
    return out


def _one_decimal(col) -> pa.Array:
    """Floats as text with exactly one decimal (-70.0, 12.5), like %.1f, computed in Arrow."""
    tenths = pc.cast(pc.round(pc.multiply(col, 10.0)), pa.int64())
    whole = pc.cast(pc.divide(pc.abs(tenths), 10), pa.string())
    frac = pc.cast(
        pc.subtract(pc.abs(tenths), pc.multiply(pc.divide(pc.abs(tenths), 10), 10)), pa.string()
    )
    sign = pc.if_else(pc.less(tenths, 0), "-", "")
    return pc.binary_join_element_wise(sign, whole, ".", frac, "")


def csv_table(published: pa.Table) -> pa.Table:
    """What goes into the CSV files: text neutralised against formulas, floats with one decimal."""
    cols = []
    for name in published.column_names:
        col = published[name]
        if pa.types.is_floating(col.type):
            col = _one_decimal(col)
        elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            col = _neutralised(col)
        cols.append(col)
    return pa.table(cols, names=published.column_names)


def scope_key(agency: dict) -> tuple:
    return (
        tuple(agency.get("divisions") or [""]),
        tuple(agency.get("industries") or []),
        agency.get("encoding", "utf-8-sig"),
        variant(agency),
        bool(agency.get("xlsx")),
    )


def _encode_csv(table: pa.Table, enc: str, header: bool) -> bytes:
    """CSV bytes of rows as agencies get them (CRLF, UTF-8 or the agency's encoding); the BOM and
    header only on the first chunk, so chunks put one after another are the whole file."""
    buf = io.BytesIO()
    if header and enc == "utf-8-sig":
        buf.write(b"\xef\xbb\xbf")  # the BOM by which Excel/WPS recognise UTF-8
    pacsv.write_csv(table, buf, pacsv.WriteOptions(eol="\r\n", include_header=header))
    data = buf.getvalue()
    if enc.replace("-", "").replace("_", "").lower() not in ("utf8sig", "utf8"):
        data = data.decode("utf-8").encode(enc, errors="strict")
    return data


class _CsvFile:
    def __init__(self, path: Path, enc: str, schema: pa.Schema):
        self.path, self.enc, self.sha = path, enc, hashlib.sha256()
        self.fh = open(path, "wb")
        self._put(_encode_csv(schema.empty_table(), enc, header=True))

    def _put(self, data: bytes) -> None:
        self.sha.update(data)
        self.fh.write(data)

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self._put(_encode_csv(table, self.enc, header=False))

    def close(self) -> dict:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        return {"sha256": self.sha.hexdigest(), "bytes": self.path.stat().st_size}


class _ParquetFile:
    def __init__(self, path: Path, schema: pa.Schema):
        self.path = path
        self.writer = pq.ParquetWriter(path, schema, compression="zstd")

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self.writer.write_table(table)

    def close(self) -> dict:
        self.writer.close()
        with open(self.path, "rb+") as fh:
            os.fsync(fh.fileno())
        return {"sha256": sha256_file(self.path), "bytes": self.path.stat().st_size}


class ScopeFiles:
    """One scope's delivery of one kind, written chunk by chunk: ``full`` (results.csv/.parquet,
    every entity of the scope) or ``delta`` (changes.csv/.parquet: rows new or changed since the
    base publication; removed.csv: USCCs that left the scope). Agencies with the same scope get
    the same bytes, so each is built once."""

    def __init__(
        self, folder: Path, agency: dict, kind: str, published: pa.Schema, for_csv: pa.Schema
    ):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.agency, self.kind = folder, agency, kind
        enc = agency.get("encoding", "utf-8-sig")
        stem = "results" if kind == "full" else "changes"
        # CSV and XLSX in the agency's variant (Chinese headers and labels unless it asks for the
        # machine names); Parquet keeps the machine names and codes.
        self.variant = variant(agency)
        shown = labelled(for_csv.empty_table(), self.variant).schema
        self.files = {
            f"{stem}.csv": _CsvFile(folder / f"{stem}.csv", enc, shown),
            f"{stem}.parquet": _ParquetFile(folder / f"{stem}.parquet", published),
        }
        if agency.get("xlsx"):
            numeric = {shown.field(i).name for i, f in enumerate(published) if _numeric(f.type)}
            self.files[f"{stem}.xlsx"] = XlsxFile(folder / f"{stem}.xlsx", shown.names, numeric)
        if kind == "delta":
            self.files["removed.csv"] = _CsvFile(
                folder / "removed.csv",
                enc,
                labelled(pa.schema([published.field("uscc")]).empty_table(), self.variant).schema,
            )
        guide = dictionary_table(for_csv.names, self.variant)
        self.files[DICTIONARY_FILE] = _CsvFile(folder / DICTIONARY_FILE, enc, guide.schema)
        self.files[DICTIONARY_FILE].write(guide)
        self.rows = self.removed = 0
        self.info: dict[str, dict] = {}

    def write(self, chunk: pa.Table, for_csv: pa.Table, delta: Delta | None) -> None:
        stem = "results" if self.kind == "full" else "changes"
        keep = in_scope(chunk, self.agency)
        if self.kind == "delta":
            keep = pc.and_(keep, delta.changed)
            removed = removed_from_scope(
                chunk, delta, self.agency, keep_in=in_scope(chunk, self.agency)
            )
            self.files["removed.csv"].write(labelled(removed, self.variant))
            self.removed += removed.num_rows
        sub = chunk.filter(keep)
        shown = labelled(for_csv.filter(keep), self.variant)
        self.files[f"{stem}.csv"].write(shown)
        if f"{stem}.xlsx" in self.files:
            self.files[f"{stem}.xlsx"].write(shown)
        self.files[f"{stem}.parquet"].write(sub)
        self.rows += sub.num_rows

    def close(self) -> dict[str, dict]:
        self.info = {name: f.close() for name, f in sorted(self.files.items())}
        return self.info


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_floating(t) or pa.types.is_integer(t)


@dataclass
class Delta:
    """What changed since the base publication, for one chunk of USCCs: rows of this night that
    are new or differ in any published column (``changed``), the base's rows of the same USCC
    range, and where each of them is in this night (-1: gone)."""

    base_run_id: str
    base: pa.Table
    changed: pa.Array
    base_pos: np.ndarray


def _uscc_series(table: pa.Table) -> pd.Series:
    return pd.Series(
        pd.arrays.ArrowStringArray(table["uscc"].combine_chunks().cast(pa.large_string()))
    )


def delta_against(published: pa.Table, base_run_id: str, base: pa.Table) -> Delta:
    pos = (
        positions(_uscc_series(published), _uscc_series(base))
        if base.num_rows
        else np.full(published.num_rows, -1, dtype=np.int64)
    )
    at = pa.array(pos, mask=pos < 0)
    changed = pa.array(pos < 0)
    for name in published.column_names:
        if name not in base.column_names:
            changed = pa.array(np.ones(published.num_rows, dtype=bool))
            break
        now, then = published[name], base[name].take(at)
        if now.type != then.type:
            then = then.cast(now.type)
        same = pc.or_(
            pc.fill_null(pc.equal(now, then), False), pc.and_(pc.is_null(now), pc.is_null(then))
        )
        changed = pc.or_(changed, pc.invert(same))
    back = (
        positions(_uscc_series(base), _uscc_series(published))
        if published.num_rows and base.num_rows
        else np.full(base.num_rows, -1, dtype=np.int64)
    )
    return Delta(
        base_run_id,
        base,
        changed.combine_chunks() if isinstance(changed, pa.ChunkedArray) else changed,
        back,
    )


def removed_from_scope(published: pa.Table, delta: Delta, agency: dict, keep_in=None) -> pa.Table:
    """USCCs of the base (this chunk's range) that were in the agency's scope and are not now."""
    now_in = keep_in if keep_in is not None else in_scope(published, agency)
    was_in = (
        np.asarray(in_scope(delta.base, agency).to_numpy(zero_copy_only=False), dtype=bool)
        if delta.base.num_rows
        else np.zeros(0, dtype=bool)
    )
    still = np.zeros(len(delta.base_pos), dtype=bool)
    hit = delta.base_pos >= 0
    still[hit] = np.asarray(now_in.to_numpy(zero_copy_only=False), dtype=bool)[delta.base_pos[hit]]
    return delta.base.select(["uscc"]).filter(pa.array(was_in & ~still))


class BaseReader:
    """The base publication's rows, read along with tonight's in USCC order (both files are
    sorted by USCC): for each chunk of tonight, the base rows of the same USCC range."""

    def __init__(self, path: Path, schema: pa.Schema):
        self._batches = pq.ParquetFile(path).iter_batches(batch_size=CHUNK_ROWS)
        self._buf = None
        self._done = False
        self._schema = schema

    def upto(self, last: str | None) -> pa.Table:
        """Base rows with USCC <= last (all that remain when last is None)."""
        parts = [] if self._buf is None else [self._buf]
        while not self._done and (
            last is None
            or not parts
            or parts[-1].num_rows == 0
            or parts[-1]["uscc"][-1].as_py() <= last
        ):
            try:
                parts.append(pa.Table.from_batches([next(self._batches)]))
            except StopIteration:
                self._done = True
        t = (
            pa.concat_tables(
                [p.cast(self._schema) if p.schema != self._schema else p for p in parts]
            )
            if parts
            else self._schema.empty_table()
        )
        if last is None:
            self._buf = None
            return t
        n = (
            int(
                np.searchsorted(
                    np.asarray(
                        t["uscc"].combine_chunks().to_numpy(zero_copy_only=False), dtype=object
                    ),
                    last,
                    side="right",
                )
            )
            if t.num_rows
            else 0
        )
        self._buf = t.slice(n)
        return t.slice(0, n)


def manifest_bytes(agency: dict, run: dict, files: ScopeFiles, base_run_id: str | None) -> bytes:
    """An agency's manifest: its scope's data files and their hashes. A full delivery holds every
    entity of the scope; a delta only what changed since ``base_run_id``."""
    enc = agency.get("encoding", "utf-8-sig")
    manifest = {
        "run_id": run["run_id"],
        "as_of": str(run["as_of"]),
        "agency_id": agency["id"],
        "agency_name": agency["name"],
        "schema_version": SCHEMA_VERSION,
        "rows": files.rows,
        "delivery": "delta" if base_run_id else "full",
        **({"base_run_id": base_run_id, "removed": files.removed} if base_run_id else {}),
        "csv_encoding": enc,
        "output_sha256": run["output_sha256"],
        "files": files.info,
        "notice": "信用风险分类结果为内部监管参考，不对社会公开 / tiers are an internal supervisory reference, not for publication",
    }
    return json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8")
