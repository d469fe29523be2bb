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
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
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
from scoring.evaluation.evaluate import positions
from scoring.history.store import artifacts, publications, record_batches, runs
from scoring.publication.access import ensure_access_control
from scoring.publication.free_text import mask_text_columns
from scoring.publication.masking import mask_personal_data
from scoring.publication.nights import supersede_others

DEFAULT_AGENCIES = CONFIG_DIR / "agencies.yaml"
PUBLISHED_COLUMNS = ["uscc", "name", "division_code", "industry", "eval_class", "legal_rep_name",
                     "legal_rep_id_number", "phone", "score", "tier", "dim_law_abiding", "dim_contracts_promises",
                     "dim_qualifications_honours", "dim_social_responsibility", "dim_supervisory_risk",
                     "override", "flags", "reasons"]
# Deliveries: a full file of an agency's scope on the first night of each month, on its first
# delivery and whenever CREDIT_PUBLISH_FULL is set; on other nights only what changed since the
# previous published night (changes + removed). The database views always hold the full state.
FULL_ENV = "CREDIT_PUBLISH_FULL"
FULL_ON_DAY = 1
SNAPSHOT_FILE = "published.parquet"   # the night's full published table, the next night's base
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
        cols = {c: pa.array(results[c].astype("string").array, type=pa.string()) for c in ("division_code", "industry")}
        mask = in_scope(pa.table(cols), agency)
        return pd.Series(mask.to_numpy(zero_copy_only=False), index=results.index, dtype=bool)
    div = pc.fill_null(results["division_code"].cast(pa.string()), "")
    ok = None
    for prefix in agency.get("divisions") or [""]:
        hit = pc.starts_with(div, str(prefix))
        ok = hit if ok is None else pc.or_(ok, hit)
    inds = agency.get("industries") or []
    if inds:
        ok = pc.and_(ok, pc.fill_null(pc.is_in(results["industry"].cast(pa.string()), pa.array(inds, pa.string())), False))
    return ok


_FORMULA_PATTERN = "^[" + "".join("\\" + c if c in "-^]\\" else c for c in FORMULA_LEAD) + "]"


def _neutralised(col) -> pa.Array:
    """Text cells that a spreadsheet would run as a formula, prefixed with an apostrophe."""
    risky = pc.fill_null(pc.match_substring_regex(col, _FORMULA_PATTERN), False)
    if not pc.any(risky).as_py():
        return col
    col = col.cast(pa.large_string())
    quoted = pc.binary_join_element_wise(pa.scalar("'", pa.large_string()), col, pa.scalar("", pa.large_string()))
    return pc.if_else(risky, quoted, col)


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells that a spreadsheet would run as a formula with an apostrophe. Numeric
    columns are left alone: a plain negative number is a number to Excel/WPS, not a formula."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = pd.Series(pd.arrays.ArrowStringArray(_neutralised(pa.array(out[col].astype("string").array))),
                                 index=out.index)
    return out


def _one_decimal(col) -> pa.Array:
    """Floats as text with exactly one decimal (-70.0, 12.5), like %.1f, computed in Arrow."""
    tenths = pc.cast(pc.round(pc.multiply(col, 10.0)), pa.int64())
    whole = pc.cast(pc.divide(pc.abs(tenths), 10), pa.string())
    frac = pc.cast(pc.subtract(pc.abs(tenths), pc.multiply(pc.divide(pc.abs(tenths), 10), 10)), pa.string())
    sign = pc.if_else(pc.less(tenths, 0), "-", "")
    return pc.binary_join_element_wise(sign, whole, ".", frac, "")


