"""Publication of a run's results to supervisory agencies: one outbox folder per agency and run.

Each agency receives only the entities in its scope. Files are written into a temporary folder,
synced, and renamed into place in one step, so an agency never sees half a night; publishing the
same run again writes identical bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import sqlalchemy as sa

from scoring.common.catalogue import Catalogue
from scoring.common.config import CONFIG_DIR, content_hash, load_document
from scoring.common.partitions import bucket_range
from scoring.evaluation import partitioned as part
from scoring.evaluation import piece_files
from scoring.evaluation.evaluate import positions
from scoring.history.folders import RunFolder
from scoring.history.store import artifacts, publications, record_batches, runs, sha256_file
from scoring.publication.access import ensure_access_control
from scoring.publication.free_text import mask_text_columns
from scoring.publication.labels import DICTIONARY_FILE, dictionary_table, labelled, variant
from scoring.publication.masking import (
    check_rules,
    mask_personal_data,
    positive_optouts,
    withhold_positive,
)
from scoring.publication.nights import supersede_others
from scoring.publication.sheet import XlsxFile

DEFAULT_AGENCIES = CONFIG_DIR / "agencies.yaml"
PUBLISHED_COLUMNS = [
    "uscc",
    "name",
    "division_code",
    "industry",
    "eval_class",
    "legal_rep_name",
    "legal_rep_id_number",
    "phone",
    "score",
    "tier",
    "dim_law_abiding",
    "dim_contracts_promises",
    "dim_qualifications_honours",
    "dim_social_responsibility",
    "dim_supervisory_risk",
    "override",
    "flags",
    "reasons",
]
# Deliveries: a full file of an agency's scope on the first night of each month, on its first
# delivery and whenever CREDIT_PUBLISH_FULL is set; on other nights only what changed since the
# previous published night (changes + removed). The database views always hold the full state.
FULL_ENV = "CREDIT_PUBLISH_FULL"
FULL_ON_DAY = 1
SNAPSHOT_FILE = RunFolder.PUBLISHED  # the night's full published table, the next night's base
PUBLISHED_PIECE = "published"  # a partition's share of it, made beside its evaluation
CHUNK_ROWS = int(os.environ.get("CREDIT_CHUNK_ROWS") or 250_000)  # published rows in memory at once
FAULT_ENV = "CREDIT_FAULT_INJECT"  # "publish:N": fail after N agencies' files (tests of atomicity)
SCHEMA_VERSION = "agency_results/1"
FORMULA_LEAD = ("=", "+", "-", "@", "\t", "\r")


def load_agencies(path: Path | str = DEFAULT_AGENCIES) -> list[dict]:
    doc = load_document(path)
    agencies = sorted(doc["agencies"], key=lambda a: a["id"])
    ids = [a["id"] for a in agencies]
    if len(ids) != len(set(ids)):
        raise ValueError("agency registry: duplicate ids")
    return agencies


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


def published_table(results: pd.DataFrame) -> pa.Table:
    """The masked results in the published column order, sorted by USCC, as Arrow (typed). Besides
    the personal fields' own rules, ID and mobile numbers inside any text (an individual business
    named after its owner's ID) are masked (Art. 23)."""
    t = mask_text_columns(pa.Table.from_pandas(results[PUBLISHED_COLUMNS], preserve_index=False))
    uscc = t["uscc"]
    if (
        len(uscc) > 1 and not pc.all(pc.less_equal(uscc[:-1], uscc[1:])).as_py()
    ):  # results come sorted
        t = t.take(pc.sort_indices(t, [("uscc", "ascending")]))
    # Text stays large_string where it is (64-bit offsets: a province's reasons can pass 2 GB).
    return t.cast(
        pa.schema(
            [
                pa.field(f.name, pa.large_string()) if pa.types.is_dictionary(f.type) else f
                for f in t.schema
            ]
        )
    )


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


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _scope_key(agency: dict) -> tuple:
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


class _BaseReader:
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


def _manifest_bytes(agency: dict, run: dict, files: ScopeFiles, base_run_id: str | None) -> bytes:
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


