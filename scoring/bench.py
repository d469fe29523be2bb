"""Benchmarks (``make bench``): figures printed, targets compared, ratios against a baseline
measured in the same run. Never part of the test suite.

    python -m scoring.bench [--only gate,score] [--rows 1000000] [--entities 3000000]
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def _line(name: str, value: str, target: str = "", ok: bool | None = None) -> None:
    mark = "" if ok is None else ("  OK" if ok else "  MISSED")
    print(f"  {name:<44} {value:>16}   {target}{mark}", flush=True)


def make_penalty_file(path: Path, rows: int, seed: int = 1) -> None:
    """A 双公示 penalty CSV of ``rows`` rows, tiled from a demo province's penalty feed."""
    from .catalogue import Catalogue
    from .demo_data import build_world, delivery_frames, inject_defects

    cat = Catalogue.load()
    world = build_world(60_000, seed)
    rng = np.random.default_rng(seed)
    frames = delivery_frames(world, cat, None, pd.Timestamp("2026-06-30"), rng)
    pen = pd.concat([f for (p, feed), f in sorted(frames.items()) if feed == "penalty"], ignore_index=True)
    reps = -(-rows // len(pen))
    big = pd.concat([pen] * reps, ignore_index=True).iloc[:rows].copy()
    big["行政处罚决定书文号"] = big["行政处罚决定书文号"] + "-" + (np.arange(rows) // len(pen)).astype(str)
    big, _ = inject_defects(big, "sgs_penalty", 0.02, rng, pd.Timestamp("2026-06-30"))
    big.to_csv(path, index=False, encoding="utf-8-sig")


def bench_gate(rows: int) -> None:
    from . import codes, ingest, quality
    from .catalogue import Catalogue

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
        subject = stg["uscc"].fillna(stg["id_number"]).fillna(stg["subject_name"])
        stg["record_key"] = (stg["doc_number"].fillna("") + "|" + subject.fillna("")).astype("string")
        stg["seen_before"] = False
        stg["registered_date"] = pd.Series(pd.NaT, index=stg.index, dtype="datetime64[s]")
        t2 = time.perf_counter()
        v = quality.validate_table(gx, "stg_record", stg, cat, "2026-06-30", "bench",
                                   with_docs=False)
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


BENCHES = {"gate": bench_gate}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m scoring.bench")
    p.add_argument("--only", default=",".join(BENCHES), help="comma-separated: " + ",".join(BENCHES))
    p.add_argument("--rows", type=int, default=1_000_000)
    args = p.parse_args(argv)
    print(f"benchmarks on {sys.platform}, python {sys.version.split()[0]}")
    for name in args.only.split(","):
        if name == "gate":
            bench_gate(args.rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