def published_table(results: pd.DataFrame) -> pa.Table:
    """The masked results in the published column order, sorted by USCC, as Arrow (typed). Besides
    the personal fields' own rules, ID and mobile numbers inside any text (an individual business
    named after its owner's ID) are masked (Art. 23)."""
    t = mask_text_columns(pa.Table.from_pandas(results[PUBLISHED_COLUMNS], preserve_index=False))
    uscc = t["uscc"]
    if len(uscc) > 1 and not pc.all(pc.less_equal(uscc[:-1], uscc[1:])).as_py():  # results come sorted
        t = t.take(pc.sort_indices(t, [("uscc", "ascending")]))
    # Text stays large_string where it is (64-bit offsets: a province's reasons can pass 2 GB).
    return t.cast(pa.schema([pa.field(f.name, pa.large_string()) if pa.types.is_dictionary(f.type) else f
                             for f in t.schema]))


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
    return (tuple(agency.get("divisions") or [""]), tuple(agency.get("industries") or []),
            agency.get("encoding", "utf-8-sig"))


def data_files(published: pa.Table, for_csv: pa.Table, agency: dict) -> tuple[dict[str, bytes], int]:
    """The CSV and Parquet bytes of an agency's scope (the same for agencies with the same scope)."""
    enc = agency.get("encoding", "utf-8-sig")
    keep = in_scope(published, agency)
    buf = io.BytesIO()
    if enc == "utf-8-sig":
        buf.write(b"\xef\xbb\xbf")  # the BOM by which Excel/WPS recognise UTF-8
    pacsv.write_csv(for_csv.filter(keep), buf, pacsv.WriteOptions(eol="\r\n"))
    csv_bytes = buf.getvalue()
    if enc.replace("-", "").replace("_", "").lower() not in ("utf8sig", "utf8"):
        csv_bytes = csv_bytes.decode("utf-8").encode(enc, errors="strict")
    sub = published.filter(keep)
    buf = io.BytesIO()
    pq.write_table(sub, buf, compression="zstd")
    return {"results.csv": csv_bytes, "results.parquet": buf.getvalue()}, int(sub.num_rows)


def _csv_bytes(table: pa.Table, enc: str) -> bytes:
    buf = io.BytesIO()
    if enc == "utf-8-sig":
        buf.write(b"\xef\xbb\xbf")
    pacsv.write_csv(table, buf, pacsv.WriteOptions(eol="\r\n"))
    data = buf.getvalue()
    if enc.replace("-", "").replace("_", "").lower() not in ("utf8sig", "utf8"):
        data = data.decode("utf-8").encode(enc, errors="strict")
    return data


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


@dataclass
class Delta:
    """What changed since the base publication: rows of this night that are new or differ in any
    published column (``changed``), and where each base row is in this night (-1: gone)."""
    base_run_id: str
    base: pa.Table
    changed: pa.Array
    base_pos: np.ndarray


def delta_against(published: pa.Table, base_run_id: str, base: pa.Table) -> Delta:
    pos = positions(pd.Series(pd.arrays.ArrowStringArray(published["uscc"].combine_chunks().cast(pa.large_string()))),
                    pd.Series(pd.arrays.ArrowStringArray(base["uscc"].combine_chunks().cast(pa.large_string()))))
    at = pa.array(pos, mask=pos < 0)
    changed = pa.array(pos < 0)
    for name in published.column_names:
        if name not in base.column_names:
            changed = pa.array(np.ones(published.num_rows, dtype=bool))
            break
        now, then = published[name], base[name].take(at)
        if now.type != then.type:
            then = then.cast(now.type)
        same = pc.or_(pc.fill_null(pc.equal(now, then), False), pc.and_(pc.is_null(now), pc.is_null(then)))
        changed = pc.or_(changed, pc.invert(same))
    back = positions(pd.Series(pd.arrays.ArrowStringArray(base["uscc"].combine_chunks().cast(pa.large_string()))),
                     pd.Series(pd.arrays.ArrowStringArray(published["uscc"].combine_chunks().cast(pa.large_string()))))
    return Delta(base_run_id, base, changed.combine_chunks() if isinstance(changed, pa.ChunkedArray) else changed,
                 back)


