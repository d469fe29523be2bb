"""A whole night as operators run it (`credit run` in a child process), at province scale, and one
night by partitions alone at 10M entities (make bench-10m)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from bench.measure import (
    database_gb,
    disk_gb,
    memory_figure,
    print_line,
    run_child,
    scratch_database,
    table_row,
)
from bench.province import deliver_penalties, seed_province_store
from scoring import pipeline
from scoring.history.store import (
    Store,
    record_batches,
)


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
        scratch_database(pg_url) as scratch,
    ):
        url = scratch or f"sqlite:///{tmp}/bench.db"
        home = Path(tmp) / "home"
        store = Store.open(url, home)
        t = time.perf_counter()
        uscc = seed_province_store(store, n_entities, n_records, seed_day)
        landing = home / "landing"
        landing.mkdir(parents=True, exist_ok=True)
        print_line("store the province (10 history batches)", f"{time.perf_counter() - t:.1f} s")
        env = {
            "CREDIT_HOME": str(home),
            "CREDIT_DB_URL": url,
            "CREDIT_LANDING": str(landing),
            "PYTHONHASHSEED": "0",
        }
        k_args = ["--partitions", str(partitions)] if partitions else []
        store.engine.dispose()

        full = run_child(["run", "--as-of", first, *k_args], env, "first night")
        mem, bound = memory_figure(full, workers)
        table_row(
            f"first night: full delivery to 12 agencies ({full['answer'].get('status')})",
            f"{full['wall']:.1f} s",
        )
        table_row("  its peak memory", mem, "<= 6 GB", bound <= 6)
        deliver_penalties(landing, typical, delivery_rows, uscc)
        del uscc
        night = _typical_night(env, k_args, workers, typical, delivery_rows)
        _quiet_night_and_rerun(env, k_args, workers, quiet, night)
        _partition_counts(env, workers, typical, compare_k, night["answer"])


def _typical_night(env: dict, k_args: list, workers: int, typical: str, delivery_rows: int) -> dict:
    """A provider's delivery in, deltas out: wall time, each step's, and peak memory."""
    night = run_child(["run", "--as-of", typical, *k_args], env, "typical night")
    a = night["answer"]
    mem, bound = memory_figure(night, workers)
    table_row(
        f"typical night end to end: {delivery_rows:,} rows in, deltas out ({a.get('status')})",
        f"{night['wall']:.1f} s",
        "<= 120 s",
        night["wall"] <= 120,
    )
    after = a.get("peak_rss_gb_after_step") or {}
    for step, sec in (a.get("step_seconds") or {}).items():
        table_row(
            f"  {step}",
            f"{sec:.1f} s",
            f"process high-water mark after it {after.get(step, float('nan')):.2f} GB",
        )
    table_row("  peak memory", mem, "<= 6 GB", bound <= 6)
    return night


def _quiet_night_and_rerun(env: dict, k_args: list, workers: int, quiet: str, night: dict) -> None:
    """Nothing new arrives; then the auditors' rerun of the typical night (must be identical)."""
    a = night["answer"]
    q = run_child(["run", "--as-of", quiet, *k_args], env, "quiet night")
    mem, bound = memory_figure(q, workers)
    table_row(
        f"quiet night ({q['answer'].get('status')}, {q['answer'].get('deliveries', {}).get('files', 0)} files)",
        f"{q['wall']:.1f} s",
        f"<= typical night ({night['wall']:.0f} s)",
        q["wall"] <= night["wall"],
    )
    table_row("  peak memory", mem, "<= 6 GB", bound <= 6)
    rer = run_child(["rerun", a.get("run_id", "nightly-20260715")], env, "audit rerun")
    mem, bound = memory_figure(rer, workers)
    table_row(
        f"audit rerun of the typical night (identical: {rer['answer'].get('identical')})",
        f"{rer['wall']:.1f} s",
        f"<= the night ({night['wall']:.0f} s)",
        rer["wall"] <= night["wall"] and bool(rer["answer"].get("identical")),
    )
    table_row("  peak memory", mem, "<= 6 GB", bound <= 6)


def _partition_counts(env: dict, workers: int, typical: str, compare_k, a: dict) -> None:
    """The typical night re-scored in other partition counts: the output hash must not change."""
    hashes = {}
    for k in compare_k:
        r = run_child(
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
        mem, bound = memory_figure(r, min(workers, k))
        table_row(f"typical night re-scored in K = {k}: score step", f"{sec:.1f} s", f"RSS {mem}")
    same = len(set(hashes.values())) == 1 and a.get("output_sha256") in hashes.values()
    table_row(
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
    entities / 100M records): the store seeded a history batch at a time in a process
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
        scratch_database(pg_url) as scratch,
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
        _seeding_figures(seeded, url, home, tmp)
        env = {
            "CREDIT_HOME": str(home),
            "CREDIT_DB_URL": url,
            "CREDIT_LANDING": str(home / "landing"),
            "PYTHONHASHSEED": "0",
        }
        night = run_child(["run", "--as-of", night_day, "--partitions", str(k)], env, "the night")
        a = night["answer"]
        mem, bound = memory_figure(night, min(workers, k))
        table_row(
            f"the night end to end: {delivery_rows:,} rows in, full delivery out ({a.get('status')})",
            f"{night['wall']:.1f} s",
        )
        table_row("  partitions (credit run --partitions)", str(k))
        table_row("  entities scored", f"{a.get('entities_scored', 0):,}")
        seconds = a.get("step_seconds") or {}
        after = a.get("peak_rss_gb_after_step") or {}
        for step in [s for s in pipeline.STEP_NAMES if s in seconds]:
            table_row(
                f"  {step}",
                f"{seconds[step]:.1f} s",
                f"process high-water mark after it {after.get(step, float('nan')):.2f} GB",
            )
        table_row("  peak memory", mem, "<= 6 GB", bound <= 6 and night["code"] == 0)
        db = database_gb(url)
        table_row(
            "  store on disk after the night",
            f"{disk_gb(home):.2f} GB" + (f" + database {db:.2f} GB" if db else ""),
        )


def _seeding_figures(seeded: dict, url: str, home: Path, tmp: str) -> None:
    """Time and peak memory of seeding the store, and what it takes on disk."""
    table_row(
        f"seed the store ({seeded['batches']} history batches of records, a batch at a time)",
        f"{seeded['seconds']:.1f} s",
    )
    table_row(
        "  seeding's peak memory (its own process)",
        f"{seeded['peak_gb']:.2f} GB",
        "well below 24 GB",
        seeded["peak_gb"] <= 12,
    )
    db = database_gb(url)
    table_row(
        "  store on disk after seeding",
        f"{disk_gb(home):.2f} GB" + (f" + database {db:.2f} GB" if db else ""),
    )
    print_line("free disk where the store is", f"{shutil.disk_usage(tmp).free / 1024**3:.1f} GB")
