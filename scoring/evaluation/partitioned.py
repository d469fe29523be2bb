"""A night's evaluation in entity-hash partitions.

The evaluation of one partition is a pure function of (that partition's entities and records, all
changes, catalogue, policy, as-of date): no entity's result depends on another's, so a province
evaluated in K pieces gives the same rows as in one, and the same canonical bytes once the pieces
are put in USCC order (tests/evaluation/test_partitioned.py checks K = 1, 4, 16). Memory is bounded
by the partition, not the province; the pieces may run in one process one after another (``credit
run``) or on different workers (the nightly DAG maps them with Airflow's ``.expand``).

Each piece is written under the run's folder atomically (temporary name, then rename), named by its
partition and the partition count, with the hash of the plan it belongs to: a retried or repeated
piece replaces its own file and a piece of another plan is never mixed in.
"""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from scoring.common.config import content_hash
from scoring.common.partitions import bucket_range
from scoring.evaluation import piece_files
from scoring.evaluation.canonical import canonical_lines, header, join_lines, write_chunks
from scoring.evaluation.evaluate import (
    CANONICAL_COLUMNS,
    Policy,
    active_entities,
    apply_changes,
    score_entities,
)
from scoring.evaluation.merge import iter_merged, write_merged
from scoring.evaluation.objections import objections_of_the_night
from scoring.history.harmonise import harmonised
from scoring.history.inputs import read_inputs
from scoring.quality import validate as quality

RECORDS_PER_PARTITION = (
    2_000_000  # ≈ 1.6 GB of a worker's memory per piece (3.75M records measured 2.9 GB)
)
# A night of at most RECORDS_PER_PARTITION records is evaluated by one process (the score step
# itself): still in pieces of at most this many records, one after another, so that the process
# holds a piece and not the night (300k entities, 930k records: 1.0 GB in one piece, 0.7 GB in
# four). One core either way, so the same time; forked workers would hold more (each carries
# pages of its parent copied on write).
RECORDS_PER_PIECE = 262_144
MAX_PARTITIONS = 256
PIECE_ROW_GROUP = 16_384
PIECES = ("entity_score", "active_entities", "canonical", "verdict")
COMPARE_COLUMNS = [
    "uscc",
    "name",
    "tier",
    "score",
    "override",
    "reasons",
]  # what a policy migration shows


def _records(batches: list[dict]) -> int:
    return sum(int(b.get("rows") or 0) for b in batches if b["table_name"] == "records")


def auto_partitions(batches: list[dict]) -> int:
    """Enough partitions that none holds more than RECORDS_PER_PARTITION records, or, for a night
    one process evaluates (``in_one_process``), more than RECORDS_PER_PIECE (a power of two)."""
    records = _records(batches)
    per = RECORDS_PER_PIECE if records <= RECORDS_PER_PARTITION else RECORDS_PER_PARTITION
    k = 1
    while k < MAX_PARTITIONS and records > k * per:
        k *= 2
    return k


def in_one_process(plan: dict) -> bool:
    """Whether a night sized by ``auto_partitions`` is evaluated here, piece after piece, rather
    than by worker processes."""
    return _records(plan["batches"]) <= RECORDS_PER_PARTITION


def make_plan(
    batches: list[dict],
    partitions: int,
    as_of: str,
    catalogue_sha256: str,
    policy_sha256: str,
    compare_policy: dict | None = None,
) -> dict:
    """What every piece of a night must agree on: the same batches, count, date and versions (and
    a previous policy to evaluate beside the night's, in a new policy's first month)."""
    plan = {
        "partitions": int(partitions),
        "as_of": str(as_of),
        "catalogue_sha256": catalogue_sha256,
        "policy_sha256": policy_sha256,
        "compare_policy": compare_policy,
        "batches": [
            {
                k: (str(v) if k == "known_from" else v)
                for k, v in b.items()
                if k in ("batch_id", "table_name", "path", "sha256", "rows", "known_from", "run_id")
            }
            for b in batches
        ],
    }
    plan["plan_sha256"] = content_hash(plan)
    return plan


