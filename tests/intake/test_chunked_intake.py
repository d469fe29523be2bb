"""Chunked intake gives what whole-file intake gives: the same staged rows, the same verdicts and
quarantine reasons, the same accepted rows (byte for byte as Parquet), whatever the chunk size,
down to one row, across every feed `credit demo-data` writes and the hostile corpus."""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import hostile_corpus
import pandas as pd
import provider_formats as pf
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from scoring.common.catalogue import Catalogue
from scoring.history.folders import RunFolder
from scoring.intake import csv_stream as cs
from scoring.intake import sinks
from scoring.intake.deliveries import raw_values, stage_deliveries
from scoring.intake.ingest import (
    file_chunks,
    open_file,
    read_bytes,
    read_file,
    stage_changes,
    stage_entities,
    stage_records,
)
from scoring.intake.layouts import PENALTY
from scoring.intake.readers import UnusableFile
from scoring.quality import gates as qg
from scoring.quality import validate as quality

AS_OF = "2026-03-31"
WHOLE = 10**9
FILE_ROWS = 10
SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.reset_index(drop=True).to_parquet(buf, index=False)
    return buf.getvalue()


def _sha(frame: pd.DataFrame) -> str:
    return hashlib.sha256(_bytes(frame)).hexdigest()


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """Every feed of a small province plus the hostile corpus, in one landing folder."""
    from scoring.world.province import write_deliveries

    root = tmp_path_factory.mktemp("chunked")
    write_deliveries(root / "province", AS_OF, n_entities=120, seed=5, defect_rate=0.05)
    landing = root / "province" / "landing"
    template_csv = (landing / "samr" / "20260331_penalty.csv").read_bytes()
    template_xlsx = (landing / "ema" / "20260331_penalty.xlsx").read_bytes()
    hostile_corpus.build(landing, template_csv, template_xlsx, root / "outside")
    return landing, Catalogue.load()


def _stage(landing, cat, chunk_rows, out, on_chunk=None):
    return stage_deliveries(
        landing,
        pd.Timestamp(AS_OF),
        cat,
        pd.DataFrame(),
        "r1",
        out=out,
        chunk_rows=chunk_rows,
        on_chunk=on_chunk,
    )


@pytest.fixture(scope="module")
def whole(night, tmp_path_factory):
    """The night staged with every file in one chunk: the whole-file reference."""
    landing, cat = night
    return _stage(landing, cat, WHOLE, tmp_path_factory.mktemp("whole"))


def _table_bytes(path: Path) -> bytes:
    """A Parquet file's rows re-serialised in one row group: its content, whatever its layout
    in row groups (which chunking changes)."""
    table = pq.read_table(path)
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=max(table.num_rows, 1))
    return buf.getvalue()


def _written(night) -> dict:
    """Everything a staged night wrote: each table's content, each file's raw values, the file
    rows and the raw-values index."""
    out = {k: _table_bytes(night.out / f"{t}.parquet") for k, t in sinks.TABLES.items()}
    out |= {f"raw {f}": _table_bytes(night.out / "raw" / p) for f, p in night.raw_index.items()}
    return out | {"files": night.files, "raw_index": night.raw_index}


def test_the_night_covers_every_feed(whole):
    feeds = {r.get("feed") for r in whole.files if r["status"] == "staged"}
    assert {
        "register",
        "penalty",
        "licence",
        "credit_record",
        "dishonest_debtor",
        "credit_change",
    } <= feeds
    assert len(whole.unparsed) > 0  # the hostile corpus's unparseable lines are in it


@pytest.fixture(scope="module")
def read_files(night):
    """Every file of the night that reads, with how the night stages it."""
    landing, cat = night
    delivered = pd.Timestamp(AS_OF)
    out = []
    for path in sorted(p for p in landing.rglob("*") if p.is_file() and not p.is_symlink()):
        try:
            raw = read_file(path, provider=path.parent.name)
        except UnusableFile:
            continue
        if raw.missing_required:
            continue
        # Each file's first rows (chunks down to one row cost a staging pass per row): the
        # whole files, in chunks of 7, are compared through stage_deliveries below.
        raw = replace(raw, rows=raw.rows.head(FILE_ROWS))
        feed = raw.layout.feed
        if feed == "register":
            stage = lambda r: stage_entities(r, delivered)  # noqa: E731
        elif feed == "credit_change":
            stage = lambda r: stage_changes(r, delivered)  # noqa: E731
        else:
            stage = lambda r: stage_records(r, cat, delivered)  # noqa: E731
        out.append((raw, stage, _bytes(stage(raw))))
    assert len(out) > 20
    return out


