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
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from scoring.common.catalogue import Catalogue
from scoring.history.folders import RunFolder
from scoring.intake import sinks
from scoring.intake.deliveries import raw_values, stage_deliveries
from scoring.intake.ingest import (
    file_chunks,
    read_file,
    stage_changes,
    stage_entities,
    stage_records,
)
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