def piece_path(folder: Path, plan: dict, partition: int, piece: str) -> Path:
    """Where a piece of a partition lives: an Arrow IPC file (``piece_files``), unless its name
    carries another suffix."""
    stem, _, suffix = piece.partition(".")
    return (
        Path(folder)
        / f"k{plan['partitions']}-{plan['plan_sha256'][:16]}"
        / f"{stem}-{partition:04d}.{suffix or piece_files.SUFFIX}"
    )


def _write_atomic(path: Path, frame: pd.DataFrame | pa.Table) -> None:
    table = (
        frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    )
    # Small batches: the night's merge holds one batch of every piece at a time.
    piece_files.write_table(path, table, PIECE_ROW_GROUP)


def write_piece(
    folder: Path, plan: dict, partition: int, piece: str, frame: pd.DataFrame | pa.Table
) -> None:
    """A piece of a partition, written atomically (another package's, e.g. the published rows)."""
    _write_atomic(piece_path(folder, plan, partition, piece), frame)


def evaluate_partition(
    store, plan: dict, partition: int, catalogue, policy, folder: Path, run_name: str = "partition"
) -> dict:
    """Evaluate one partition of a plan and write its pieces: results, active entities, their
    canonical lines, and its verdict under the entity_score contract; returns counts."""
    lo, hi = bucket_range(partition, plan["partitions"])
    ent, rec, chg = read_inputs(
        store, plan["batches"], buckets=(lo, hi), verified=True, lean=True, snapshot=True
    )
    if not len(ent):
        ent, rec = _empty_like_entities(store, plan), rec.iloc[:0] if len(rec) else rec
    applied = apply_changes(rec, chg, plan["as_of"])
    # Every piece in USCC order: the night merges them into the province's order by columns.
    results = _by_uscc(score_entities(ent, applied, catalogue, policy, plan["as_of"]))
    if plan.get("compare_policy"):
        old = _by_uscc(
            score_entities(
                ent, applied, catalogue, Policy.from_doc(plan["compare_policy"]), plan["as_of"]
            )
        )
        _write_atomic(piece_path(folder, plan, partition, "previous_policy"), old[COMPARE_COLUMNS])
    del applied
    # The contract and the canonical lines are made here, beside the evaluation, so that they too
    # are spread over the workers; the night only puts the pieces in order.
    verdict = (
        quality.validate_table(
            _gx(), "entity_score", results, catalogue, plan["as_of"], run_name, with_docs=False
        )
        if len(results)
        else None
    )
    table = pa.Table.from_pandas(results, preserve_index=False)
    lines = (
        pa.table({"uscc": table["uscc"], "line": canonical_lines(table, CANONICAL_COLUMNS)})
        if table.num_rows
        else pa.table({"uscc": pa.array([], pa.string()), "line": pa.array([], pa.large_string())})
    )
    counts = {
        "partition": partition,
        "partitions": plan["partitions"],
        "buckets": [lo, hi],
        "entities": int(len(ent)),
        "records": int(len(rec)),
        "scored": int(len(results)),
        "contract_rows_failed": int((verdict.reasons != "").sum()) if verdict else 0,
        "contract_success": bool(verdict.success) if verdict else True,
    }
    _write_atomic(piece_path(folder, plan, partition, "entity_score"), results)
    _write_atomic(
        piece_path(folder, plan, partition, "active_entities"),
        _by_uscc(active_entities(ent, plan["as_of"])[["uscc", "eval_class"]])
        if len(ent)
        else pd.DataFrame(
            {"uscc": pd.Series([], dtype="string"), "eval_class": pd.Series([], dtype="string")}
        ),
    )
    _write_atomic(piece_path(folder, plan, partition, "canonical"), lines)
    _write_atomic(
        piece_path(folder, plan, partition, "verdict"),
        pd.DataFrame([counts]).drop(columns=["buckets"]),
    )
    return counts


def _by_uscc(frame: pd.DataFrame) -> pd.DataFrame:
    if not len(frame) or frame["uscc"].is_monotonic_increasing:
        return frame
    return frame.sort_values("uscc", kind="stable", ignore_index=True)