def write_outbox(folder: Path, files: dict[str, bytes]) -> None:
    """Atomically replace ``folder`` with exactly these files (identical bytes → no change)."""
    if (
        folder.is_dir()
        and all((folder / n).is_file() and (folder / n).read_bytes() == d for n, d in files.items())
        and sorted(p.name for p in folder.iterdir()) == sorted(files)
    ):
        return
    tmp = folder.with_name("." + folder.name + ".tmp")  # hidden: readers never pick it up
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for name, data in sorted(files.items()):
        _fsync_write(tmp / name, data)
    old = folder.with_name("." + folder.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    if old.exists():
        shutil.rmtree(old)


REGISTER_COLUMNS = ["uscc", "legal_rep_name", "legal_rep_id_number", "phone"]


def _register_for(store, conn, run: dict) -> pd.DataFrame:
    """Legal representatives and phones of the run's entities, from the register batches it used."""
    manifest = json.loads(run["manifest_json"])

    wanted = {b["batch_id"] for b in manifest["input_batches"]}
    batches = [
        dict(b._mapping)
        for b in conn.execute(
            sa.select(record_batches)
            .where(record_batches.c.table_name == "entities")
            .order_by(record_batches.c.known_from, record_batches.c.batch_id)
        )
        if b.batch_id in wanted
    ]
    reg = store.read_batches(batches, columns=REGISTER_COLUMNS)
    if reg.empty:
        return pd.DataFrame(columns=REGISTER_COLUMNS)
    return reg.drop_duplicates("uscc", keep="last")


def _with_register(results: pd.DataFrame, register: pd.DataFrame) -> pd.DataFrame:
    """Results with their legal representative's data (null where the register has none)."""
    pos = (
        positions(results["uscc"], register["uscc"]) if len(register) else np.full(len(results), -1)
    )
    at = pa.array(pos, mask=pos < 0)
    out = results.copy(deep=False)
    for col in ("legal_rep_name", "legal_rep_id_number", "phone"):
        src = (
            pa.array(register[col].astype("string").array, type=pa.large_string())
            if col in register
            else pa.nulls(len(register), pa.large_string())
        )
        out[col] = pd.Series(pd.arrays.ArrowStringArray(src.take(at)), index=results.index)
    return out


def write_published_piece(
    store, plan: dict, partition: int, catalogue, folder: Path, results: pd.DataFrame | None = None
) -> None:
    """One partition's rows as agencies will get them (personal fields masked by the catalogue's
    rules, the register's fields joined, in USCC order), made beside its evaluation so that the
    night only merges them: the register is read for the partition's buckets, not the province."""
    lo, hi = bucket_range(partition, plan["partitions"])
    if results is None:  # the partition's results, as its evaluation wrote them
        results = piece_files.read_table(
            part.piece_path(folder, plan, partition, "entity_score")
        ).to_pandas()
    ents = [b for b in plan["batches"] if b["table_name"] == "entities"]
    register = (
        store.read_latest(ents, "uscc", (lo, hi), verified=True, snapshot=True)
        if ents
        else pd.DataFrame()
    )
    register = (
        register.reindex(columns=REGISTER_COLUMNS)
        if len(register)
        else pd.DataFrame(columns=REGISTER_COLUMNS)
    )
    published = published_table(
        _publishable(store, _with_register(results, register), catalogue, plan["batches"], plan)
    )
    part.write_piece(folder, plan, partition, PUBLISHED_PIECE, published)


def _publishable(store, rows: pd.DataFrame, catalogue, batches: list[dict], run) -> pd.DataFrame:
    """Rows as they may be published: personal data masked by the catalogue's rules (checked
    against the published columns), and the positive information of the entities that asked
    for it not to be published withheld (Art. 37 ¶1)."""
    personal = catalogue.doc.get("personal_data", {})
    check_rules(personal, PUBLISHED_COLUMNS)
    out = mask_personal_data(rows, personal)
    chg = [b for b in batches if b["table_name"] == "changes"]
    optouts = (
        positive_optouts(
            store.read_batches(chg, columns=["op", "subject_code", "effective_date"]), run["as_of"]
        )
        if chg
        else set()
    )
    if optouts:
        pol = json.loads(_artifact(store, run["policy_sha256"]))
        codes = sorted(s["reason"] for s in pol["items"].values() if float(s["points"]) > 0)
        out = withhold_positive(out, optouts, codes)
    return out


def _published_file(store, conn, run: dict, manifest: dict) -> Path:
    """The run's published table (made by its partitions at scoring), checked against its
    manifest; for a run scored before partitions made it, built here from its results."""
    path = store.run_dir(run["run_id"]) / SNAPSHOT_FILE
    expected = (manifest.get("result_files") or {}).get(SNAPSHOT_FILE)
    if expected:
        if not path.exists() or sha256_file(path) != expected:
            raise RuntimeError(
                f"run {run['run_id']}: {SNAPSHOT_FILE} does not match its manifest; rescore the run"
            )
        return path
    cat = Catalogue.from_doc(json.loads(_artifact(store, manifest["catalogue_sha256"])))
    results = _with_register(
        store.read_run_results(conn, run["run_id"], manifest), _register_for(store, conn, run)
    )
    wanted = {b["batch_id"] for b in manifest["input_batches"]}
    batches = [
        dict(b._mapping)
        for b in conn.execute(
            sa.select(record_batches).where(record_batches.c.table_name == "changes")
        )
        if b.batch_id in wanted
    ]
    published = published_table(
        _publishable(store, results, cat, batches, {**run, **manifest, "as_of": str(run["as_of"])})
    )
    tmp = path.with_name(SNAPSHOT_FILE + ".tmp")
    pq.write_table(published, tmp, compression="zstd")
    os.replace(tmp, path)
    return path


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)  # the same bytes for every agency of a scope: written and synced once
    except OSError:
        shutil.copyfile(src, dest)
        with open(dest, "rb+") as fh:
            os.fsync(fh.fileno())


