"""Peak memory of reading one large XLSX delivery whole-file against in chunks.

    python -m bench.xlsx_intake --rows 300000 --dir /path/to/scratch [--chunk-rows 250000,50000]
        [--strings shared|inline]

Writes (once) a penalty workbook of `rows` rows, its texts in the shared strings table as Excel
writes them (or inline, by openpyxl's write-only writer), dates as date cells; then reads it in a
fresh process per mode: ``whole`` (read_file, then its rows in chunks as the night used to take
them) and ``chunked`` (open_file). Each child prints its resident set after imports, its
high-water mark (VmHWM), its wall time and a hash of every row it read (values, line numbers,
quarantined rows), so both modes are seen to read the same rows.
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


def _rows(rows: int):
    """(header, then each row): a penalty delivery as a provider's export holds it, each row its
    own entity, decision number and facts; dates as dates; the fine as a number."""
    from scoring.intake.layouts import PENALTY

    header = PENALTY.standard_headers()
    col = {h: i for i, h in enumerate(header)}
    yield header
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
        yield row


def make_inline(path: Path, rows: int) -> None:
    """The workbook by openpyxl's write-only writer (inline strings)."""
    import openpyxl

    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("行政处罚")
    for row in _rows(rows):
        ws.append(row)
    tmp = path.with_name(path.name + ".partial")
    wb.save(tmp)
    tmp.replace(path)


_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG = 'xmlns="http://schemas.openxmlformats.org/package/2006/relationships"'


def make_shared(path: Path, rows: int) -> None:
    """The workbook with every text in the shared strings table, as Excel and WPS write it (each
    distinct text once; dates as serials in a date format)."""
    import zipfile
    from xml.sax.saxutils import escape

    strings: dict[str, int] = {}
    epoch = dt.datetime(1899, 12, 30)
    tmp = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as out:
            out.write(f"<worksheet {_NS}><sheetData>".encode())
            for n, row in enumerate(_rows(rows), start=1):
                cells = []
                for v in row:
                    if isinstance(v, str):
                        cells.append(f'<c t="s"><v>{strings.setdefault(v, len(strings))}</v></c>')
                    elif isinstance(v, dt.datetime):
                        cells.append(f'<c s="1"><v>{(v - epoch).days}</v></c>')
                    elif v is None:
                        cells.append("<c/>")
                    else:
                        cells.append(f"<c><v>{v}</v></c>")
                out.write(f'<row r="{n}">{"".join(cells)}</row>'.encode())
            out.write(b"</sheetData></worksheet>")
        sst = "".join(f"<si><t>{escape(t)}</t></si>" for t in strings)
        z.writestr("xl/sharedStrings.xml", f'<sst {_NS} count="{len(strings)}">{sst}</sst>')
        z.writestr(
            "xl/styles.xml",
            f'<styleSheet {_NS}><cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="14"/>'
            "</cellXfs></styleSheet>",
        )
        z.writestr(
            "_rels/.rels",
            f'<Relationships {_PKG}><Relationship Id="r1" Type="{_REL}/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>',
        )
        z.writestr(
            "xl/workbook.xml",
            f'<workbook {_NS} xmlns:r="{_REL}"><sheets><sheet name="行政处罚" sheetId="1" '
            'r:id="s1"/></sheets></workbook>',
        )
        z.writestr(
            "xl/_rels/workbook.xml.rels",
            f'<Relationships {_PKG}><Relationship Id="s1" Type="{_REL}/worksheet" '
            f'Target="worksheets/sheet1.xml"/><Relationship Id="ss" Type="{_REL}/sharedStrings" '
            f'Target="sharedStrings.xml"/><Relationship Id="st" Type="{_REL}/styles" '
            'Target="styles.xml"/></Relationships>',
        )
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
    ap.add_argument("--strings", choices=["inline", "shared"], default="shared")
    args = ap.parse_args(argv)
    suffix = "" if args.strings == "inline" else "-shared"
    folder = args.dir / f"xlsx{args.rows}{suffix}" / "p"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / NAME
    if not path.exists():
        (make_inline if args.strings == "inline" else make_shared)(path, args.rows)
    print(f"{path}: {path.stat().st_size:,} bytes, {args.rows:,} rows", flush=True)
    for chunk_rows in [int(c) for c in args.chunk_rows.split(",")]:
        for mode in ("whole", "chunked"):
            print(json.dumps(measure(path, mode, chunk_rows)), flush=True)


if __name__ == "__main__":
    main()
