"""Benchmarks (``make bench``): figures printed, targets compared, ratios against a baseline
measured in the same run. Never part of the test suite, nor of the installed package.

    python -m bench [--only gate,score] [--rows 1000000] [--entities 3000000]
"""

from __future__ import annotations

import argparse
import os
import sys

from bench.intake import bench_first_night
from bench.measure import print_table
from bench.night import bench_night, bench_night_once
from bench.stages import (
    bench_fit,
    bench_gate,
    bench_nights,
    bench_publish,
    bench_rerun_and_publish,
    bench_score,
)

BENCHES = (
    "night",
    "score",
    "gate",
    "fit",
    "snapshot-night",
)  # default set; "publish", "rerun", "nights": older single-step views;
# "night-10m": one night by partitions alone (make bench-10m); "first-night": intake through the
# landing at --intake-sizes, "snapshot-night": that and the night after it with the register a
# full snapshot (by default at 100k and 300k entities; 3M: make bench-intake INTAKE_SIZES=3000000)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench")
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
    p.add_argument(
        "--intake-sizes",
        default="100000,300000",
        help="first-night bench: province sizes (entities) through `credit demo-data` files",
    )
    p.add_argument(
        "--intake-made",
        default=None,
        help="first-night bench: provinces kept in DIR/p<N> (made there once if missing)",
    )
    p.add_argument(
        "--intake-timeout",
        type=float,
        default=None,
        help="first-night bench: seconds a size's first night may take before it is stopped",
    )
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
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
        elif name in ("first-night", "snapshot-night"):
            bench_first_night(
                tuple(int(n) for n in args.intake_sizes.split(",")),
                args.pg_url,
                args.intake_made,
                snapshot=name == "snapshot-night",
                timeout=args.intake_timeout,
            )
        elif name == "fit":
            bench_fit(args.inspections)
    print_table()
