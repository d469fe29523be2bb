"""The gate over a night's staged tables read in chunks (scoring.quality.stream) gives what the
whole-table gate gives: the same quarantine rows and reasons, the same counts per file, the same
suites' results, and the same batches (the very bytes, so the same content hash) whatever the
chunk size, down to one row; duplicates straddling chunks stay duplicates, records are judged
against register rows and changes against records of other chunks. The whole-table gate
(validate_staged, build_quarantine, reconcile_files, accepted_tables, write_batch) is the reference.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import hostile_corpus
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from scoring.common.catalogue import Catalogue
from scoring.history.batches import write_batch
from scoring.history.spool import BatchSpool, FrameSpool
from scoring.intake.deliveries import stage_deliveries
from scoring.quality import gates as qg
from scoring.quality import stream
from scoring.quality import validate as quality

AS_OF = "2026-03-31"
KNOWN = "2026-03-31"
WHOLE = 10**9
SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # each example runs GX many times
)
TABLES = {"stg_record": "records", "stg_entity": "entities", "stg_change": "changes"}


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """Every feed of a small province plus the hostile corpus, staged as one night."""
    from scoring.world.province import write_deliveries

    root = tmp_path_factory.mktemp("chunked_gate")
    write_deliveries(root / "province", AS_OF, n_entities=120, seed=5, defect_rate=0.05)
    landing = root / "province" / "landing"
    template_csv = (landing / "samr" / "20260331_penalty.csv").read_bytes()
    template_xlsx = (landing / "ema" / "20260331_penalty.xlsx").read_bytes()
    hostile_corpus.build(landing, template_csv, template_xlsx, root / "outside")
    cat = Catalogue.load()
    night = stage_deliveries(
        landing, pd.Timestamp(AS_OF), cat, pd.DataFrame(), "r1", out=root / "staged"
    )
    # The staged tables as the gate step reads them: Parquet, as the ingest step wrote them.
    tables = {t: getattr(night, t) for t in ("records", "entities", "changes", "unparsed")}
    return SimpleNamespace(**tables, files=night.files), cat


def _stored(staged) -> dict:
    """A store that already holds some of the night's records (some unchanged: resends of a
    stored record; some with other content), registrations and changes, as the lookups read it."""
    rec = staged.records.iloc[::4].copy()
    rec["record_key"] = qg.record_key(rec)
    rec["content_sha"] = qg.record_content_hash(rec)
    rec.loc[rec.index[::3], "content_sha"] += np.uint64(1)  # another version of the record
    rec = rec.assign(batch_id=np.where(np.arange(len(rec)) % 2, "bf:1", "night:1"))
    ent = staged.entities[["uscc", "registered_date"]].iloc[::5]
    ent = ent.assign(registered_date=ent["registered_date"] - pd.Timedelta(days=400))
    chg = staged.changes.iloc[::3].copy()
    chg["change_key"] = (
        chg["record_key"].fillna("")
        + "|"
        + chg["op"].fillna("")
        + "|"
        + chg["effective_date"].dt.strftime("%Y-%m-%d").fillna("")
    )
    return {"records": rec, "entities": ent, "changes": chg}


def _lookups(stored: dict, backfill: bool):
    """(stored, earlier) as the gate step reads them: rows by key, in stored order."""

    def stored_rows(rec_keys, usccs):
        def by(table, col, values):
            f = stored[table]
            return f[f[col].isin(values)].reset_index(drop=True) if values else pd.DataFrame()

        return (
            by("entities", "uscc", usccs),
            by("records", "record_key", rec_keys),
            by("changes", "record_key", rec_keys),
        )

    def earlier(stored_rec, usccs):
        records = (
            stored_rec.loc[stored_rec["batch_id"] == "bf:1", ["record_key", "content_sha"]]
            if len(stored_rec)
            else pd.DataFrame(columns=["record_key", "content_sha"])
        )
        held = stored["entities"]["uscc"].iloc[::2]
        return {"records": records, "entities": set(held[held.isin(usccs)])}

    return stored_rows, (earlier if backfill else None)


def _write_staged(folder: Path, tables: dict, row_group: int) -> dict:
    """The staged tables as the ingest step leaves them (Parquet, many row groups)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, frame in tables.items():
        paths[name] = folder / f"{name}.parquet"
        table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
        pq.write_table(table, paths[name], row_group_size=row_group)
    return paths


