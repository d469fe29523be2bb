"""One stage at a time: the gate, the scoring core against a naive baseline, the store round trip
(rerun, publish), consecutive nights, and the learner's fit."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.measure import print_line, scratch_database, self_rss_gb, table_row
from bench.province import make_penalty_file, store_province, synthetic_province
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
    runs,
    sha256_file,
)
from scoring.history.store import write_parquet as _write_parquet
from scoring.intake import ingest
from scoring.publication.publish import load_agencies, publish_run
from scoring.quality import validate as quality


def bench_gate(rows: int) -> None:
    print(f"\n[gate] validating {rows:,} 双公示 penalty rows (read + stage + GX suite stg_record)")
    cat = Catalogue.load()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "20260630_penalty.csv"
        t = time.perf_counter()
        make_penalty_file(path, rows)
        print_line("generate input file", f"{time.perf_counter() - t:.1f} s")
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
    print_line("read (encoding, layout, csv)", f"{t1 - t0:.1f} s")
    print_line("stage (typing, canonical columns)", f"{t2 - t1:.1f} s")
    print_line("GX validation (13 expectations)", f"{t3 - t2:.1f} s")
    total = t3 - t0
    print_line("gating total", f"{total:.1f} s", "target <= 60 s", total <= 60)
    print_line("throughput", f"{rows / total:,.0f} rows/s")
    print_line("rows quarantined", f"{quarantined:,}")
    # Baseline in the same run: per-row Python check digits against the vectorised ones.
    sample = stg["uscc"].dropna().to_numpy(dtype=object)[:200_000]
    t = time.perf_counter()
    vec = codes.valid_uscc(sample)
    t_vec = time.perf_counter() - t
    t = time.perf_counter()
    loop = np.array([bool(codes.valid_uscc([c])[0]) for c in sample[:20_000]])
    t_loop = (time.perf_counter() - t) * len(sample) / 20_000
    assert (loop == vec[:20_000]).all()
    print_line("USCC checks, vectorised", f"{len(sample) / t_vec:,.0f} /s")
    print_line("USCC checks, per row (baseline)", f"{len(sample) / t_loop:,.0f} /s")
    print_line("vectorised / per-row", f"{t_loop / t_vec:,.0f}x")
    print_line("peak RSS so far", f"{self_rss_gb():.2f} GB")


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
    print_line("build inputs in memory", f"{time.perf_counter() - t:.1f} s")
    print_line("RSS with inputs loaded", f"{self_rss_gb():.2f} GB")
    t = time.perf_counter()
    res = score_entities(ent, rec, cat, pol, "2026-06-30")
    t_fast = time.perf_counter() - t
    table_row(
        f"scoring core with reasons, {n_entities:,} entities in memory",
        f"{t_fast:.1f} s",
        "<= 30 s",
        t_fast <= 30,
    )
    print_line("peak RSS", f"{self_rss_gb():.2f} GB", "target <= 8 GB", self_rss_gb() <= 8)
    print_line(
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
    print_line(
        "naive group-by/apply, 20k-entity sample",
        f"{t_naive:.1f} s",
        f"scores identical: {bool(same)}",
    )
    print_line("naive extrapolated to the province", f"{per_naive * n_entities:,.0f} s")
    table_row(
        "scoring core vs the naive group-by/apply baseline (same run)",
        f"{per_naive * n_entities / t_fast:,.0f}x",
        ">= 20x",
        per_naive * n_entities / t_fast >= 20,
    )
    print_line("speed-up vs naive (same 20k sample)", f"{t_naive / t_fast_sample:,.0f}x")


def bench_rerun_and_publish(n_entities: int, n_records: int, pg_url: str | None) -> None:

    print(f"\n[rerun, publish] {n_entities:,} entities, {n_records:,} records through the store")
    as_of = "2026-06-30"
    with tempfile.TemporaryDirectory() as tmp, scratch_database(pg_url) as scratch:
        url = scratch or f"sqlite:///{tmp}/bench.db"
        store = Store.open(url, Path(tmp))
        t = time.perf_counter()
        ent, rec = synthetic_province(n_entities, n_records)
        store_province(store, ent, rec, as_of)
        del ent, rec
        print_line("write the province as Parquet batches", f"{time.perf_counter() - t:.1f} s")
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
        print_line("original run: load + score + contract + store", f"{t_score:.1f} s")
        t = time.perf_counter()
        out = rerun(ctx.run_id, "as-known-then", db_url=url, home=Path(tmp))
        t_rerun = time.perf_counter() - t
        print_line(
            "audit rerun as known then",
            f"{t_rerun:.1f} s",
            f"identical: {out['identical']}",
            t_rerun <= t_score,
        )
        t = time.perf_counter()
        pipeline.publish(ctx)
        t_pub = time.perf_counter() - t
        print_line(
            f"publish to {store.engine.dialect.name} + 12 agencies' files",
            f"{t_pub:.1f} s",
            "target <= 60 s",
            t_pub <= 60,
        )
        print_line("peak RSS so far", f"{self_rss_gb():.2f} GB")


def bench_nights(n_entities: int, n_records: int, delivery_rows: int, pg_url: str | None) -> None:
    """A quiet night (nothing arrived) next to a delivery night (one provider file) on the same
    province: the whole nightly pipeline, step by step. A quiet night must not cost more."""
    from scoring.history.store import landed_files

    print(
        f"\n[nights] {n_entities:,} entities, {n_records:,} records: a quiet night, then a night with "
        f"{delivery_rows:,} new penalty rows"
    )
    with tempfile.TemporaryDirectory() as tmp, scratch_database(pg_url) as scratch:
        url = scratch or f"sqlite:///{tmp}/bench.db"
        store = Store.open(url, Path(tmp))
        ent, rec = synthetic_province(n_entities, n_records)
        store_province(store, ent, rec, "2026-06-28")
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
            print_line(
                f"{kind} night ({as_of})",
                f"{sum(steps.values()):.1f} s",
                " + ".join(f"{k} {v:.1f}" for k, v in steps.items()),
            )
        q, d = sum(figures["quiet"].values()), sum(figures["delivery"].values())
        print_line("quiet night / delivery night", f"{q / d:.2f}", "target <= 1.00", q <= d)
        print_line("peak RSS so far", f"{self_rss_gb():.2f} GB")


def bench_publish(n_entities: int, n_records: int, pg_url: str | None) -> None:
    """Publishing a province's results: rows into the results database (COPY), then every
    agency's masked, scoped files and the publication transaction (publish_run)."""
    print(f"\n[publish] {n_entities:,} results to the database and 12 agencies' files")
    as_of, run_id = "2026-06-30", "nightly-20260630"
    cat, pol = Catalogue.load(), Policy.load()
    ent, rec = synthetic_province(n_entities, n_records)
    results = score_entities(ent, rec, cat, pol, as_of)
    del rec
    with tempfile.TemporaryDirectory() as tmp, scratch_database(pg_url) as scratch:
        url = scratch or f"sqlite:///{tmp}/bench.db"
        store = Store.open(url, Path(tmp))
        store_province(store, ent, None, as_of)
        with store.engine.connect() as conn:
            batches = store.visible_batches(conn, "entities", as_of)
        rdir = store.run_folder(run_id)
        rdir.path.mkdir(parents=True, exist_ok=True)
        _write_parquet(rdir.entity_score, results)
        manifest = {
            "run_id": run_id,
            "catalogue_sha256": cat.sha256,
            "input_batches": batches,
            "result_files": {rdir.ENTITY_SCORE: sha256_file(rdir.entity_score)},
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
        print_line(f"results into {store.engine.dialect.name} (COPY)", f"{t_db:.1f} s")
        t = time.perf_counter()
        out = publish_run(store, run_id, load_agencies())
        t_files = time.perf_counter() - t
        rows = sum(
            json.loads((Path(f) / "manifest.json").read_text())["rows"] for f in out["published"]
        )
        print_line(
            "agency files + publication transaction",
            f"{t_files:.1f} s",
            f"{rows:,} rows in 12 outboxes",
        )
        print_line(
            "publishing total", f"{t_db + t_files:.1f} s", "target <= 60 s", t_db + t_files <= 60
        )
        print_line("peak RSS so far", f"{self_rss_gb():.2f} GB")


def bench_fit(n_inspections: int) -> None:
    """What `credit calibrate` fits: the PolicyLearner's search (half-lives x regularisation on a
    time-ordered fold, then the refit), on synthetic point-in-time records with a known truth."""
    print(f"\n[calibrate] learning a candidate policy from {n_inspections:,} past inspections")
    pol = Policy.shipped_in_force("2026-06-30")
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
    print_line("point-in-time records", f"{len(pairs):,}")
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
    print_line("fit (search + refit)", f"{dt_fit:.1f} s", "target <= 300 s", dt_fit <= 300)
    print_line("models fitted", f"{len(learner.search_) + 1}")
    print_line("peak RSS so far", f"{self_rss_gb():.2f} GB")
