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

import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from scoring.common.config import content_hash
from scoring.common.partitions import bucket_range
from scoring.evaluation.evaluate import Policy, active_entities, apply_changes, score_entities
from scoring.evaluation.objections import objections_of_the_night
from scoring.history.inputs import read_inputs

RECORDS_PER_PARTITION = 4_000_000  # ~1.5 GB of working memory per piece
MAX_PARTITIONS = 256
PIECES = ("entity_score", "active_entities")
COMPARE_COLUMNS = ["uscc", "name", "tier", "score", "override", "reasons"]  # what a policy migration shows


def auto_partitions(batches: list[dict]) -> int:
    """Enough partitions that none holds more than RECORDS_PER_PARTITION records (a power of two)."""
    records = sum(int(b.get("rows") or 0) for b in batches if b["table_name"] == "records")
    k = 1
    while k < MAX_PARTITIONS and records > k * RECORDS_PER_PARTITION:
        k *= 2
    return k


def make_plan(batches: list[dict], partitions: int, as_of: str, catalogue_sha256: str, policy_sha256: str,
              compare_policy: dict | None = None) -> dict:
    """What every piece of a night must agree on: the same batches, count, date and versions (and
    a previous policy to evaluate beside the night's, in a new policy's first month)."""
    plan = {"partitions": int(partitions), "as_of": str(as_of), "catalogue_sha256": catalogue_sha256,
            "policy_sha256": policy_sha256, "compare_policy": compare_policy,
            "batches": [{k: (str(v) if k == "known_from" else v) for k, v in b.items()
                         if k in ("batch_id", "table_name", "path", "sha256", "rows", "known_from", "run_id")}
                        for b in batches]}
    plan["plan_sha256"] = content_hash(plan)
    return plan


def piece_path(folder: Path, plan: dict, partition: int, piece: str) -> Path:
    return Path(folder) / f"k{plan['partitions']}-{plan['plan_sha256'][:16]}" / f"{piece}-{partition:04d}.parquet"


def _write_atomic(path: Path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp, compression="zstd")
    os.replace(tmp, path)


def evaluate_partition(store, plan: dict, partition: int, catalogue, policy, folder: Path) -> dict:
    """Evaluate one partition of a plan and write its pieces; returns counts."""
    lo, hi = bucket_range(partition, plan["partitions"])
    ent, rec, chg = read_inputs(store, plan["batches"], buckets=(lo, hi), verified=True)
    if not len(ent):
        ent, rec = _empty_like_entities(store, plan), rec.iloc[:0] if len(rec) else rec
    applied = apply_changes(rec, chg, plan["as_of"])
    results = score_entities(ent, applied, catalogue, policy, plan["as_of"])
    if plan.get("compare_policy"):
        old = score_entities(ent, applied, catalogue, Policy.from_doc(plan["compare_policy"]), plan["as_of"])
        _write_atomic(piece_path(folder, plan, partition, "previous_policy"), old[COMPARE_COLUMNS])
    del applied
    pieces = {"entity_score": results,
              "active_entities": active_entities(ent, plan["as_of"])[["uscc", "eval_class"]] if len(ent)
              else pd.DataFrame({"uscc": pd.Series([], dtype="string"), "eval_class": pd.Series([], dtype="string")})}
    for name, frame in pieces.items():
        _write_atomic(piece_path(folder, plan, partition, name), frame)
    return {"partition": partition, "partitions": plan["partitions"], "buckets": [lo, hi],
            "entities": int(len(ent)), "records": int(len(rec)), "scored": int(len(results))}


def _empty_like_entities(store, plan: dict) -> pd.DataFrame:
    """An empty register with the stored columns (a partition that no entity hashes to)."""
    ent_batches = [b for b in plan["batches"] if b["table_name"] == "entities"]
    if not ent_batches:
        return pd.DataFrame()
    schema = pq.read_schema(store.lake / ent_batches[0]["path"])
    return schema.empty_table().to_pandas().drop(columns=["part_bucket"], errors="ignore")


def objections(store, batches: list[dict], as_of) -> pd.DataFrame:
    """Where every objection stands on the as-of date (the night's, not a partition's: changes are
    few), with the provider of each record it names, read by key from the stored records."""
    chg = store.read_batches([b for b in batches if b["table_name"] == "changes"], verified=True)
    keys = sorted(set(chg["record_key"].dropna())) if len(chg) and "record_key" in chg else []
    rec = store.read_batches([b for b in batches if b["table_name"] == "records"], columns=["record_key", "provider"],
                             where_in=("record_key", keys), verified=True) if keys else pd.DataFrame()
    return objections_of_the_night(rec, chg, as_of)


def missing_partitions(plan: dict, folder: Path) -> list[int]:
    pieces = PIECES + (("previous_policy",) if plan.get("compare_policy") else ())
    return [p for p in range(plan["partitions"])
            if not all(piece_path(folder, plan, p, n).exists() for n in pieces)]


def assemble(plan: dict, folder: Path, piece: str, sort_by: str | None = "uscc") -> pd.DataFrame:
    """The pieces of all partitions as one frame, in key order (the order K = 1 gives)."""
    frames = [pd.read_parquet(piece_path(folder, plan, p, piece)) for p in range(plan["partitions"])]
    frames = [f for f in frames if len(f)] or frames[:1]
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    for col in out.columns:  # pieces with different category sets concatenate to strings: same for any K
        if any(isinstance(f[col].dtype, pd.CategoricalDtype) for f in frames) and \
                not isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype("category")
    if isinstance(out.columns, pd.Index) and sort_by and sort_by in out.columns and len(frames) > 1:
        out = out.sort_values(sort_by, kind="stable", ignore_index=True)
    return _normalise_categories(out)


def _normalise_categories(frame: pd.DataFrame) -> pd.DataFrame:
    """Categories in sorted order, whatever order the pieces met them in."""
    out = frame.copy(deep=False)
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            cats = out[col].cat.categories
            out[col] = out[col].cat.set_categories(sorted(cats, key=str))
    return out


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