def _raw_values(rows: pd.DataFrame) -> pd.Series:
    return (rows["source_file"] + ":" + rows["line_no"].astype("string")).astype("string")


def _reference(tables, files, cat, stored_rows, earlier, corrections, lake: Path) -> dict:
    """The whole-table gate: every staged row at once."""
    rec, ent, chg = (tables[t] for t in ("stg_record", "stg_entity", "stg_change"))
    keys, usccs = qg.lookup_keys(rec, chg)
    stored_ent, stored_rec, stored_chg = stored_rows(keys, usccs)
    held = None
    if earlier is not None:
        usccs_ent = sorted(set(ent["uscc"].dropna())) if len(ent) else []
        held = earlier(stored_rec, usccs_ent)
    v = qg.validate_staged(
        quality.gx_context(None),
        rec,
        ent,
        chg,
        stored_ent,
        stored_rec,
        stored_chg,
        cat,
        AS_OF,
        "r1",
        corrections=corrections,
        with_docs=False,
        earlier=held,
    )
    quar = qg.build_quarantine(v, tables["unparsed"], _raw_values, "r1")
    batches = {
        t: write_batch(lake, "r1", t, f.rename(columns={"delivered_on": "known_from"}), KNOWN)
        for t, f in qg.accepted_tables(v).items()
        if len(f)
    }
    return {
        "quarantine": quar,
        "files": qg.reconcile_files(files, v, quar),
        "batches": batches,
        "summary": {
            t: [(s["reason"], s["unexpected"]) for s in x.summary] for t, x in v.validations.items()
        },
        "success": {t: x.success for t, x in v.validations.items()},
    }


def _chunked(paths, files, cat, stored_rows, earlier, corrections, lake: Path, spool: Path, rows):
    """The chunked gate, its sinks written as the gate step writes them."""
    sinks = {t: BatchSpool(spool / t, t, rows) for t in ("records", "entities", "changes")}
    sinks |= {s: BatchSpool(spool / s, "exclusions", rows) for s in stream.EXCLUSION_SINKS}
    quar = FrameSpool(spool / "quarantine", "quarantine")
    src = stream.Sources(paths, stored_rows, _raw_values, frozenset(corrections), earlier)
    out = stream.gate_staged(
        quality.gx_context(None),
        src,
        {**sinks, "quarantine": quar.add},
        cat,
        AS_OF,
        "r1",
        chunk_rows=rows,
        with_docs=False,
    )
    spools = [sinks[t] for t in ("records", "entities", "changes")]
    spools.append(BatchSpool.joined([sinks[s] for s in stream.EXCLUSION_SINKS]))
    written = [s.write(lake, "r1", KNOWN) for s in spools]
    frames = list(quar.frames())
    for s in [*sinks.values(), quar]:
        s.close()
    return {
        "quarantine": pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(),
        "files": stream.reconcile(files, out),
        "batches": {b["table_name"]: b for b in written if b is not None},
        "summary": {
            t: [(s["reason"], s["unexpected"]) for s in x.summary]
            for t, x in out.validations.items()
        },
        "success": {t: x.success for t, x in out.validations.items()},
    }


def _same(one: dict, other: dict) -> None:
    assert other["batches"] == one["batches"]  # content hash, rows, batch id: the same bytes
    cols = [*qg.QUARANTINE_COLUMNS, "run_id"]
    want = one["quarantine"].reindex(columns=cols).astype("string")
    got = other["quarantine"].reindex(columns=cols).astype("string")
    got = got.sort_values(["path", "line_no"], key=_line_order, ignore_index=True)
    want = want.sort_values(["path", "line_no"], key=_line_order, ignore_index=True)
    pd.testing.assert_frame_equal(got, want)
    pd.testing.assert_frame_equal(other["files"], one["files"])
    assert other["summary"] == one["summary"]
    assert other["success"] == one["success"]