@settings(SETTINGS, max_examples=6)
@given(chunk_rows=st.integers(min_value=1, max_value=FILE_ROWS + 1))
def test_chunked_staging_is_byte_identical(read_files, chunk_rows):
    for raw, stage, whole_bytes in read_files:
        parts = [stage(chunk) for chunk in file_chunks(raw, chunk_rows)]
        assert _bytes(pd.concat(parts)) == whole_bytes, raw.path


@settings(SETTINGS, max_examples=3)
@given(chunk_rows=st.sampled_from([1, 3, 50]))
def test_the_night_writes_the_same_in_chunks(night, whole, chunk_rows):
    """The whole night through stage_deliveries, chunk by chunk into the sinks: the same staged
    tables, raw values, file rows and index as one chunk per file."""
    landing, cat = night
    with tempfile.TemporaryDirectory() as tmp:
        got = _written(_stage(landing, cat, chunk_rows, Path(tmp)))
    assert got.keys() == _written(whole).keys()
    for key, value in _written(whole).items():
        assert got[key] == value, key


def test_the_staged_tables_keep_their_names_and_types(whole, tmp_path):
    """The files are the run folder's staged tables, and read back with the dtypes the staged
    frames had; a night without rows writes the same schemas."""
    assert tuple(sinks.TABLES.values()) == RunFolder.STAGED_TABLES
    run = RunFolder(tmp_path / "run")  # the ingest step stages into run.staged
    assert run.raw == run.staged / "raw"
    for kind, table in sinks.TABLES.items():
        assert run.staged_table(table) == run.staged / f"{table}.parquet"
        assert pq.read_schema(whole.out / f"{table}.parquet").metadata == (
            sinks.SCHEMAS[kind].metadata
        )
    empty = stage_deliveries(
        tmp_path / "nothing",
        pd.Timestamp(AS_OF),
        Catalogue.load(),
        pd.DataFrame(),
        "r0",
        out=tmp_path / "staged",
    )
    for kind, table in sinks.TABLES.items():
        frame = empty.table(kind)
        assert len(frame) == 0
        assert frame.dtypes.to_dict() == whole.table(kind).dtypes.to_dict(), kind
        assert pq.read_schema(empty.out / f"{table}.parquet").equals(
            pq.read_schema(whole.out / f"{table}.parquet"), check_metadata=True
        )


def test_a_file_that_fails_part_way_leaves_nothing_behind(night, whole, tmp_path):
    """A file whose second chunk cannot be staged is rejected whole: the rows of its first chunk
    are taken back out of the tables, and every other file is staged as before."""
    landing, cat = night
    victim = next(
        f["path"] for f in whole.files if f.get("feed") == "penalty" and f["received"] > 4
    )
    seen = []

    def fail_second(c, kind, frame):
        if c.rel == victim and kind == "records":
            seen.append(len(frame))
            if len(seen) == 2:
                raise RuntimeError("staging broke")
        return frame

    got = _stage(landing, cat, 2, tmp_path / "staged", on_chunk=fail_second)
    row = next(f for f in got.files if f["path"] == victim)
    assert (row["status"], row["reject_code"]) == ("rejected", "unreadable_content")
    assert victim not in got.raw_index
    for kind in ("records", "held"):
        want = whole.table(kind)
        col = "source_file" if kind == "records" else "path"
        want = want[want[col] != victim].reset_index(drop=True)
        assert got.table(kind).equals(want), kind