def _worker(
    url: str,
    home: str,
    plan: dict,
    catalogue_doc: dict,
    policy_doc: dict,
    folder: str,
    partition: int,
    run_name: str,
    after=None,
) -> dict:
    """One partition in a worker process (top level, so a spawned process can import it; a forked
    one opens its own database connections all the same);
    ``after(store, plan, partition, catalogue, folder, run_name)`` makes the caller's own pieces from it."""
    from scoring.common.catalogue import Catalogue
    from scoring.history.store import Store

    store = Store.open(url, Path(home), migrate_schema=False)
    catalogue = Catalogue.from_doc(catalogue_doc)
    out = evaluate_partition(
        store, plan, partition, catalogue, Policy.from_doc(policy_doc), Path(folder), run_name
    )
    if after is not None:
        after(store, plan, partition, catalogue, Path(folder), run_name)
    return {**out, "peak_rss_gb": own_peak_rss_gb()}


def own_peak_rss_gb() -> float:
    """This process's own peak resident memory (VmHWM: unlike ru_maxrss, a spawned worker does
    not inherit its parent's high-water mark through fork and exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 3)
    except OSError:
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024, 3)


def evaluate_partitions(
    store,
    plan: dict,
    catalogue,
    policy,
    folder: Path,
    run_name: str = "partition",
    workers: int | None = None,
    say=lambda _m: None,
    after=None,
    after_pieces: tuple[str, ...] = (),
) -> float:
    """Evaluate every partition whose pieces are missing: in this process, or in ``workers``
    processes (default CREDIT_WORKERS, else one per core). Any order gives the same pieces.
    ``after`` (a top-level function, run in the worker) writes ``after_pieces`` of its own.
    Returns the largest worker process's peak memory in GB (0 when evaluated in this process)."""
    import multiprocessing as mp

    missing = missing_partitions(plan, folder, after_pieces)
    workers = min(
        len(missing), int(workers or os.environ.get("CREDIT_WORKERS") or os.cpu_count() or 1)
    )
    # A daemonic process (a Celery pool child, and the task it runs) may not have children: there
    # the missing pieces are evaluated here, one after another (the orchestrator's own mapped
    # tasks are what spread a night over workers).
    if workers <= 1 or mp.current_process().daemon:
        for p in missing:
            out = evaluate_partition(store, plan, p, catalogue, policy, folder, run_name)
            if after is not None:
                after(store, plan, p, catalogue, folder, run_name)
            say(
                f"partition {p + 1}/{plan['partitions']}: {out['entities']:,} entities, {out['records']:,} records"
            )
        return 0.0
    from concurrent.futures import ProcessPoolExecutor, as_completed

    peak = 0.0
    # Forked workers start with the night's modules loaded (Great Expectations alone takes 15-20 s
    # to import here, per process); CREDIT_WORKER_START=spawn for a clean interpreter each.
    method = os.environ.get("CREDIT_WORKER_START") or (
        "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    )
    if method == "fork":
        _gx()  # once, before forking: every worker inherits the context
        # The parent's objects out of the collector's reach: a collection in a worker would
        # otherwise write to every inherited object and copy the parent's heap page by page.
        gc.freeze()
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context(method)) as pool:
        futures = [
            pool.submit(
                _worker,
                store.url,
                str(store.home),
                plan,
                catalogue.doc,
                policy.doc,
                str(folder),
                p,
                run_name,
                after,
            )
            for p in missing
        ]
        for fut in as_completed(futures):
            out = fut.result()
            peak = max(peak, out["peak_rss_gb"])
            say(
                f"partition {out['partition'] + 1}/{plan['partitions']}: {out['entities']:,} entities, "
                f"{out['records']:,} records ({workers} worker processes)"
            )
    return peak


_GX = []


def _gx():
    """One GX context per process (its set-up costs seconds; validations replace their own suites)."""
    if not _GX:
        _GX.append(quality.gx_context(None))
    return _GX[0]


