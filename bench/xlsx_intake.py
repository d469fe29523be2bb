"""Peak memory of reading one large XLSX delivery whole-file against in chunks.

    python -m bench.xlsx_intake --rows 300000 --dir /path/to/scratch [--chunk-rows 250000,50000]

Writes (once) a penalty workbook of `rows` rows with openpyxl's write-only writer (shared strings,
dates as date cells), then reads it in a fresh process per mode: ``whole`` (read_file, then its
rows in chunks as the night used to take them) and ``chunked`` (open_file). Each child prints its
resident set after imports, its high-water mark (VmHWM), its wall time and a hash of every row it
read (values, line numbers, quarantined rows), so both modes are seen to read the same rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

NAME = "20260331_penalty.xlsx"


def make_workbook(path: Path, rows: int) -> None:
    """A penalty delivery as a provider's export writes it: each row its own entity, decision
    number and facts; dates as date cells; the fine as a number."""
    import openpyxl

    from scoring.intake.layouts import PENALTY

    header = PENALTY.standard_headers()
    col = {h: i for i, h in enumerate(header)}
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("行政处罚")
    ws.append(header)
    day0 = dt.datetime(2020, 1, 1)
    for i in range(rows):
        row = [None] * len(header)
        row[col["行政相对人名称"]] = f"哈尔滨市示例商贸有限公司{i}"
        row[col["行政相对人类别"]] = "法人及非法人组织"
        row[col["行政相对人代码_1(统一社会信用代码)"]] = f"9123010{i:011d}"
        row[col["法定代表人"]] = f"张{i % 997}"
        row[col["行政处罚决定书文号"]] = f"哈市监罚〔2025〕{i}号"
        row[col["违法行为类型"]] = "违反《中华人民共和国食品安全法》"
        row[col["违法事实"]] = (
            f"当事人于{i % 28 + 1}日销售不符合食品安全标准的食品，货值金额{i % 5000}元"
        )
        row[col["处罚依据"]] = "《中华人民共和国食品安全法》第一百二十四条"
        row[col["处罚类别"]] = "罚款"
        row[col["处罚内容"]] = f"罚款{i % 50 + 1}千元"
        row[col["罚款金额（万元）"]] = (i % 50 + 1) / 10
        row[col["处罚决定日期"]] = day0 + dt.timedelta(days=i % 2000)
        row[col["处罚机关"]] = "哈尔滨市市场监督管理局"
        row[col["数据来源单位"]] = "哈尔滨市市场监督管理局"
        ws.append(row)
    tmp = path.with_name(path.name + ".partial")
    wb.save(tmp)
    tmp.replace(path)


_CHILD = """
import hashlib, json, sys, time
from pathlib import Path
import pandas as pd
from scoring.intake.ingest import file_chunks, open_file, read_file

path, mode, chunk_rows = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
def kb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
base = kb("VmRSS")
start = time.monotonic()
if mode == "whole":
    raw = read_file(path, provider="p")
    chunks = file_chunks(raw, chunk_rows)
else:
    _head, chunks = open_file(path, chunk_rows, provider="p")
sha, rows, bad, n_chunks = hashlib.sha256(), 0, 0, 0
for c in chunks:
    n_chunks += 1
    for frame in (c.rows, c.raw, c.bad_rows):
        sha.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    rows, bad = rows + len(c.rows), bad + len(c.bad_rows)
print(json.dumps({"mode": mode, "chunk_rows": chunk_rows, "rows": rows, "bad": bad,
                  "chunks": n_chunks, "rss_after_imports_mb": base / 1024,
                  "peak_mb": kb("VmHWM") / 1024, "seconds": round(time.monotonic() - start, 1),
                  "content": sha.hexdigest()[:16]}))
"""


def measure(path: Path, mode: str, chunk_rows: int) -> dict:
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), mode, str(chunk_rows)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["load"] = os.getloadavg()[0]
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--chunk-rows", default="250000,50000")
    args = ap.parse_args(argv)
    folder = args.dir / f"xlsx{args.rows}" / "p"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / NAME
    if not path.exists():
        make_workbook(path, args.rows)
    print(f"{path}: {path.stat().st_size:,} bytes, {args.rows:,} rows", flush=True)
    for chunk_rows in [int(c) for c in args.chunk_rows.split(",")]:
        for mode in ("whole", "chunked"):
            print(json.dumps(measure(path, mode, chunk_rows)), flush=True)


if __name__ == "__main__":
    main()