def test_raw_values_reads_back_the_rows_asked_for(whole):
    rec = whole.records
    rows = rec.iloc[::5]
    got = raw_values(whole.out / "raw", whole.raw_index, rows)
    assert got.notna().all()
    for i in rows.index[:20]:
        values = json.loads(got[i])
        raw = pd.read_parquet(whole.out / "raw" / whole.raw_index[rec.at[i, "source_file"]])
        line = raw[raw["line_no"] == rec.at[i, "line_no"]].drop(columns="line_no").iloc[0]
        assert values == {k: ("" if pd.isna(v) else v) for k, v in line.items()}


def _validate(staged, cat, chunk_rows, stored_rec, stored_ent):
    return qg.validate_staged(
        quality.gx_context(None),
        staged["records"],
        staged["entities"],
        staged["changes"],
        stored_ent,
        stored_rec,
        pd.DataFrame(),
        cat,
        AS_OF,
        "r1",
        chunk_rows=chunk_rows,
        with_docs=False,
    )


def _outcome(v: qg.StagedVerdicts, unparsed: pd.DataFrame) -> dict:
    quar = qg.build_quarantine(
        v, unparsed, lambda rows: pd.Series("", index=rows.index, dtype="string"), "r1"
    )
    out = {f"reasons.{t}": list(v.reasons[t].astype(str)) for t, _ in v.tables()}
    out |= {f"accepted.{t}": _sha(f) for t, f in qg.accepted_tables(v).items()}
    out["quarantine"] = _sha(quar)
    out["summary"] = {
        t: [(s["reason"], s["unexpected"]) for s in x.summary] for t, x in v.validations.items()
    }
    return out


