"""Publication of a run's results to supervisory agencies: one outbox folder per agency and run.

Each agency receives only the entities in its scope. Files are written into a temporary folder,
synced, and renamed into place in one step, so an agency never sees half a night; publishing the
same run again writes identical bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
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
from scoring.publication.access import LOCK_TIMEOUT, ensure_access_control
from scoring.publication.delivery import (
    CHUNK_ROWS,
    BaseReader,
    ScopeFiles,
    csv_table,
    delta_against,
    in_scope,  # noqa: F401 - re-exported: where agencies' scopes are applied
    manifest_bytes,
    neutralise_formulas,  # noqa: F401 - re-exported
    scope_key,
)
from scoring.publication.free_text import mask_text_columns
from scoring.publication.masking import (
    check_rules,
    mask_personal_data,
    positive_optouts,
    withhold_positive,
)
from scoring.publication.nights import supersede_others
from scoring.publication.outbox import (
    FAULT_ENV,
    checked_path,
    claim_outbox,
    fault_after,
    fsync_dir,
    fsync_write,
    kill_point,
    link_or_copy,
    recover_publications,  # noqa: F401 - re-exported: the pipeline calls it
    stage_dir,
    store_identity,
    swap_in,
    write_outbox,  # noqa: F401 - re-exported: sampling writes its files with it
    write_pointer,
)

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
LOCK_TRIES = 3  # the publishing transaction, tried again when a lock was not granted in time


def load_agencies(path: Path | str = DEFAULT_AGENCIES) -> list[dict]:
    doc = load_document(path)
    agencies = sorted(doc["agencies"], key=lambda a: a["id"])
    ids = [a["id"] for a in agencies]
    if len(ids) != len(set(ids)):
        raise ValueError("agency registry: duplicate ids")
    return agencies


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


def publish_run(store, run_id: str, agencies: list[dict] | None = None, progress=None) -> dict:
    """Deliver a scored run to every agency. Files first (each agency folder appears whole), then
    one database transaction makes the run the published one, then the CURRENT pointers move.
    The published table is read in USCC-ordered chunks beside the base publication's (for the
    deltas), and every scope's files are written chunk by chunk: memory is a chunk, not a province."""
    agencies = agencies or load_agencies()
    outbox = checked_path(store.home, store.home / "outbox")
    claim_outbox(outbox, store_identity(store.home, store.url, store.lake.name))
    with store.engine.connect() as conn:
        run = dict(conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()._mapping)
        manifest = json.loads(run["manifest_json"])
        source = _published_file(store, conn, run, manifest)
    base = _delta_base(store, run)
    fail_after = fault_after()
    allowed = [a for a in (agencies if fail_after is None else agencies[:fail_after])]
    build = checked_path(store.home, store.run_dir(run_id) / ".publication")
    shutil.rmtree(build, ignore_errors=True)
    rows, delivered, written = [], [], []
    committed = False
    try:
        sets, kind_of = _write_scope_files(source, base, allowed, build, progress)
        for n, agency in enumerate(allowed, start=1):
            files = sets[(scope_key(agency), kind_of[agency["id"]])]
            base_run = base[0] if files.kind == "delta" else None
            staged = stage_dir(outbox, agency["id"], run_id)
            written.append(staged)
            rows += _stage_agency(store.home, outbox, agency, run, files, base_run, staged)
            kill_point("staged", n)
            delivered.append(str(outbox / agency["id"] / run_id))
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
        _commit_publication(store, run_id, rows, agencies)
        committed = True
    except BaseException:
        # Nothing of this attempt was visible: its staged folders go. (Killed here, the next run
        # removes them and closes the run as failed: recover_publications.)
        if not committed:
            for staged in written:
                if not staged.is_symlink():
                    shutil.rmtree(staged, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(build, ignore_errors=True)
    # The commit is the publication; the files follow it, one rename per agency. (Killed during
    # these renames, the next run finishes them: the database already says published.)
    for i, agency in enumerate(agencies, start=1):
        swap_in(stage_dir(outbox, agency["id"], run_id), outbox / agency["id"] / run_id)
        kill_point("swapped", i)
    for agency in agencies:
        write_pointer(outbox / agency["id"] / "CURRENT", run_id, run["as_of"])
    return {"run_id": run_id, "published": delivered, "registry_sha256": content_hash(agencies)}


def _write_scope_files(source: Path, base, allowed: list[dict], build: Path, progress):
    """Every distinct (scope, kind)'s files, written chunk by chunk under ``build``; agencies of
    the same scope share their bytes. Returns the files by key and each agency's kind."""
    schema = pq.read_schema(source).remove_metadata()
    csv_schema = csv_table(schema.empty_table()).schema
    base_agencies = base[2] if base else set()
    kind_of = {a["id"]: ("delta" if base and a["id"] in base_agencies else "full") for a in allowed}
    sets: dict[tuple, ScopeFiles] = {}
    for agency in allowed:
        key = (scope_key(agency), kind_of[agency["id"]])
        if key not in sets:
            sets[key] = ScopeFiles(build / f"{len(sets):03d}", agency, key[1], schema, csv_schema)
    reader = BaseReader(base[1], pq.read_schema(base[1]).remove_metadata()) if base else None
    pf = pq.ParquetFile(source)
    total, seen = pf.metadata.num_rows, 0
    chunks = (
        (pa.Table.from_batches([b]) for b in pf.iter_batches(batch_size=CHUNK_ROWS))
        if total
        else iter([schema.empty_table()])
    )
    # Arrow releases the GIL: two scopes are written at once while the next chunk's delta and CSV
    # fields are made; a scope's chunks are still written in order (one chunk in flight).
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
    return sets, kind_of


def _stage_agency(home, outbox, agency, run, files, base_run, staged) -> list[dict]:
    """One agency's delivery in its hidden staging folder (never through a link), synced; returns
    its ``publications`` rows."""
    checked_path(home, staged)
    if staged.exists():
        shutil.rmtree(staged)
    staged.mkdir(parents=True)
    manifest = manifest_bytes(agency, run, files, base_run)
    for name in files.info:
        link_or_copy(files.folder / name, staged / name)
    fsync_write(staged / "manifest.json", manifest)
    fsync_dir(staged)
    folder = outbox / agency["id"] / run["run_id"]
    shas = {
        **{name: f["sha256"] for name, f in files.info.items()},
        "manifest.json": hashlib.sha256(manifest).hexdigest(),
    }
    return [
        {
            "run_id": run["run_id"],
            "agency_id": agency["id"],
            "path": (folder / name).relative_to(outbox).as_posix(),
            "rows": files.rows,
            "sha256": shas[name],
        }
        for name in sorted(shas)
    ]


def _commit_publication(store, run_id: str, rows: list[dict], agencies: list[dict]) -> None:
    """The transaction that publishes: deliveries, agencies' access, the run's status, the night's
    other attempt superseded. Its statements wait at most ``LOCK_TIMEOUT`` for a lock (none of
    them needs one an agency's read holds; the wait bounds anything else), and it is tried again
    a few times before failing with one line."""
    for attempt in range(1, LOCK_TRIES + 1):
        try:
            with store.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                conn.execute(sa.delete(publications).where(publications.c.run_id == run_id))
                store.insert_frame(conn, publications, pd.DataFrame(rows))
                ensure_access_control(conn, agencies)
                conn.execute(
                    sa.update(runs)
                    .where(runs.c.run_id == run_id)
                    .values(status="published", step="publish")
                )
                supersede_others(conn, run_id)  # a re-run replaces its night here, at once
            return
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
                raise
            if attempt == LOCK_TRIES:
                raise RuntimeError(
                    f"publish {run_id}: a lock was not granted within {LOCK_TIMEOUT} "
                    f"({LOCK_TRIES} tries); nothing was published, run the night again"
                ) from None
            time.sleep(attempt)


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


def _artifact(store, sha: str) -> str:
    with store.engine.connect() as conn:
        return conn.execute(
            sa.select(artifacts.c.content_json).where(artifacts.c.sha256 == sha)
        ).scalar_one()