def _line_order(col: pd.Series) -> pd.Series:
    return pd.to_numeric(col) if col.name == "line_no" else col


def _files(staged) -> pd.DataFrame:
    return pd.DataFrame(staged.files)


def _run(tmp: Path, tables, files, cat, stored, backfill, rows, row_group, corrections=()):
    stored_rows, earlier = _lookups(stored, backfill)
    corrections = set(corrections)
    one = _reference(tables, files, cat, stored_rows, earlier, corrections, tmp / "lake-whole")
    paths = _write_staged(tmp / "staged", tables, row_group)
    got = _chunked(
        paths, files, cat, stored_rows, earlier, corrections, tmp / "lake", tmp / "spool", rows
    )
    _same(one, got)
    assert not any((tmp / "spool").rglob("*.arrow"))
    return one


def _tables(staged) -> dict:
    return {
        "stg_record": staged.records,
        "stg_entity": staged.entities,
        "stg_change": staged.changes,
        "unparsed": staged.unparsed,
    }


@settings(SETTINGS, max_examples=8)
@given(data=st.data(), rows=st.integers(1, 4), backfill=st.booleans())
def test_chunked_gate_on_samples_with_repeats(tmp_path_factory, night, data, rows, backfill):
    """Samples of each staged table drawn with repeats (duplicates and resends straddle chunk
    boundaries; a change's record or a record's register row may be in another chunk)."""
    staged, cat = night
    tables = {}
    for name in ("stg_record", "stg_entity", "stg_change"):
        frame = getattr(staged, TABLES[name])
        picks = data.draw(st.lists(st.integers(0, len(frame) - 1), max_size=9), label=name)
        tables[name] = frame.iloc[picks].reset_index(drop=True)
    tables["unparsed"] = staged.unparsed.head(data.draw(st.integers(0, 3), label="unparsed"))
    files = _files(staged)
    corrections = data.draw(st.sets(st.sampled_from(sorted(files["path"])), max_size=2))
    tmp = tmp_path_factory.mktemp("sample")
    _run(tmp, tables, files, cat, _stored(staged), backfill, rows, 3, corrections)


@settings(SETTINGS, max_examples=3)
@given(rows=st.sampled_from([23, 61, 150]), backfill=st.booleans())
def test_chunked_gate_on_the_whole_night(tmp_path_factory, night, rows, backfill):
    """Every staged row of the night (every feed and the hostile corpus), against a store holding
    some of them, in chunks smaller than every table."""
    staged, cat = night
    tmp = tmp_path_factory.mktemp("whole")
    one = _run(tmp, _tables(staged), _files(staged), cat, _stored(staged), backfill, rows, 17)
    assert len(one["quarantine"]) and {"records", "entities", "changes"} <= set(one["batches"])


def test_one_row_chunks_on_a_night_with_every_kind_of_row(tmp_path, night):
    """Chunks of one row over a night holding a resend from another file, a duplicate within a
    file, a simplified-procedure row, a change naming a record staged tonight, unparsed lines."""
    staged, cat = night
    rec = staged.records
    simplified = rec.index[rec["grade"] == qg.SIMPLIFIED][:1].tolist()
    other = rec["source_file"] != rec["source_file"].iloc[0]
    resend = rec.iloc[[0]].assign(source_file=rec.loc[other, "source_file"].iloc[0])
    named = rec.iloc[[2]]
    chg = staged.changes.head(3)
    chg = pd.concat([chg, chg.head(1)], ignore_index=True)  # the same change twice
    chg.loc[0, "record_key"] = qg.record_key(named).iloc[0]
    tables = {
        "stg_record": pd.concat(
            [rec.iloc[[0, 1, 2, 1]], resend, rec.loc[simplified]], ignore_index=True
        ),
        "stg_entity": pd.concat([staged.entities.head(3)] * 2, ignore_index=True),
        "stg_change": chg,
        "unparsed": staged.unparsed.head(2),
    }
    one = _run(tmp_path, tables, _files(staged), cat, _stored(staged), False, 1, 1)
    assert int(one["files"]["excluded"].sum()) >= 1  # the resend
    assert one["quarantine"]["reasons"].str.contains("duplicate").any()