# (no shrinking: each example runs GX dozens of times; a failure is reported as drawn)
@settings(SETTINGS, max_examples=8, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(
    data=st.data(),
    chunk_rows=st.integers(min_value=1, max_value=4),
)
def test_chunked_validation_gives_the_same_verdicts(night, whole, data, chunk_rows):
    """A sample of each table (rows drawn with repeats, so duplicates straddle chunk boundaries),
    against stored records some of them repeat: same reasons, quarantine and accepted rows."""
    _, cat = night
    staged = {}
    for table in ("records", "entities", "changes"):
        frame = getattr(whole, table)
        least = 1 if table == "records" else 0  # (stored records are drawn from these)
        rows = data.draw(
            st.lists(st.integers(0, len(frame) - 1), min_size=least, max_size=5), label=table
        )
        staged[table] = frame.iloc[rows].reset_index(drop=True)
    stored = staged["records"].head(2)
    stored_rec = stored.assign(
        record_key=qg.record_key(stored), content_sha=qg.record_content_hash(stored)
    )[["record_key", "content_sha"]]
    unparsed = whole.unparsed.head(3)
    stored_ent = whole.entities[["uscc", "registered_date"]].dropna().head(3)
    one = _outcome(_validate(staged, cat, WHOLE, stored_rec, stored_ent), unparsed)
    chunked = _outcome(_validate(staged, cat, chunk_rows, stored_rec, stored_ent), unparsed)
    assert chunked == one


def test_the_whole_night_chunked_at_a_moderate_size(night, whole):
    """Every row of the night (not a sample) through the suites in chunks of 97 rows."""
    _, cat = night
    staged = {t: getattr(whole, t) for t in ("records", "entities", "changes")}
    one = _outcome(_validate(staged, cat, WHOLE, pd.DataFrame(), pd.DataFrame()), whole.unparsed)
    chunked = _outcome(_validate(staged, cat, 97, pd.DataFrame(), pd.DataFrame()), whole.unparsed)
    assert chunked == one
    assert any(r for r in one["reasons.records"])  # the night has quarantined rows to compare


# --------------------------------------------------------------------------- chunked reading


def _whole_read(read):
    """(verdict or head, rows, raw values, unparsed rows) of a whole-file read."""
    try:
        raw = read()
    except UnusableFile as exc:
        return ("rejected", exc.code, str(exc)), None, None, None
    return pf.file_head(raw), raw.rows, raw.raw, raw.bad_rows


def _chunked_read(path: Path, chunk_rows: int, block: int):
    try:
        head, chunks = open_file(path, chunk_rows, provider="p", block=block)
        parts = list(chunks)
    except UnusableFile as exc:
        return ("rejected", exc.code, str(exc)), None, None, None
    assert all(len(c.rows) <= chunk_rows for c in parts)
    return (
        pf.file_head(head),
        *(pd.concat([getattr(c, a) for c in parts]) for a in ("rows", "raw", "bad_rows")),
    )


def _same_read(whole, chunked, what) -> None:
    assert chunked[0] == whole[0], what
    if whole[1] is None:
        return
    for got, want, name in zip(chunked[1:], whole[1:], ("rows", "raw", "bad_rows"), strict=True):
        got, want = got.reset_index(drop=True), want.reset_index(drop=True)
        if name == "bad_rows":  # (an empty chunk's list of unparsed rows has no string dtype)
            got, want = (
                got.astype({"reason": str, "raw": str}),
                want.astype({"reason": str, "raw": str}),
            )
            got["line_no"] = got["line_no"].astype("int64")
            want["line_no"] = want["line_no"].astype("int64")
        pd.testing.assert_frame_equal(got, want, obj=f"{what} {name}")


@pytest.fixture(scope="module")
def whole_reads(night):
    """Every file of the night (CSV, XLSX, hostile) read whole: the reference."""
    landing, _ = night
    paths = sorted(p for p in landing.rglob("*") if p.is_file() and not p.is_symlink())
    return [(p, _whole_read(lambda p=p: read_file(p, provider="p"))) for p in paths]


@settings(SETTINGS, max_examples=8)
@given(
    chunk_rows=st.integers(min_value=1, max_value=11),
    block=st.one_of(st.integers(min_value=4, max_value=300), st.just(8 << 20)),
)
def test_chunked_reading_gives_what_whole_file_reading_gives(whole_reads, chunk_rows, block):
    """Every file of the night, read in blocks of bytes down to one and chunks down to one row:
    the same verdict (code and message), head (encoding, layout, header row, content hash), rows,
    raw values and unparsed rows with their reasons and line numbers."""
    for path, whole in whole_reads:
        _same_read(
            whole, _chunked_read(path, chunk_rows, block), f"{path.name} {chunk_rows}/{block}"
        )


HEADER = PENALTY.standard_headers()
_cell = st.lists(
    st.sampled_from(list('ab ,"\r\n中文\u3000') + ["\ufeff", "x" * 30]), max_size=6
).map("".join)


def _line(row) -> str:
    import csv

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(row)
    return buf.getvalue()[:-2]


@st.composite
def csv_deliveries(draw) -> bytes:
    """CSV files a provider (or a careless one) writes: title rows, any line end (LF CR too),
    quoted line ends, rows of the wrong width, broken quotes, no final line end, a cut tail, in
    UTF-8 (BOM or not) or GB18030."""
    eol = draw(st.sampled_from(["\n", "\r\n", "\r", "\n\r"]))
    rows = draw(
        st.lists(st.lists(_cell, min_size=len(HEADER) - 1, max_size=len(HEADER) + 1), max_size=14)
    )
    lines = [_line(r) for r in [HEADER, *rows]]
    for i in draw(st.lists(st.integers(1, max(len(lines) - 1, 1)), max_size=2)):
        if i < len(lines):
            lines[i] = lines[i] + ',"open'  # a quote that never closes
    titles = draw(st.sampled_from([[], ["某市行政处罚信息公示"], ["表一", ""]]))
    text = eol.join(titles + lines) + draw(st.sampled_from([eol, ""]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]))
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        data = text.encode("utf-8")
    return data[: len(data) - draw(st.sampled_from([0, 0, 0, 1, 2]))]


