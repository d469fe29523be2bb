"""Intake at province scale through the real landing path: the first night of a province from the
files `credit demo-data` writes (CSV and XLSX), step by step, each step its own `credit run --step`
process so each has its own time and peak tree PSS, at two or more sizes in one run (does the
first night's peak grow with the province, or less than it does?).

    python -m bench --only first-night --intake-sizes 100000,300000 [--intake-made DIR]

(--intake-made: a folder of p<entities>/landing written earlier by `credit demo-data`, copied
rather than generated again.)
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from bench.measure import run_child, scratch_database, table_row

AS_OF = "2026-03-31"
STEPS = ("ingest", "gate", "score", "report", "publish")


def _landing(root: Path, entities: int, made: Path | None) -> tuple[Path, int]:
    """`credit demo-data` for this many entities (or a copy of the landing it wrote earlier into
    `made`/p<entities>); (its home, the rows its landing files hold)."""
    home = root / f"province-{entities}"
    earlier = made / f"p{entities}" / "landing" if made else None
    if earlier is not None and earlier.is_dir():
        shutil.copytree(earlier, home / "landing")
    else:
        run = ["demo-data", "--out", str(home), "--entities", str(entities), "--as-of", AS_OF]
        if run_child(run, {}, "demo-data")["code"] != 0:
            raise SystemExit(f"credit demo-data failed for {entities:,} entities")
    rows = 0
    for f in sorted((home / "landing").rglob("*.csv")):
        with open(f, "rb") as fh:
            rows += max(sum(1 for _ in fh) - 1, 0)
    return home, rows


def first_night(entities: int, root: Path, pg_url: str | None, made: Path | None = None) -> dict:
    """One first night, step by step; {step: run}, plus the landing's CSV row count."""
    home, csv_rows = _landing(root, entities, made)
    out: dict = {"csv_rows": csv_rows, "steps": {}}
    with scratch_database(pg_url) as url:
        env = {"CREDIT_HOME": str(home), "CREDIT_DB_URL": url or f"sqlite:///{home}/credit.db"}
        for step in STEPS:
            r = run_child(["run", "--as-of", AS_OF, "--step", step], env, f"first night {step}")
            out["steps"][step] = r
            rate = csv_rows / r["wall"] if r["wall"] else 0.0
            table_row(
                f"first night {entities:,}: {step}",
                f"{r['wall']:.1f} s, {rate:,.0f} rows/s, tree {r['tree_gb']:.2f} GB",
                "",
                None if r["code"] == 0 else False,
            )
            if r["code"] != 0:
                break
    shutil.rmtree(home, ignore_errors=True)
    return out


def bench_first_night(sizes: tuple[int, ...], pg_url: str | None, made: str | None = None) -> dict:
    """The first night at each size; the peak tree PSS of the largest against the smallest."""
    print(f"\nfirst night through the landing at {', '.join(f'{n:,}' for n in sizes)} entities")
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-intake-") as tmp:
        for n in sizes:
            results[n] = first_night(n, Path(tmp), pg_url, Path(made) if made else None)
    peaks = {n: max(r["tree_gb"] for r in res["steps"].values()) for n, res in results.items()}
    walls = {n: sum(r["wall"] for r in res["steps"].values()) for n, res in results.items()}
    for n in sizes:
        table_row(
            f"first night {n:,}: whole",
            f"{walls[n]:.0f} s, peak tree {peaks[n]:.2f} GB, {results[n]['csv_rows']:,} CSV rows",
        )
    lo, hi = min(sizes), max(sizes)
    if lo != hi:
        ratio = peaks[hi] / peaks[lo]
        table_row(
            f"first-night peak {hi:,} / {lo:,}",
            f"{ratio:.2f}x (entities {hi / lo:.1f}x)",
            "<= 1.3x",
            ratio <= 1.3,
        )
    print(json.dumps({str(n): {"peak_gb": peaks[n], "wall_s": walls[n]} for n in sizes}))
    return results
