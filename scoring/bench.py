"""Benchmarks (``make bench``): figures printed, targets compared, ratios against a baseline
measured in the same run. Never part of the test suite.

    python -m scoring.bench [--only gate,score] [--rows 1000000] [--entities 3000000]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from scoring import pipeline
from scoring.audit.rerun import rerun
from scoring.calibration.learner import PolicyLearner
from scoring.calibration.training import CANDIDATE_SIGNALS
from scoring.common import codes
from scoring.common.catalogue import Catalogue
from scoring.common.config import canonical_json
from scoring.evaluation.evaluate import Policy, classify_records, score_entities
from scoring.history.store import (
    Store,
    entity_results,
    record_batches,
    runs,
    sha256_file,
)
from scoring.history.store import write_parquet as _write_parquet
from scoring.intake import ingest
from scoring.publication.publish import load_agencies, publish_run
from scoring.quality import validate as quality
from scoring.world.province import build_world, delivery_frames, inject_defects


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def _line(name: str, value: str, target: str = "", ok: bool | None = None) -> None:
    mark = "" if ok is None else ("  OK" if ok else "  MISSED")
    print(f"  {name:<44} {value:>16}   {target}{mark}", flush=True)


def make_penalty_file(path: Path, rows: int, seed: int = 1) -> None:
    """A 双公示 penalty CSV of ``rows`` rows, tiled from a demo province's penalty feed."""
    cat = Catalogue.load()
    world = build_world(int(min(60_000, max(5_000, rows))), seed)
    rng = np.random.default_rng(seed)
    frames = delivery_frames(world, cat, None, pd.Timestamp("2026-06-30"), rng)
    pen = pd.concat(
        [f for (p, feed), f in sorted(frames.items()) if feed == "penalty"], ignore_index=True
    )
    reps = -(-rows // len(pen))
    big = pd.concat([pen] * reps, ignore_index=True).iloc[:rows].copy()
    big["行政处罚决定书文号"] = (
        big["行政处罚决定书文号"] + "-" + (np.arange(rows) // len(pen)).astype(str)
    )
    big, _ = inject_defects(big, "sgs_penalty", 0.02, rng, pd.Timestamp("2026-06-30"))
    big.to_csv(path, index=False, encoding="utf-8-sig")


def bench_gate(rows: int) -> None:
    print(f"\n[gate] validating {rows:,} 双公示 penalty rows (read + stage + GX suite stg_record)")
    cat = Catalogue.load()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "20260630_penalty.csv"
        t = time.perf_counter()
        make_penalty_file(path, rows)
        _line("generate input file", f"{time.perf_counter() - t:.1f} s")
        gx = quality.gx_context(None)  # one-off import and set-up, paid once per process
        t0 = time.perf_counter()
        raw = ingest.read_file(path, provider="samr")
        t1 = time.perf_counter()
        stg = ingest.stage_records(raw, cat, pd.Timestamp("2026-06-30"))
        stg["record_key"] = ingest.record_key(stg)
        stg["seen_before"] = False
        stg["registered_date"] = pd.Series(pd.NaT, index=stg.index, dtype="datetime64[s]")
        t2 = time.perf_counter()
        v = quality.validate_table(
            gx, "stg_record", stg, cat, "2026-06-30", "bench", with_docs=False
        )
        t3 = time.perf_counter()
    quarantined = int((v.reasons != "").sum()) + len(raw.bad_rows)
    _line("read (encoding, layout, csv)", f"{t1 - t0:.1f} s")
    _line("stage (typing, canonical columns)", f"{t2 - t1:.1f} s")
    _line("GX validation (13 expectations)", f"{t3 - t2:.1f} s")
    total = t3 - t0
    _line("gating total", f"{total:.1f} s", "target <= 60 s", total <= 60)
    _line("throughput", f"{rows / total:,.0f} rows/s")
    _line("rows quarantined", f"{quarantined:,}")
    # Baseline in the same run: per-row Python check digits against the vectorised ones.
    sample = stg["uscc"].dropna().to_numpy(dtype=object)[:200_000]
    t = time.perf_counter()
    vec = codes.valid_uscc(sample)
    t_vec = time.perf_counter() - t
    t = time.perf_counter()
    loop = np.array([bool(codes.valid_uscc([c])[0]) for c in sample[:20_000]])
    t_loop = (time.perf_counter() - t) * len(sample) / 20_000
    assert (loop == vec[:20_000]).all()
    _line("USCC checks, vectorised", f"{len(sample) / t_vec:,.0f} /s")
    _line("USCC checks, per row (baseline)", f"{len(sample) / t_loop:,.0f} /s")
    _line("vectorised / per-row", f"{t_loop / t_vec:,.0f}x")
    _line("peak RSS so far", f"{_rss_gb():.2f} GB")


def synthetic_entities(n_entities: int, rng: np.random.Generator) -> pd.DataFrame:
    """The register of a synthetic province (its first draws from ``rng``)."""
    body = (np.arange(n_entities, dtype=np.int64) * 7_919_333 + 10_007) % 100_000_000
    digits = (body[:, None] // (10 ** np.arange(7, -1, -1))) % 10
    div = np.array(["230102", "230103", "230602", "231202", "230623"])[
        rng.integers(0, 5, n_entities)
    ]
    uscc = codes.make_uscc(np.full(n_entities, "9"), np.full(n_entities, "1"), div, digits)
    return pd.DataFrame(
        {
            "uscc": pd.array(uscc, dtype="string"),
            "subject_name": pd.array(np.full(n_entities, "某公司"), dtype="string"),
            "division_code": div,
            "industry": np.array(list("CEFGH"))[rng.integers(0, 5, n_entities)],
            "eval_class": "legal_person",
            "entity_status": "存续",
            "registered_date": pd.Timestamp("2015-01-01"),
        }
    )


@functools.lru_cache(maxsize=1)
def _item_codes() -> tuple[tuple[str, ...], np.ndarray]:
    """The record items and their weights (read once: every chunk of records needs them)."""
    cat = Catalogue.load()
    item_codes = tuple(i["code"] for i in cat.items if i["code"] != "REG_BASIC")
    weights = np.array(
        [8 if c in ("LICENCE", "COMMITMENT", "INSPECTION_PASS") else 1 for c in item_codes], float
    )
    p = weights / weights.sum()
    p.setflags(write=False)
    return item_codes, p


def record_draws(
    n_entities: int, n_records: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Every random draw of the records, column after column as they were always drawn (so the
    records are the same at every size), kept compact: ~11 bytes a record (1.1 GB at 100M) where
    the frame of all records would need tens of GB. Frames are cut from it a chunk at a time."""
    _, p = _item_codes()
    small = np.int32 if n_entities < 2**31 else np.int64
    return {
        "entity": rng.integers(0, n_entities, n_records).astype(small),
        "decision_day": rng.integers(0, 1460, n_records).astype(np.int16),
        "item": rng.choice(len(p), n_records, p=p).astype(np.int8),
        "publicity_days": rng.integers(90, 1100, n_records).astype(np.int16),
        "repaired": rng.random(n_records) < 0.02,
        "objection_pending": rng.random(n_records) < 0.005,
    }


def records_frame(
    uscc: pd.Series, draws: dict[str, np.ndarray], lo: int = 0, hi: int | None = None
) -> pd.DataFrame:
    """Records ``lo:hi`` of the province as a frame."""
    item_codes, _ = _item_codes()
    d = {k: v[lo:hi] for k, v in draws.items()}
    n = len(d["entity"])
    dec = np.datetime64("2022-07-01") + d["decision_day"].astype(np.int64).astype("timedelta64[D]")
    return pd.DataFrame(
        {
            "uscc": uscc.take(d["entity"]).reset_index(drop=True),
            "item_code": pd.Categorical.from_codes(d["item"], categories=list(item_codes)),
            "subject_type": pd.Categorical.from_codes(
                np.zeros(n, dtype=np.int8), categories=["legal"]
            ),
            "decision_date": dec,
            "publicity_end_date": dec
            + d["publicity_days"].astype(np.int64).astype("timedelta64[D]"),
            "valid_to_date": dec + 1825,
            "repaired_date": np.where(d["repaired"], dec + 200, np.datetime64("NaT")),
            "objection_pending": d["objection_pending"],
        }
    )


def synthetic_province(n_entities: int, n_records: int, seed: int = 5):
    """Entities and records straight in memory (no files): the scoring engine's inputs at scale."""
    rng = np.random.default_rng(seed)
    ent = synthetic_entities(n_entities, rng)
    return ent, records_frame(ent["uscc"], record_draws(n_entities, n_records, rng))


def record_chunks(n_entities: int, n_records: int, chunks: int, seed: int = 5):
    """The register, and the records of ``synthetic_province`` (the same rows, in order) as
    ``chunks`` frames of near-equal size, one made at a time: ``(entities, iterator of (first
    record's position, frame))``."""
    rng = np.random.default_rng(seed)
    ent = synthetic_entities(n_entities, rng)
    draws = record_draws(n_entities, n_records, rng)
    size = -(-n_records // max(1, chunks)) if n_records else 1

    def frames():
        for lo in range(0, n_records, size):
            yield lo, records_frame(ent["uscc"], draws, lo, lo + size)

    return ent, frames()


def naive_scores(ent: pd.DataFrame, rec: pd.DataFrame, cat, pol, as_of) -> pd.DataFrame:
    """The baseline: the same policy written the obvious way, a Python function per entity."""
    cls = classify_records(rec, cat, pol, as_of)
    cls = cls[cls["counts"]]
    items = pol.items_frame().set_index("item_code")
    bounds = {d["id"]: (d["min"], d["max"]) for d in pol.doc["dimensions"]}

    def one(g):
        dims = {d: 0.0 for d in bounds}
        for r in g.itertuples():
            dims[items.at[r.item_code, "dimension"]] += r.points
        total = pol.doc["scale"]["base"] + sum(
            min(max(v, bounds[d][0]), bounds[d][1]) for d, v in dims.items()
        )
        score = int(np.floor(min(max(total, 0), 1000) + 0.5))
        tier = next(t["tier"] for t in pol.doc["tiers"] if score >= t["min_score"])
        if set(g["item_code"]) & set(pol.doc["overrides"]["severe_list_items"]):
            tier = "D"
        by_item = (
            g.groupby("item_code", observed=True)["points"].sum().abs().sort_values(ascending=False)
        )
        return pd.Series({"score": score, "tier": tier, "top": ",".join(by_item.index[:3])})

    return cls.groupby("uscc", observed=True).apply(one, include_groups=False)


def bench_score(n_entities: int, n_records: int) -> None:
    print(
        f"\n[score] composite evaluation with reasons: {n_entities:,} entities, {n_records:,} records"
    )
    cat, pol = Catalogue.load(), Policy.load()
    t = time.perf_counter()
    ent, rec = synthetic_province(n_entities, n_records)
    _line("build inputs in memory", f"{time.perf_counter() - t:.1f} s")
    _line("RSS with inputs loaded", f"{_rss_gb():.2f} GB")
    t = time.perf_counter()
    res = score_entities(ent, rec, cat, pol, "2026-06-30")
    t_fast = time.perf_counter() - t
    _row(
        f"scoring core with reasons, {n_entities:,} entities in memory",
        f"{t_fast:.1f} s",
        "<= 30 s",
        t_fast <= 30,
    )
    _line("peak RSS", f"{_rss_gb():.2f} GB", "target <= 8 GB", _rss_gb() <= 8)
    _line(
        "tiers", " ".join(f"{k}={v:,}" for k, v in res["tier"].value_counts().sort_index().items())
    )
    # Baseline on a sample (the naive version would take hours at full scale), per entity.
    sample_ent = ent.iloc[:20_000]
    sample_rec = rec[rec["uscc"].isin(set(sample_ent["uscc"]))]
    t = time.perf_counter()
    naive = naive_scores(sample_ent, sample_rec, cat, pol, "2026-06-30")
    t_naive = time.perf_counter() - t
    t = time.perf_counter()
    fast = score_entities(sample_ent, sample_rec, cat, pol, "2026-06-30").set_index("uscc")
    t_fast_sample = time.perf_counter() - t
    same = (
        fast.loc[naive.index, "score"].to_numpy() == naive["score"].to_numpy().astype(int)
    ).all()
    per_naive = t_naive / len(naive)
    _line(
        "naive group-by/apply, 20k-entity sample",
        f"{t_naive:.1f} s",
        f"scores identical: {bool(same)}",
    )
    _line("naive extrapolated to the province", f"{per_naive * n_entities:,.0f} s")
    _row(
        "scoring core vs the naive group-by/apply baseline (same run)",
        f"{per_naive * n_entities / t_fast:,.0f}x",
        ">= 20x",
        per_naive * n_entities / t_fast >= 20,
    )
    _line("speed-up vs naive (same 20k sample)", f"{t_naive / t_fast_sample:,.0f}x")


def _store_province(store, ent: pd.DataFrame, rec: pd.DataFrame | None, as_of: str) -> None:
    """Put a synthetic province into a store as one accepted batch per table, like a first run."""
    ent = ent.assign(
        entity_type="有限责任公司",
        legal_rep_name="张三",
        legal_rep_id_number="230102198001010129",
        phone="13812345678",
        known_from=pd.Timestamp(as_of),
        source_file="bench",
        line_no=0,
    )
    tables = [("entities", ent)]
    if rec is not None:
        doc = pd.Series(np.arange(len(rec)), dtype="int64").astype("string")
        tables.append(
            (
                "records",
                rec.assign(
                    doc_number=doc,
                    record_key=(doc + "|" + rec["uscc"]).astype("string"),
                    known_from=pd.Timestamp(as_of),
                    source_file="bench",
                    line_no=0,
                ),
            )
        )
    batches = [store.write_batch("bench-0", t, f, as_of) for t, f in tables]
    with store.engine.begin() as conn:
        store.insert_frame(conn, record_batches, pd.DataFrame(batches))


@contextlib.contextmanager
def _scratch_database(server_url: str | None):
    """A throw-away database on the given PostgreSQL server (None: nothing)."""
    if not server_url:
        yield None
        return

    name = f"credit_bench_{os.getpid()}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        print(
            f"  (no PostgreSQL at {server_url}: {type(exc).__name__}; publishing to SQLite instead)"
        )
        yield None
        return
    try:
        yield (
            sa.engine.make_url(server_url).set(database=name).render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def bench_rerun_and_publish(n_entities: int, n_records: int, pg_url: str | None) -> None:

    print(f"\n[rerun, publish] {n_entities:,} entities, {n_records:,} records through the store")
    as_of = "2026-06-30"
    with tempfile.TemporaryDirectory() as tmp, _scratch_database(pg_url) as scratch:
        url = scratch or f"sqlite:///{tmp}/bench.db"
        store = Store.open(url, Path(tmp))
        t = time.perf_counter()
        ent, rec = synthetic_province(n_entities, n_records)
        _store_province(store, ent, rec, as_of)
        del ent, rec
        _line("write the province as Parquet batches", f"{time.perf_counter() - t:.1f} s")
        ctx = pipeline.RunContext(as_of=as_of, landing=Path(tmp), home=Path(tmp), db_url=url)
        with store.engine.begin() as conn:
            conn.execute(
                runs.insert().values(
                    run_id=ctx.run_id,
                    kind="nightly",
                    as_of=ctx.as_of,
                    knowledge_cutoff=ctx.knowledge_cutoff,
                    status="running",
                )
            )
        t = time.perf_counter()
        pipeline.score(ctx)
        t_score = time.perf_counter() - t
        _line("original run: load + score + contract + store", f"{t_score:.1f} s")
        t = time.perf_counter()
        out = rerun(ctx.run_id, "as-known-then", db_url=url, home=Path(tmp))
        t_rerun = time.perf_counter() - t
        _line(
            "audit rerun as known then",
            f"{t_rerun:.1f} s",
            f"identical: {out['identical']}",
            t_rerun <= t_score,
        )
        t = time.perf_counter()
        pipeline.publish(ctx)
        t_pub = time.perf_counter() - t
        _line(
            f"publish to {store.engine.dialect.name} + 12 agencies' files",
            f"{t_pub:.1f} s",
            "target <= 60 s",
            t_pub <= 60,
        )
        _line("peak RSS so far", f"{_rss_gb():.2f} GB")


def bench_nights(n_entities: int, n_records: int, delivery_rows: int, pg_url: str | None) -> None:
    """A quiet night (nothing arrived) next to a delivery night (one provider file) on the same
    province: the whole nightly pipeline, step by step. A quiet night must not cost more."""
    from scoring.history.store import landed_files

    print(
        f"\n[nights] {n_entities:,} entities, {n_records:,} records: a quiet night, then a night with "
        f"{delivery_rows:,} new penalty rows"
    )
    with tempfile.TemporaryDirectory() as tmp, _scratch_database(pg_url) as scratch:
        url = scratch or f"sqlite:///{tmp}/bench.db"
        store = Store.open(url, Path(tmp))
        ent, rec = synthetic_province(n_entities, n_records)
        _store_province(store, ent, rec, "2026-06-28")
        del rec
        cat = Catalogue.load()
        # Every provider's feeds were delivered on the 28th (what the freshness gate looks at).
        known = pd.DataFrame(
            [
                {
                    "run_id": "bench-0",
                    "path": f"{p['id']}/20260628_{f}.csv",
                    "provider": p["id"],
                    "feed": f,
                    "delivered_on": pd.Timestamp("2026-06-28").date(),
                    "sha256": f"bench-{p['id']}-{f}",
                    "status": "stored",
                    "received": 0,
                    "accepted": 0,
                    "quarantined": 0,
                    "excluded": 0,
                }
                for p in cat.providers
                for f in p["feeds"]
            ]
        )
        with store.engine.begin() as conn:
            store.insert_frame(conn, landed_files, known)
        landing = Path(tmp) / "landing"
        (landing / "samr").mkdir(parents=True)
        figures = {}
        # The first night in a process also pays its imports (GX, matplotlib): a warm-up, not counted.
        for as_of, kind in (
            ("2026-06-28", "warm-up"),
            ("2026-06-29", "quiet"),
            ("2026-06-30", "delivery"),
        ):
            if kind == "delivery":
                path = landing / "samr" / "20260630_penalty.csv"
                make_penalty_file(path, delivery_rows)
                pen = pd.read_csv(path, dtype=str, keep_default_na=False)
                col = "行政相对人代码_1(统一社会信用代码)"
                legal = pen[col] != ""
                pen.loc[legal, col] = (
                    ent["uscc"].sample(int(legal.sum()), replace=True, random_state=1).to_numpy()
                )
                pen.to_csv(path, index=False, encoding="utf-8-sig")
            ctx = pipeline.RunContext(as_of=as_of, landing=landing, home=Path(tmp), db_url=url)
            steps = {}
            for name in pipeline.STEP_NAMES:
                t = time.perf_counter()
                pipeline.run_step(name, ctx)
                steps[name] = time.perf_counter() - t
            figures[kind] = steps
            if kind == "warm-up":
                continue
            _line(
                f"{kind} night ({as_of})",
                f"{sum(steps.values()):.1f} s",
                " + ".join(f"{k} {v:.1f}" for k, v in steps.items()),
            )
        q, d = sum(figures["quiet"].values()), sum(figures["delivery"].values())
        _line("quiet night / delivery night", f"{q / d:.2f}", "target <= 1.00", q <= d)
        _line("peak RSS so far", f"{_rss_gb():.2f} GB")


def bench_publish(n_entities: int, n_records: int, pg_url: str | None) -> None:
    """Publishing a province's results: rows into the results database (COPY), then every
    agency's masked, scoped files and the publication transaction (publish_run)."""
    print(f"\n[publish] {n_entities:,} results to the database and 12 agencies' files")
    as_of, run_id = "2026-06-30", "nightly-20260630"
    cat, pol = Catalogue.load(), Policy.load()
    ent, rec = synthetic_province(n_entities, n_records)
    results = score_entities(ent, rec, cat, pol, as_of)
    del rec
    with tempfile.TemporaryDirectory() as tmp, _scratch_database(pg_url) as scratch:
        url = scratch or f"sqlite:///{tmp}/bench.db"
        store = Store.open(url, Path(tmp))
        _store_province(store, ent, None, as_of)
        with store.engine.connect() as conn:
            batches = store.visible_batches(conn, "entities", as_of)
        rdir = store.run_dir(run_id)
        rdir.mkdir(parents=True, exist_ok=True)
        _write_parquet(rdir / "entity_score.parquet", results)
        manifest = {
            "run_id": run_id,
            "catalogue_sha256": cat.sha256,
            "input_batches": batches,
            "result_files": {"entity_score.parquet": sha256_file(rdir / "entity_score.parquet")},
        }
        with store.engine.begin() as conn:
            store.save_artifact(conn, "catalogue", cat.sha256, canonical_json(cat.doc))
            conn.execute(
                runs.insert().values(
                    run_id=run_id,
                    kind="nightly",
                    as_of=pd.Timestamp(as_of).date(),
                    knowledge_cutoff=pd.Timestamp(as_of).date(),
                    status="scored",
                    output_sha256="bench",
                    manifest_json=json.dumps(manifest, default=str),
                )
            )
        t = time.perf_counter()
        with store.engine.begin() as conn:
            store.insert_frame(conn, entity_results, results.assign(run_id=run_id))
        t_db = time.perf_counter() - t
        _line(f"results into {store.engine.dialect.name} (COPY)", f"{t_db:.1f} s")
        t = time.perf_counter()
        out = publish_run(store, run_id, load_agencies())
        t_files = time.perf_counter() - t
        rows = sum(
            json.loads((Path(f) / "manifest.json").read_text())["rows"] for f in out["published"]
        )
        _line(
            "agency files + publication transaction",
            f"{t_files:.1f} s",
            f"{rows:,} rows in 12 outboxes",
        )
        _line("publishing total", f"{t_db + t_files:.1f} s", "target <= 60 s", t_db + t_files <= 60)
        _line("peak RSS so far", f"{_rss_gb():.2f} GB")


def _child(args: list[str], env: dict, label: str) -> dict:
    """Run ``credit`` in its own process (as an operator or the DAG would) and measure that process
    alone: wall time and its peak RSS (os.wait4 on it), with its JSON answer."""
    import subprocess
    import threading

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "scoring.cli", *args, "--json"],
            env={**os.environ, **env},
            stdout=out,
            stderr=err,
            text=True,
        )
        tree_peak, done = [0.0], threading.Event()

        def sample():  # the whole process tree's resident memory, summed, five times a second
            while not done.wait(0.2):
                tree_peak[0] = max(tree_peak[0], _tree_rss_gb(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        sampler.join()
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, errors = out.read(), err.read()
    try:
        answer = json.loads(text[text.index("{") :]) if "{" in text else {}
    except ValueError:
        answer = {}
    if proc.returncode != 0:
        print(f"  {label}: credit exited {proc.returncode}: {errors.strip().splitlines()[-3:]}")
    return {
        "wall": wall,
        "rss_gb": usage.ru_maxrss / 1024 / 1024,
        "answer": answer,
        "code": proc.returncode,
        "tree_gb": tree_peak[0],
    }


def _tree_rss_gb(root: int) -> float:
    """Memory of a process and all its descendants now (Linux /proc), in GB: the sum of their
    proportional set sizes (PSS), so pages a forked worker shares with its parent count once."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += parents.get(pid, [])
        total += _pss_kb(pid)
    return total / 1024 / 1024


def _pss_kb(pid: int) -> int:
    for name, field in (("smaps_rollup", "Pss:"), ("status", "VmRSS:")):
        try:
            with open(f"/proc/{pid}/{name}", encoding="ascii", errors="replace") as fh:
                for line in fh:
                    if line.startswith(field):
                        return int(line.split()[1])
        except OSError:
            continue
    return 0


BATCH_ROWS = 10_000_000  # records of one stored history batch at most (~4 GB to make and write one)


def seed_province_store(
    store,
    n_entities: int,
    n_records: int,
    as_of: str,
    history_batches: int = 10,
    batch_rows: int = BATCH_ROWS,
) -> pd.Series:
    """A province's stored history: the register and its records as ``history_batches`` nightly
    batches (as months of deliveries leave them; more when a batch would exceed ``batch_rows``),
    and every feed delivered on ``as_of``. The records are made and written a batch at a time,
    never all at once as a frame (100M records would need far more memory than the machine has)."""
    from scoring.history.store import landed_files

    n_batches = max(history_batches, -(-n_records // batch_rows))
    ent, chunks = record_chunks(n_entities, n_records, n_batches)
    uscc = ent["uscc"].copy()
    _store_province(store, ent, None, as_of)
    del ent
    batches = []
    for i, (lo, rec) in enumerate(chunks):
        doc = pd.Series(np.arange(lo, lo + len(rec)), dtype="int64").astype("string")
        known = (pd.Timestamp(as_of) - pd.Timedelta(days=n_batches - i)).date()
        rec = rec.assign(
            doc_number=doc,
            record_key=(doc + "|" + rec["uscc"]).astype("string"),
            source_file="bench",
            line_no=0,
            known_from=pd.Timestamp(known),
        )
        del doc
        batches.append(store.write_batch(f"bench-{i}", "records", rec, known))
        del rec
    cat = Catalogue.in_force(as_of)
    known = pd.DataFrame(
        [
            {
                "run_id": "bench-0",
                "path": f"{p['id']}/{as_of.replace('-', '')}_{f}.csv",
                "provider": p["id"],
                "feed": f,
                "delivered_on": pd.Timestamp(as_of).date(),
                "sha256": f"bench-{p['id']}-{f}",
                "status": "stored",
                "received": 0,
                "accepted": 0,
                "quarantined": 0,
                "excluded": 0,
            }
            for p in cat.providers
            for f in p["feeds"]
        ]
    )
    with store.engine.begin() as conn:
        store.insert_frame(conn, record_batches, pd.DataFrame(batches))
        store.insert_frame(conn, landed_files, known)
    return uscc


def deliver_penalties(landing: Path, day: str, rows: int, uscc: pd.Series, seed: int = 1) -> Path:
    """A night's 双公示 penalty delivery naming entities of the province."""
    path = landing / "samr" / f"{day.replace('-', '')}_penalty.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    make_penalty_file(path, rows, seed)
    pen = pd.read_csv(path, dtype=str, keep_default_na=False)
    col = "行政相对人代码_1(统一社会信用代码)"
    legal = pen[col] != ""
    pen.loc[legal, col] = uscc.sample(int(legal.sum()), replace=True, random_state=seed).to_numpy()
    pen["行政处罚决定书文号"] = pen["行政处罚决定书文号"] + f"-{day}"
    pen.to_csv(path, index=False, encoding="utf-8-sig")
    return path


def _rss_of(run: dict) -> tuple[float, float]:
    """(the night's process, its largest worker) peak RSS in GB, as the run measured them."""
    peak = run["answer"].get("peak_rss_gb") or {}
    if not peak:  # a command that does not report its workers: the largest process of its tree
        return run["rss_gb"], 0.0
    return float(peak["process"]), float(peak.get("largest_worker") or 0)


def _memory(run: dict, workers: int) -> tuple[str, float]:
    """Peaks of the night's process and its largest worker (each its own high-water mark), and the
    peak of the whole process tree sampled five times a second (what the machine held at once)."""
    proc, worker = _rss_of(run)
    return f"tree {run['tree_gb']:.2f} GB (process {proc:.2f}, a worker {worker:.2f})", run[
        "tree_gb"
    ]


TABLE: list[tuple[str, str, str, str]] = []


def _row(what: str, value: str, target: str = "", verdict: bool | None = None) -> None:
    TABLE.append((what, value, target, "" if verdict is None else ("met" if verdict else "MISSED")))
    _line(what, value, target, verdict)


def print_table() -> None:
    if not TABLE:
        return
    w = max(len(r[0]) for r in TABLE)
    print("\n| figure | measured | target | |\n|---|---|---|---|")
    for what, value, target, verdict in TABLE:
        print(f"| {what:<{w}} | {value} | {target} | {verdict} |")


def bench_night(
    n_entities: int,
    n_records: int,
    delivery_rows: int,
    pg_url: str | None,
    partitions: int | None = None,
    compare_k: tuple[int, ...] = (1, 4),
) -> None:
    """Nights as an operator runs them -- ``credit run`` in its own process on a stored province,
    on PostgreSQL: the first night (a full delivery to every agency), a typical night (a provider's
    delivery, deltas to agencies), a quiet night, the audit rerun, and the same night re-scored
    in different partition counts. Wall time and peak memory are the process's own (os.wait4) and
    its worker processes' (the run reports them)."""
    workers = int(os.environ.get("CREDIT_WORKERS") or os.cpu_count() or 1)
    print(
        f"\n[night] {n_entities:,} entities, {n_records:,} stored records, a delivery of {delivery_rows:,} "
        f"penalty rows; `credit run` in its own process, {workers} worker processes"
    )
    seed_day, first, typical, quiet = "2026-07-13", "2026-07-14", "2026-07-15", "2026-07-16"
    with (
        tempfile.TemporaryDirectory(dir=os.environ.get("CREDIT_BENCH_TMP")) as tmp,
        _scratch_database(pg_url) as scratch,
    ):
        url = scratch or f"sqlite:///{tmp}/bench.db"
        home = Path(tmp) / "home"
        store = Store.open(url, home)
        t = time.perf_counter()
        uscc = seed_province_store(store, n_entities, n_records, seed_day)
        landing = home / "landing"
        landing.mkdir(parents=True, exist_ok=True)
        _line("store the province (10 history batches)", f"{time.perf_counter() - t:.1f} s")
        env = {
            "CREDIT_HOME": str(home),
            "CREDIT_DB_URL": url,
            "CREDIT_LANDING": str(landing),
            "PYTHONHASHSEED": "0",
        }
        k_args = ["--partitions", str(partitions)] if partitions else []
        store.engine.dispose()

        full = _child(["run", "--as-of", first, *k_args], env, "first night")
        mem, bound = _memory(full, workers)
        _row(
            f"first night: full delivery to 12 agencies ({full['answer'].get('status')})",
            f"{full['wall']:.1f} s",
        )
        _row("  its peak memory", mem, "<= 6 GB", bound <= 6)
        deliver_penalties(landing, typical, delivery_rows, uscc)
        del uscc
        night = _child(["run", "--as-of", typical, *k_args], env, "typical night")
        a = night["answer"]
        mem, bound = _memory(night, workers)
        _row(
            f"typical night end to end: {delivery_rows:,} rows in, deltas out ({a.get('status')})",
            f"{night['wall']:.1f} s",
            "<= 120 s",
            night["wall"] <= 120,
        )
        after = a.get("peak_rss_gb_after_step") or {}
        for step, sec in (a.get("step_seconds") or {}).items():
            _row(
                f"  {step}",
                f"{sec:.1f} s",
                f"process high-water mark after it {after.get(step, float('nan')):.2f} GB",
            )
        _row("  peak memory", mem, "<= 6 GB", bound <= 6)
        q = _child(["run", "--as-of", quiet, *k_args], env, "quiet night")
        mem, bound = _memory(q, workers)
        _row(
            f"quiet night ({q['answer'].get('status')}, {q['answer'].get('deliveries', {}).get('files', 0)} files)",
            f"{q['wall']:.1f} s",
            f"<= typical night ({night['wall']:.0f} s)",
            q["wall"] <= night["wall"],
        )
        _row("  peak memory", mem, "<= 6 GB", bound <= 6)
        rer = _child(["rerun", a.get("run_id", "nightly-20260715")], env, "audit rerun")
        mem, bound = _memory(rer, workers)
        _row(
            f"audit rerun of the typical night (identical: {rer['answer'].get('identical')})",
            f"{rer['wall']:.1f} s",
            f"<= the night ({night['wall']:.0f} s)",
            rer["wall"] <= night["wall"] and bool(rer["answer"].get("identical")),
        )
        _row("  peak memory", mem, "<= 6 GB", bound <= 6)
        hashes = {}
        for k in compare_k:
            r = _child(
                [
                    "run",
                    "--as-of",
                    typical,
                    "--step",
                    "ingest",
                    "--step",
                    "gate",
                    "--step",
                    "score",
                    "--partitions",
                    str(k),
                ],
                env,
                f"K={k}",
            )
            hashes[k] = r["answer"].get("output_sha256")
            sec = (r["answer"].get("step_seconds") or {}).get("score", float("nan"))
            mem, bound = _memory(r, min(workers, k))
            _row(f"typical night re-scored in K = {k}: score step", f"{sec:.1f} s", f"RSS {mem}")
        same = len(set(hashes.values())) == 1 and a.get("output_sha256") in hashes.values()
        _row(
            f"output hash equal for K = {', '.join(map(str, compare_k))} and the night",
            str(same),
            "equal",
            same,
        )


RECORDS_PER_PIECE = 1_600_000  # night-10m: records of one partition at most, by default


def pieces_for(n_records: int, per_piece: int = RECORDS_PER_PIECE) -> int:
    """The fewest partitions, a power of two, holding at most ``per_piece`` records each."""
    k = 1
    while n_records > k * per_piece:
        k *= 2
    return k


def _disk_gb(folder: Path) -> float:
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file()) / 1024**3


def _database_gb(url: str) -> float | None:
    """The size of a PostgreSQL database (None for SQLite: its file is in the folder measured)."""
    if not url.startswith("postgresql"):
        return None
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            return (
                c.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one()
                / 1024**3
            )
    finally:
        engine.dispose()


def _seed_apart(
    url: str,
    home: str,
    n_entities: int,
    n_records: int,
    seed_day: str,
    night: str,
    delivery_rows: int,
) -> dict:
    """Seed the store and land the night's delivery, in a process of its own (spawned): its peak
    is the seeding's alone, and what it held is returned to the machine before the night runs."""
    from scoring.evaluation.partitioned import own_peak_rss_gb

    t = time.perf_counter()
    store = Store.open(url, Path(home))
    uscc = seed_province_store(store, n_entities, n_records, seed_day)
    seconds = time.perf_counter() - t
    with store.engine.connect() as conn:
        n_batches = conn.execute(
            sa.select(sa.func.count())
            .select_from(record_batches)
            .where(record_batches.c.table_name == "records")
        ).scalar_one()
    store.engine.dispose()
    landing = Path(home) / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    deliver_penalties(landing, night, delivery_rows, uscc)
    return {"seconds": seconds, "peak_gb": own_peak_rss_gb(), "batches": int(n_batches)}


def bench_night_once(
    n_entities: int,
    n_records: int,
    delivery_rows: int,
    pg_url: str | None,
    partitions: int | None = None,
) -> None:
    """One night by partitions on a stored province and nothing else (``make bench-10m``: 10M
    entities / 100M records, a nation-sized night): the store seeded a history batch at a time in a process
    of its own, then ``credit run`` of a delivery night in its own process, measured as
    ``bench_night`` measures. With no night before it, the night delivers in full to every agency."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    workers = int(os.environ.get("CREDIT_WORKERS") or os.cpu_count() or 1)
    k = partitions or pieces_for(n_records)
    seed_day, night_day = "2026-07-14", "2026-07-15"
    print(
        f"\n[night-10m] {n_entities:,} entities, {n_records:,} stored records, a delivery of {delivery_rows:,} "
        f"penalty rows; one `credit run` in {k} partitions, {workers} worker processes"
    )
    with (
        tempfile.TemporaryDirectory(dir=os.environ.get("CREDIT_BENCH_TMP")) as tmp,
        _scratch_database(pg_url) as scratch,
    ):
        url = scratch or f"sqlite:///{tmp}/bench.db"
        home = Path(tmp) / "home"
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            seeded = pool.submit(
                _seed_apart,
                url,
                str(home),
                n_entities,
                n_records,
                seed_day,
                night_day,
                delivery_rows,
            ).result()
        _row(
            f"seed the store ({seeded['batches']} history batches of records, a batch at a time)",
            f"{seeded['seconds']:.1f} s",
        )
        _row(
            "  seeding's peak memory (its own process)",
            f"{seeded['peak_gb']:.2f} GB",
            "well below 24 GB",
            seeded["peak_gb"] <= 12,
        )
        db = _database_gb(url)
        _row(
            "  store on disk after seeding",
            f"{_disk_gb(home):.2f} GB" + (f" + database {db:.2f} GB" if db else ""),
        )
        _line("free disk where the store is", f"{shutil.disk_usage(tmp).free / 1024**3:.1f} GB")
        env = {
            "CREDIT_HOME": str(home),
            "CREDIT_DB_URL": url,
            "CREDIT_LANDING": str(home / "landing"),
            "PYTHONHASHSEED": "0",
        }
        night = _child(["run", "--as-of", night_day, "--partitions", str(k)], env, "the night")
        a = night["answer"]
        mem, bound = _memory(night, min(workers, k))
        _row(
            f"the night end to end: {delivery_rows:,} rows in, full delivery out ({a.get('status')})",
            f"{night['wall']:.1f} s",
        )
        _row("  partitions (credit run --partitions)", str(k))
        _row("  entities scored", f"{a.get('entities_scored', 0):,}")
        seconds = a.get("step_seconds") or {}
        after = a.get("peak_rss_gb_after_step") or {}
        for step in [s for s in pipeline.STEP_NAMES if s in seconds]:
            _row(
                f"  {step}",
                f"{seconds[step]:.1f} s",
                f"process high-water mark after it {after.get(step, float('nan')):.2f} GB",
            )
        _row("  peak memory", mem, "<= 6 GB", bound <= 6 and night["code"] == 0)
        db = _database_gb(url)
        _row(
            "  store on disk after the night",
            f"{_disk_gb(home):.2f} GB" + (f" + database {db:.2f} GB" if db else ""),
        )


def bench_fit(n_inspections: int) -> None:
    """What `credit calibrate` fits: the PolicyLearner's search (half-lives x regularisation on a
    time-ordered fold, then the refit), on synthetic point-in-time records with a known truth."""
    print(f"\n[calibrate] learning a candidate policy from {n_inspections:,} past inspections")
    pol = Policy.in_force("2026-06-30")
    feats = sorted(pol.doc["items"])
    nature = {i["code"]: i["nature"] for i in Catalogue.load().items}
    signs = [1 if nature.get(f) == "negative" else -1 for f in feats]
    rng = np.random.default_rng(3)
    z = rng.standard_normal(n_inspections)
    beta = np.where(np.array(signs) > 0, 1.0, -0.6)
    counts = rng.poisson(
        0.1 * np.exp(np.outer(z, beta) - beta**2 / 2)
    )  # about 2 records per inspection
    y = (rng.random(n_inspections) < 1 / (1 + np.exp(1.7 - 1.3 * z))).astype(int)
    row, col = np.nonzero(counts)
    reps = counts[row, col]
    pairs = pd.DataFrame(
        {
            "row": np.repeat(row, reps),
            "item_code": np.array(feats)[np.repeat(col, reps)],
            "age_days": rng.integers(0, 1000, reps.sum()).astype(np.int32),
        }
    )
    _line("point-in-time records", f"{len(pairs):,}")
    # As calibrate fits: the candidate signals beside the items, and inverse-probability weights.
    sig = dict(CANDIDATE_SIGNALS)
    values = (rng.random((n_inspections, len(sig))) < 0.1).astype(float)
    weights = 1 / rng.choice([0.0025, 0.0083, 0.033, 0.067], n_inspections)
    t = time.perf_counter()
    learner = PolicyLearner(
        current=pol,
        features=feats + list(sig),
        signs=signs + [1] * len(sig),
        random_state=0,
        signals=sig,
    ).fit(pairs, y, np.arange(n_inspections), weights, values)
    dt_fit = time.perf_counter() - t
    _line("fit (search + refit)", f"{dt_fit:.1f} s", "target <= 300 s", dt_fit <= 300)
    _line("models fitted", f"{len(learner.search_) + 1}")
    _line("peak RSS so far", f"{_rss_gb():.2f} GB")


BENCHES = (
    "night",
    "score",
    "gate",
    "fit",
)  # default set; "publish", "rerun", "nights": older single-step views;
# "night-10m": one night by partitions alone (make bench-10m)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m scoring.bench")
    p.add_argument(
        "--only", default=",".join(BENCHES), help="comma-separated: " + ",".join(BENCHES)
    )
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--entities", type=int, default=3_000_000)
    p.add_argument("--records", type=int, default=30_000_000)
    p.add_argument(
        "--rerun-entities",
        type=int,
        default=1_000_000,
        help="scale of the store round trip (rerun and publish); 3,000,000 needs ~20 GB",
    )
    p.add_argument("--rerun-records", type=int, default=10_000_000)
    p.add_argument(
        "--partitions",
        type=int,
        default=None,
        help="night bench: partitions (default: by size); night-10m: default <= 1.6M records a piece",
    )
    p.add_argument(
        "--compare-k", default="1,4", help="night bench: partition counts to re-score the night in"
    )
    p.add_argument("--inspections", type=int, default=1_000_000)
    p.add_argument(
        "--night-rows",
        type=int,
        default=10_000,
        help="rows of the delivery night's file (nights bench; a province's daily penalties)",
    )
    p.add_argument(
        "--pg-url",
        default=os.environ.get("CREDIT_BENCH_PG_URL"),
        help="PostgreSQL for the publish figure (default: embedded SQLite)",
    )
    args = p.parse_args(argv)
    print(f"benchmarks on {sys.platform}, python {sys.version.split()[0]}")
    for name in args.only.split(","):
        if name == "night":
            bench_night(
                args.entities,
                args.records,
                args.night_rows,
                args.pg_url,
                args.partitions,
                tuple(int(k) for k in args.compare_k.split(",")),
            )
        elif name == "night-10m":
            bench_night_once(
                args.entities, args.records, args.night_rows, args.pg_url, args.partitions
            )
        elif name == "gate":
            bench_gate(args.rows)
        elif name == "score":
            bench_score(args.entities, args.records)
        elif name == "publish":
            bench_publish(args.entities, args.records, args.pg_url)
        elif name == "rerun":
            bench_rerun_and_publish(args.rerun_entities, args.rerun_records, args.pg_url)
        elif name == "nights":
            bench_nights(args.entities, args.records, args.night_rows, args.pg_url)
        elif name == "fit":
            bench_fit(args.inspections)
    print_table()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