def publish_run(store, run_id: str, agencies: list[dict] | None = None, progress=None) -> dict:
    """Deliver a scored run to every agency. Files first (each agency folder appears whole), then
    one database transaction makes the run the published one, then the CURRENT pointers move.
    The published table is read in USCC-ordered chunks beside the base publication's (for the
    deltas), and every scope's files are written chunk by chunk: memory is a chunk, not a province."""
    agencies = agencies or load_agencies()
    with store.engine.connect() as conn:
        run = dict(conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()._mapping)
        manifest = json.loads(run["manifest_json"])
        source = _published_file(store, conn, run, manifest)
    base = _delta_base(store, run)
    base_agencies = base[2] if base else set()
    fail_after = _fault_after()
    allowed = [a for a in (agencies if fail_after is None else agencies[:fail_after])]
    outbox = store.home / "outbox"
    build = store.run_dir(run_id) / ".publication"
    shutil.rmtree(build, ignore_errors=True)
    schema = pq.read_schema(source).remove_metadata()
    csv_schema = csv_table(schema.empty_table()).schema
    # One set of files per distinct (scope, kind); agencies of the same scope share its bytes.
    kind_of = {a["id"]: ("delta" if base and a["id"] in base_agencies else "full") for a in allowed}
    sets: dict[tuple, ScopeFiles] = {}
    for agency in allowed:
        key = (_scope_key(agency), kind_of[agency["id"]])
        if key not in sets:
            sets[key] = ScopeFiles(build / f"{len(sets):03d}", agency, key[1], schema, csv_schema)
    reader = _BaseReader(base[1], pq.read_schema(base[1]).remove_metadata()) if base else None
    rows, delivered, written = [], [], []
    committed = False
    try:
        pf = pq.ParquetFile(source)
        total, seen = pf.metadata.num_rows, 0
        chunks = (
            (pa.Table.from_batches([b]) for b in pf.iter_batches(batch_size=CHUNK_ROWS))
            if total
            else iter([schema.empty_table()])
        )
        # Arrow releases the GIL: two scopes are written at once while the next chunk's delta and
        # CSV fields are made; a scope's chunks are still written in order (one chunk in flight).
        with ThreadPoolExecutor(max_workers=2) as pool:
            writing: list = []
            for chunk in chunks:
                chunk = chunk.cast(schema) if chunk.schema != schema else chunk
                seen += chunk.num_rows
                last = None if seen >= total else chunk["uscc"][-1].as_py()
                delta = delta_against(chunk, base[0], reader.upto(last)) if reader else None
                for_csv = csv_table(chunk)
                for w in writing:
                    w.result()
                writing = [pool.submit(s.write, chunk, for_csv, delta) for s in sets.values()]
                if progress and total > 1_000_000:
                    progress(
                        f"publish: {seen:,}/{total:,} entities being written for {len(sets)} scope(s)"
                    )
            for w in writing:
                w.result()
        for files in sets.values():
            files.close()
        for n, agency in enumerate(allowed, start=1):
            files = sets[(_scope_key(agency), kind_of[agency["id"]])]
            base_run = base[0] if files.kind == "delta" else None
            manifest_bytes = _manifest_bytes(agency, run, files, base_run)
            staged = _stage_dir(outbox, agency["id"], run_id)
            written.append(staged)
            if staged.exists():
                shutil.rmtree(staged)
            staged.mkdir(parents=True)
            for name in files.info:
                _link_or_copy(files.folder / name, staged / name)
            _fsync_write(staged / "manifest.json", manifest_bytes)
            _fsync_dir(staged)
            _kill_point("staged", n)
            folder = outbox / agency["id"] / run_id
            delivered.append(str(folder))
            shas = {
                **{name: f["sha256"] for name, f in files.info.items()},
                "manifest.json": hashlib.sha256(manifest_bytes).hexdigest(),
            }
            for name in sorted(shas):
                rows.append(
                    {
                        "run_id": run_id,
                        "agency_id": agency["id"],
                        "path": (folder / name).relative_to(outbox).as_posix(),
                        "rows": files.rows,
                        "sha256": shas[name],
                    }
                )
            if progress:
                progress(
                    f"publish: [{n}/{len(agencies)}] {agency['id']} ← "
                    + (
                        f"{files.rows:,} entities"
                        if files.kind == "full"
                        else f"{files.rows:,} changed, {files.removed:,} removed since {base_run}"
                    )
                )
        if len(allowed) < len(agencies):
            raise RuntimeError(f"fault injected after {fail_after} agencies ({FAULT_ENV})")
        with store.engine.begin() as conn:
            conn.execute(sa.delete(publications).where(publications.c.run_id == run_id))
            store.insert_frame(conn, publications, pd.DataFrame(rows))
            ensure_access_control(conn, agencies)
            conn.execute(
                sa.update(runs)
                .where(runs.c.run_id == run_id)
                .values(status="published", step="publish")
            )
            supersede_others(conn, run_id)  # a re-run replaces its night here, in one transaction
        committed = True
    except BaseException:
        # Nothing of this attempt was visible: its staged folders go. (Killed here, the next run
        # removes them and closes the run as failed: recover_publications.)
        if not committed:
            for staged in written:
                shutil.rmtree(staged, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(build, ignore_errors=True)
    # The commit is the publication; the files follow it, one rename per agency. (Killed during
    # these renames, the next run finishes them: the database already says published.)
    for i, agency in enumerate(agencies, start=1):
        _swap_in(_stage_dir(outbox, agency["id"], run_id), outbox / agency["id"] / run_id)
        _kill_point("swapped", i)
    for agency in agencies:
        _write_pointer(outbox / agency["id"] / "CURRENT", run_id, run["as_of"])
    return {"run_id": run_id, "published": delivered, "registry_sha256": content_hash(agencies)}


def _delta_base(store, run: dict) -> tuple[str, Path, set[str]] | None:
    """The publication a delta is made against: the latest published night before this one whose
    full table is kept; None when tonight delivers in full (first of the month, asked for, none)."""
    if os.environ.get(FULL_ENV) or pd.Timestamp(str(run["as_of"])).day == FULL_ON_DAY:
        return None
    with store.engine.connect() as conn:
        prev = conn.execute(
            sa.select(runs.c.run_id)
            .where(
                (runs.c.status == "published")
                & (runs.c.kind == run["kind"])
                & (runs.c.as_of < run["as_of"])
            )
            .order_by(runs.c.as_of.desc(), runs.c.run_id.desc())
            .limit(1)
        ).scalar()
        if prev is None:
            return None
        agencies = set(
            conn.execute(
                sa.select(publications.c.agency_id).where(publications.c.run_id == prev)
            ).scalars()
        )
    path = store.run_dir(prev) / SNAPSHOT_FILE
    if not path.exists():
        return None
    return prev, path, agencies


def _write_pointer(path: Path, run_id: str, as_of) -> None:
    """Point an agency's CURRENT file at the newest published run (never back to an older one)."""
    if path.exists():
        old = path.read_text(encoding="utf-8").split()
        if len(old) >= 2 and old[1] > str(as_of):
            return
    tmp = path.with_name(".CURRENT.tmp")
    _fsync_write(tmp, f"{run_id} {as_of}\n".encode())
    tmp.replace(path)


def _kill_point(stage: str, count: int) -> None:
    """Fault injection for the kill tests: ``publish-kill:<stage>:<n>`` kills this process with
    SIGKILL (no cleanup runs) once n agencies have reached that stage."""
    spec = os.environ.get(FAULT_ENV, "")
    if spec == f"publish-kill:{stage}:{count}":
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def _stage_dir(outbox: Path, agency_id: str, run_id: str) -> Path:
    return outbox / agency_id / f".staging-{run_id}"


def _stage(folder: Path, files: dict[str, bytes]) -> None:
    """Write a delivery into its hidden staging folder (readers never pick up dot-folders), every
    file and the folder itself synced, so that a rename makes it visible whole."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, data in sorted(files.items()):
        _fsync_write(folder / name, data)
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _swap_in(staged: Path, folder: Path) -> None:
    """Make a staged delivery the visible one by rename; a delivery of the same night already
    there moves aside first and is removed after."""
    old = folder.with_name(f".old-{folder.name}")
    if old.exists():
        shutil.rmtree(old)
    if folder.exists():
        folder.rename(old)
    staged.rename(folder)
    _fsync_dir(folder.parent)
    if old.exists():
        shutil.rmtree(old)


def recover_publications(store) -> tuple[list[str], set[str]]:
    """Finish or undo what a killed publication left behind; run at the start of every run, under
    the store's run lock. A staged delivery whose run the database holds as published is renamed
    into place (the commit was the publication); any other staged delivery is removed, and its run
    is returned among the ones to close as failed. Returns (one note per action, those run ids)."""
    outbox = store.home / "outbox"
    notes: list[str] = []
    unpublished: set[str] = set()
    if not outbox.is_dir():
        return notes, unpublished
    with store.engine.connect() as conn:
        state = {
            r.run_id: (r.status, r.as_of)
            for r in conn.execute(sa.select(runs.c.run_id, runs.c.status, runs.c.as_of))
        }
    for agency_dir in sorted(p for p in outbox.iterdir() if p.is_dir() and not p.is_symlink()):
        for entry in sorted(agency_dir.iterdir()):
            if not entry.is_dir() or entry.is_symlink():
                continue
            if entry.name.startswith(".staging-"):
                run_id = entry.name[len(".staging-") :]
                status, as_of = state.get(run_id, (None, None))
                if status == "published":
                    _swap_in(entry, agency_dir / run_id)
                    _write_pointer(agency_dir / "CURRENT", run_id, as_of)
                    notes.append(f"{agency_dir.name}/{run_id}: committed publication completed")
                else:
                    shutil.rmtree(entry)
                    unpublished.add(run_id)
                    notes.append(
                        f"{agency_dir.name}/{run_id}: staged files of an unpublished run removed"
                    )
            elif entry.name.startswith(".old-"):  # a same-night delivery a killed swap left aside
                shutil.rmtree(entry)
    return notes, unpublished


def _fault_after() -> int | None:
    spec = os.environ.get(FAULT_ENV, "")
    if spec.startswith("publish:"):
        return int(spec.split(":", 1)[1])
    return None


def _artifact(store, sha: str) -> str:
    with store.engine.connect() as conn:
        return conn.execute(
            sa.select(artifacts.c.content_json).where(artifacts.c.sha256 == sha)
        ).scalar_one()