@settings(SETTINGS, max_examples=150)
@given(
    data=csv_deliveries(),
    chunk_rows=st.integers(min_value=1, max_value=6),
    block=st.integers(min_value=1, max_value=64),
)
def test_chunked_reading_of_any_csv_gives_what_whole_file_reading_gives(data, chunk_rows, block):
    whole = _whole_read(lambda: read_bytes(data, "20260331_penalty.csv", provider="p"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p" / "20260331_penalty.csv"
        path.parent.mkdir()
        path.write_bytes(data)
        chunked = _chunked_read(path, chunk_rows, block)
    _same_read(whole, chunked, f"{chunk_rows}/{block}")


@pytest.mark.parametrize("quoted", [False, True])
def test_a_record_longer_than_arrows_small_block_reads_as_whole_file_reading_reads_it(
    tmp_path, quoted
):
    """A record longer than the block Arrow reads a chunked file in: read with the block whole-file
    reading has, so it is judged the same."""
    long = "x" * (cs.SMALL_READ_BLOCK + 10)
    long = f'"{long}\n{long}"' if quoted else long
    rows = [
        ",".join(HEADER),
        ",".join(["a"] * len(HEADER)),
        ",".join([long] * 2 + ["b"] * (len(HEADER) - 2)),
    ]
    data = ("\n".join(rows + rows[1:2]) + "\n").encode()
    path = tmp_path / "p" / "20260331_penalty.csv"
    path.parent.mkdir()
    path.write_bytes(data)
    whole = _whole_read(lambda: read_bytes(data, path.name, provider="p"))
    assert len(whole[3]) >= 1  # the long record is quarantined (how depends on its quotes)
    _same_read(whole, _chunked_read(path, 1, 1 << 16), "long record")


# --------------------------------------------------------------------------- memory

_MEASURE = """
import json, sys, tracemalloc
from pathlib import Path
import pandas as pd, pyarrow as pa
from scoring.common.catalogue import Catalogue
from scoring.intake.deliveries import stage_deliveries

landing, out, chunk_rows, block = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
cat = Catalogue.load()
def night(folder, out):
    return stage_deliveries(folder, pd.Timestamp("2026-03-31"), cat, pd.DataFrame(), "r1", out=out,
                            chunk_rows=chunk_rows, read_block=block)
night(landing.parent / "warm", out.parent / (out.name + "-warm"))  # imports and caches first
tracemalloc.start()
staged = night(landing, out)
print(json.dumps({"python": tracemalloc.get_traced_memory()[1],
                  "arrow": pa.default_memory_pool().max_memory(),
                  "received": sum(f["received"] for f in staged.files)}))
"""


def _peak(landing: Path, out: Path, chunk_rows: int, block: int) -> dict:
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(landing), str(out), str(chunk_rows), str(block)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _province_file(template: Path, rows: int, to: Path) -> None:
    """A penalty file of `rows` rows (the template's rows again, each with its own number)."""
    lines = template.read_text("utf-8-sig").splitlines()
    body = [line for line in lines[1:] if line.strip()]
    to.parent.mkdir(parents=True)
    with to.open("w", encoding="utf-8") as f:
        f.write(lines[0] + "\n")
        for i in range(rows):
            f.write(body[i % len(body)].replace(",", f",{i}-", 1) + "\n")


def test_chunked_ingest_holds_a_fraction_of_what_whole_file_ingest_holds(night, tmp_path):
    """Not timed: one 40,000-row CSV (16 MB) staged in chunks of 4,000 rows and blocks of 256 KB,
    and whole (one chunk, one block), each in its own process. The chunked peak (Python heap
    under tracemalloc plus Arrow's pool) is well below the whole-file one, and the staged tables
    are the same."""
    landing, _ = night
    template = landing / "samr" / "20260331_penalty.csv"
    _province_file(template, 40_000, tmp_path / "big" / "samr" / "20260331_penalty.csv")
    _province_file(template, 10, tmp_path / "warm" / "samr" / "20260331_penalty.csv")
    size = (tmp_path / "big" / "samr" / "20260331_penalty.csv").stat().st_size
    chunked = _peak(tmp_path / "big", tmp_path / "chunked", 4_000, 256 << 10)
    whole = _peak(tmp_path / "big", tmp_path / "whole", 10**9, size)
    assert chunked["received"] == whole["received"] == 40_000
    for table in sinks.TABLES.values():
        name = f"{table}.parquet"
        assert _table_bytes(tmp_path / "chunked" / name) == _table_bytes(tmp_path / "whole" / name)
    ratio = (chunked["python"] + chunked["arrow"]) / (whole["python"] + whole["arrow"])
    assert ratio < 0.5, (chunked, whole)