def delta_files(published: pa.Table, for_csv: pa.Table, delta: Delta, agency: dict) -> tuple[dict[str, bytes], int, int]:
    """An agency's delta: the rows of its scope that are new or changed since the base
    publication, and the USCCs that were in its scope then and are not now."""
    enc = agency.get("encoding", "utf-8-sig")
    now_in = in_scope(published, agency)
    keep = pc.and_(now_in, delta.changed)
    was_in = np.asarray(in_scope(delta.base, agency).to_numpy(zero_copy_only=False), dtype=bool)
    still = np.zeros(len(delta.base_pos), dtype=bool)
    hit = delta.base_pos >= 0
    still[hit] = np.asarray(now_in.to_numpy(zero_copy_only=False), dtype=bool)[delta.base_pos[hit]]
    removed = delta.base.select(["uscc"]).filter(pa.array(was_in & ~still))
    sub = published.filter(keep)
    return ({"changes.csv": _csv_bytes(for_csv.filter(keep), enc), "changes.parquet": _parquet_bytes(sub),
             "removed.csv": _csv_bytes(removed, enc)}, int(sub.num_rows), int(removed.num_rows))


def with_manifest(data: tuple, agency: dict, run: dict, base_run_id: str | None = None) -> dict[str, bytes]:
    """An agency's delivery: its scope's data files and a manifest naming their hashes. A full
    delivery holds every entity of the scope; a delta only what changed since ``base_run_id``."""
    files, rows = data[0], data[1]
    enc = agency.get("encoding", "utf-8-sig")
    manifest = {
        "run_id": run["run_id"], "as_of": str(run["as_of"]), "agency_id": agency["id"],
        "agency_name": agency["name"], "schema_version": SCHEMA_VERSION, "rows": rows,
        "delivery": "delta" if base_run_id else "full",
        **({"base_run_id": base_run_id, "removed": data[2]} if base_run_id else {}),
        "csv_encoding": enc, "output_sha256": run["output_sha256"],
        "files": {name: {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
                  for name, blob in sorted(files.items())},
        "notice": "信用风险分类结果为内部监管参考，不对社会公开 / tiers are an internal supervisory reference, not for publication",
    }
    return {**files, "manifest.json": json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8")}


def write_outbox(folder: Path, files: dict[str, bytes]) -> None:
    """Atomically replace ``folder`` with exactly these files (identical bytes → no change)."""
    if folder.is_dir() and all((folder / n).is_file() and (folder / n).read_bytes() == d for n, d in files.items()) \
            and sorted(p.name for p in folder.iterdir()) == sorted(files):
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


def _register_for(store, conn, run: dict) -> pd.DataFrame:
    """Legal representatives and phones of the run's entities, from the register batches it used."""
    manifest = json.loads(run["manifest_json"])

    wanted = {b["batch_id"] for b in manifest["input_batches"]}
    batches = [dict(b._mapping) for b in conn.execute(
        sa.select(record_batches).where(record_batches.c.table_name == "entities")
        .order_by(record_batches.c.known_from, record_batches.c.batch_id)) if b.batch_id in wanted]
    reg = store.read_batches(batches, columns=["uscc", "legal_rep_name", "legal_rep_id_number", "phone"])
    if reg.empty:
        return pd.DataFrame(columns=["uscc", "legal_rep_name", "legal_rep_id_number", "phone"])
    return reg.drop_duplicates("uscc", keep="last")


def _with_register(results: pd.DataFrame, register: pd.DataFrame) -> pd.DataFrame:
    """Results with their legal representative's data (null where the register has none)."""
    pos = positions(results["uscc"], register["uscc"]) if len(register) else np.full(len(results), -1)
    at = pa.array(pos, mask=pos < 0)
    out = results.copy(deep=False)
    for col in ("legal_rep_name", "legal_rep_id_number", "phone"):
        src = pa.array(register[col].astype("string").array, type=pa.large_string())
        out[col] = pd.Series(pd.arrays.ArrowStringArray(src.take(at)), index=results.index)
    return out


def publish_run(store, run_id: str, agencies: list[dict] | None = None, progress=None) -> dict:
    """Deliver a scored run to every agency. Files first (each agency folder appears whole), then
    one database transaction makes the run the published one, then the CURRENT pointers move."""
    agencies = agencies or load_agencies()
    with store.engine.connect() as conn:
        run = dict(conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()._mapping)
        manifest = json.loads(run["manifest_json"])
        results = store.read_run_results(conn, run_id, manifest)
        register = _register_for(store, conn, run)
    cat = Catalogue.from_doc(json.loads(_artifact(store, manifest["catalogue_sha256"])))
    results = _with_register(results, register)
    published = published_table(mask_personal_data(results, cat.doc.get("personal_data", {})))
    for_csv = csv_table(published)
    del results, register
    base = _delta_base(store, run)
    delta = delta_against(published, base[0], base[1]) if base else None
    base_agencies = base[2] if base else set()
    snapshot = store.run_dir(run_id) / SNAPSHOT_FILE
    tmp = snapshot.with_name(SNAPSHOT_FILE + ".tmp")
    pq.write_table(published, tmp, compression="zstd")
    os.replace(tmp, snapshot)
    fail_after = _fault_after()
    outbox = store.home / "outbox"
    rows, delivered, written = [], [], []
    # One task per distinct scope: build its files once, write them to each of its agencies'
    # folders. Two workers, largest scopes first, so one builds (Arrow releases the GIL) while
    # the other writes and syncs; no scope's bytes are kept once its folders are written.

    groups: dict[tuple, list[dict]] = {}
    for agency in agencies:
        groups.setdefault(_scope_key(agency), []).append(agency)
    size = {k: pc.sum(in_scope(published, g[0]).cast(pa.int64())).as_py() or 0 for k, g in groups.items()}
    allowed = {a["id"] for a in (agencies if fail_after is None else agencies[:fail_after])}

    staged_count = [0]
    count_lock = threading.Lock()

    def deliver(group: list[dict]) -> list[tuple[dict, Path, bytes]]:
        made = {}
        done = []
        for agency in group:
            if agency["id"] not in allowed:
                continue
            kind = "delta" if delta is not None and agency["id"] in base_agencies else "full"
            if kind not in made:
                made[kind] = (delta_files(published, for_csv, delta, group[0]) if kind == "delta"
                              else data_files(published, for_csv, group[0]))
            files = with_manifest(made[kind], agency, run, delta.base_run_id if kind == "delta" else None)
            staged = _stage_dir(outbox, agency["id"], run_id)
            written.append(staged)
            _stage(staged, files)
            done.append((agency, outbox / agency["id"] / run_id, files["manifest.json"]))
            with count_lock:
                staged_count[0] += 1
                _kill_point("staged", staged_count[0])
        return done

    committed = False
    try:
        done = []
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(deliver, groups[k]) for k in sorted(groups, key=lambda k: (-size[k], k))]
            for fut in as_completed(futures):
                for agency, folder, manifest_bytes in fut.result():
                    done.append((agency, folder, manifest_bytes))
                    if progress:
                        m = json.loads(manifest_bytes)
                        progress(f"publish: [{len(done)}/{len(agencies)}] {agency['id']} ← " + (
                            f"{m['rows']:,} entities" if m["delivery"] == "full" else
                            f"{m['rows']:,} changed, {m['removed']:,} removed since {m['base_run_id']}"))
        if len(done) < len(agencies):
            raise RuntimeError(f"fault injected after {fail_after} agencies ({FAULT_ENV})")
        order = {a["id"]: i for i, a in enumerate(agencies)}
        for agency, folder, manifest_bytes in sorted(done, key=lambda d: order[d[0]["id"]]):
            m = json.loads(manifest_bytes)
            shas = {**{n: f["sha256"] for n, f in m["files"].items()},
                    "manifest.json": hashlib.sha256(manifest_bytes).hexdigest()}
            for name in sorted(shas):
                rows.append({"run_id": run_id, "agency_id": agency["id"],
                             "path": (folder / name).relative_to(outbox).as_posix(), "rows": m["rows"],
                             "sha256": shas[name]})
            delivered.append(str(folder))
        with store.engine.begin() as conn:
            conn.execute(sa.delete(publications).where(publications.c.run_id == run_id))
            store.insert_frame(conn, publications, pd.DataFrame(rows))
            ensure_access_control(conn, agencies)
            conn.execute(sa.update(runs).where(runs.c.run_id == run_id).values(status="published", step="publish"))
            supersede_others(conn, run_id)  # a re-run replaces its night here, in one transaction
        committed = True
    except BaseException:
        # Nothing of this attempt was visible: its staged folders go. (Killed here, the next run
        # removes them and closes the run as failed: recover_publications.)
        if not committed:
            for staged in written:
                shutil.rmtree(staged, ignore_errors=True)
        raise
    # The commit is the publication; the files follow it, one rename per agency. (Killed during
    # these renames, the next run finishes them: the database already says published.)
    for i, agency in enumerate(agencies, start=1):
        _swap_in(_stage_dir(outbox, agency["id"], run_id), outbox / agency["id"] / run_id)
        _kill_point("swapped", i)
    for agency in agencies:
        _write_pointer(outbox / agency["id"] / "CURRENT", run_id, run["as_of"])
    return {"run_id": run_id, "published": delivered, "registry_sha256": content_hash(agencies)}


def _delta_base(store, run: dict) -> tuple[str, pa.Table, set[str]] | None:
    """The publication a delta is made against: the latest published night before this one whose
    full table is kept; None when tonight delivers in full (first of the month, asked for, none)."""
    if os.environ.get(FULL_ENV) or pd.Timestamp(str(run["as_of"])).day == FULL_ON_DAY:
        return None
    with store.engine.connect() as conn:
        prev = conn.execute(sa.select(runs.c.run_id).where(
            (runs.c.status == "published") & (runs.c.kind == run["kind"]) & (runs.c.as_of < run["as_of"]))
            .order_by(runs.c.as_of.desc(), runs.c.run_id.desc()).limit(1)).scalar()
        if prev is None:
            return None
        agencies = set(conn.execute(sa.select(publications.c.agency_id).where(publications.c.run_id == prev)).scalars())
    path = store.run_dir(prev) / SNAPSHOT_FILE
    if not path.exists():
        return None
    return prev, pq.read_table(path), agencies


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
        state = {r.run_id: (r.status, r.as_of) for r in conn.execute(sa.select(runs.c.run_id, runs.c.status, runs.c.as_of))}
    for agency_dir in sorted(p for p in outbox.iterdir() if p.is_dir() and not p.is_symlink()):
        for entry in sorted(agency_dir.iterdir()):
            if not entry.is_dir() or entry.is_symlink():
                continue
            if entry.name.startswith(".staging-"):
                run_id = entry.name[len(".staging-"):]
                status, as_of = state.get(run_id, (None, None))
                if status == "published":
                    _swap_in(entry, agency_dir / run_id)
                    _write_pointer(agency_dir / "CURRENT", run_id, as_of)
                    notes.append(f"{agency_dir.name}/{run_id}: committed publication completed")
                else:
                    shutil.rmtree(entry)
                    unpublished.add(run_id)
                    notes.append(f"{agency_dir.name}/{run_id}: staged files of an unpublished run removed")
            elif entry.name.startswith(".old-"):   # a same-night delivery a killed swap left aside
                shutil.rmtree(entry)
    return notes, unpublished


def _fault_after() -> int | None:
    spec = os.environ.get(FAULT_ENV, "")
    if spec.startswith("publish:"):
        return int(spec.split(":", 1)[1])
    return None


def _artifact(store, sha: str) -> str:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(artifacts.c.content_json).where(artifacts.c.sha256 == sha)).scalar_one()