def _empty_like_entities(store, plan: dict) -> pd.DataFrame:
    """An empty register with the stored columns (a partition that no entity hashes to)."""
    ent_batches = [b for b in plan["batches"] if b["table_name"] == "entities"]
    if not ent_batches:
        return pd.DataFrame()
    schema = pq.read_schema(store.lake / ent_batches[0]["path"])
    return schema.empty_table().to_pandas().drop(columns=["part_bucket"], errors="ignore")


def objections(store, batches: list[dict], as_of) -> pd.DataFrame:
    """Where every objection stands on the as-of date (the night's, not a partition's: changes are
    few), with the provider and item of each record it names, read by key from the stored records
    (the item decides the severe-list and court-listing deadlines). The one answer the run report
    and the console both give."""
    chg = store.read_batches([b for b in batches if b["table_name"] == "changes"], verified=True)
    keys = sorted(set(chg["record_key"].dropna())) if len(chg) and "record_key" in chg else []
    rec = (
        store.read_batches(
            [b for b in batches if b["table_name"] == "records"],
            columns=["record_key", "provider", "item_code"],
            where_in=("record_key", keys),
            verified=True,
        )
        if keys
        else pd.DataFrame()
    )
    return objections_of_the_night(rec, chg, as_of)


def missing_partitions(plan: dict, folder: Path, extra: tuple[str, ...] = ()) -> list[int]:
    pieces = PIECES + (("previous_policy",) if plan.get("compare_policy") else ()) + tuple(extra)
    return [
        p
        for p in range(plan["partitions"])
        if not all(piece_path(folder, plan, p, n).exists() for n in pieces)
    ]


def assemble_table(plan: dict, folder: Path, piece: str, sort_by: str | None = "uscc") -> pa.Table:
    """The pieces of all partitions as one Arrow table in key order (the order K = 1 gives)."""
    tables = [
        piece_files.read_table(piece_path(folder, plan, p, piece))
        for p in range(plan["partitions"])
    ]
    t = (
        pa.concat_tables(harmonised(tables), promote_options="permissive")
        if len(tables) > 1
        else tables[0]
    )
    if sort_by and len(tables) > 1 and t.num_rows:
        t = t.take(pc.sort_indices(t, sort_keys=[(sort_by, "ascending")]))
    return t


def assemble(plan: dict, folder: Path, piece: str, sort_by: str | None = "uscc") -> pd.DataFrame:
    """The same as a frame, with categories in sorted order whatever order the pieces met them in."""
    t = assemble_table(plan, folder, piece, sort_by)
    out = t.to_pandas()
    for col in out.columns:
        if pa.types.is_dictionary(t.schema.field(col).type):
            out[col] = out[col].cat.set_categories(sorted(out[col].cat.categories, key=str))
    return out


def piece_paths(plan: dict, folder: Path, piece: str) -> list[Path]:
    return [piece_path(folder, plan, p, piece) for p in range(plan["partitions"])]


def canonical_sha256(plan: dict, folder: Path, path: Path | None = None) -> str:
    """The night's output hash from the partitions' canonical lines, merged into USCC order
    chunk by chunk (the province's CSV is never held whole)."""

    def chunks():
        yield header(CANONICAL_COLUMNS)
        for t in iter_merged(piece_paths(plan, folder, "canonical"), "uscc", ["line"]):
            yield join_lines(t["line"].combine_chunks())

    return write_chunks(chunks(), path)


def write_assembled(plan: dict, folder: Path, piece: str, dest: Path) -> int:
    """The pieces of all partitions as one Parquet file in USCC order, merged chunk by chunk: the
    same rows and pandas types as ``assemble`` gives, without holding the province. Returns rows."""
    return write_merged(piece_paths(plan, folder, piece), "uscc", dest)


def write_plan(folder: Path, plan: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "plan.json"
    tmp = path.with_name(f"plan.json.tmp{os.getpid()}")
    tmp.write_text(json.dumps(plan, ensure_ascii=False, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_plan(folder: Path) -> dict | None:
    path = folder / "plan.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