def _synthetic(staged, copies: int) -> dict:
    """A night ``copies`` times the records of the small one (distinct documents, so distinct
    keys): large enough that the rows held show against what GX and pandas cost anyway."""
    rec = staged.records
    parts = [rec.assign(doc_number=rec["doc_number"].fillna("") + f"-{i}") for i in range(copies)]
    return {
        "stg_record": pd.concat(parts, ignore_index=True),
        "stg_entity": staged.entities,
        "stg_change": staged.changes,
        "unparsed": staged.unparsed,
    }


def measure_child(folder: str, mode: str, rows: int) -> None:
    """In a process of its own: warm GX up on a few rows, then run one gate over the night in
    ``folder`` and print how much its resident memory grew at the peak (bytes)."""
    import gc
    import pickle
    import threading

    from scoring.history import batches, spool

    spool.ROW_GROUP_ROWS = batches.ROW_GROUP_ROWS = 2_000  # the batch's row groups, both ways
    root = Path(folder)
    files, stored = pickle.loads((root / "aux.pkl").read_bytes())
    stored_rows, _ = _lookups(stored, False)
    cat = Catalogue.load()
    paths = {n: root / "staged" / f"{n}.parquet" for n in (*TABLES, "unparsed")}
    warm = {n: next(stream.read_chunks(p, 40), pd.DataFrame()) for n, p in paths.items()}
    warm_paths = _write_staged(root / f"warm-{mode}", warm, 10)
    _chunked(warm_paths, files, cat, stored_rows, None, set(), root / "w1", root / "w2", 20)
    _reference(warm, files, cat, stored_rows, None, set(), root / "w3")
    del warm
    gc.collect()
    before, peak, done = _resident(), [0], threading.Event()

    def sample():  # the resident set, every 10 ms, while the gate runs
        while not done.wait(0.01):
            peak[0] = max(peak[0], _resident())

    sampler = threading.Thread(target=sample)
    sampler.start()
    if mode == "whole":
        tables = {n: pd.read_parquet(p) for n, p in paths.items()}
        _reference(tables, files, cat, stored_rows, None, set(), root / f"lake-{mode}")
        del tables
    else:
        _chunked(paths, files, cat, stored_rows, None, set(), root / "lake", root / "sp", rows)
    done.set()
    sampler.join()
    print(max(peak[0], _resident()) - before)


def _resident() -> int:
    """This process's resident set now, in bytes (Linux)."""
    import os

    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_the_chunked_gate_holds_a_fraction_of_what_the_whole_table_gate_holds(tmp_path, night):
    """Peak resident memory growth of the chunked gate (chunks of 7,000 rows) against the
    whole-table gate over the same 66,000-record night, each in a fresh process (not timed)."""
    import pickle
    import subprocess
    import sys

    staged, cat = night
    _write_staged(tmp_path / "staged", _synthetic(staged, 200), 2_000)
    (tmp_path / "aux.pkl").write_bytes(pickle.dumps((_files(staged), _stored(staged))))
    grew = {}
    for mode in ("chunked", "whole"):
        code = (
            f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import test_chunked_gate as t; t.measure_child({str(tmp_path)!r}, {mode!r}, 7000)"
        )
        out = subprocess.run(
            [sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, check=True
        )
        grew[mode] = int(out.stdout.split()[-1])
    print("resident growth (bytes):", grew)
    assert grew["chunked"] < 0.6 * grew["whole"], grew
