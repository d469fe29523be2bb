"""The go-live backfill (`credit backfill`): a demo province loaded file by file, then an ordinary
night, gives the output of one first night over the same landing with the same verdicts; a backfill
killed mid-way (SIGKILL, on SQLite and on PostgreSQL) resumes to the same history; progress is
reported per file; bad files are rejected or held one by one while the backfill goes on."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import hostile_corpus
import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import REPO, run_cli

AS_OF = "2026-06-30"
ENTITIES = 600
# What a first night records per file and per quarantined line, without the run that recorded it.
FILE_COLUMNS = "path, status, reject_code, received, accepted, quarantined, excluded, sha256, feed"
VERDICTS = (
    f"select {FILE_COLUMNS} from landed_files",
    "select path, line_no, provider, reasons, raw_json from quarantine",
    # feed presence is the night's gate; the backfill leaves it to the night after
    "select gate, scope, hard, passed, observed, threshold, message from gate_results "
    "where gate not in ('feed_present', 'expectations_ran')",
    "select table_name, sum(rows), known_from from record_batches group by table_name, known_from",
)


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    from scoring.world.province import write_deliveries

    out = tmp_path_factory.mktemp("backfill_province")
    write_deliveries(out, AS_OF, n_entities=ENTITIES, seed=5, defect_rate=0.02)
    return out / "landing"


def _home_args(home: Path, url: str | None) -> list[str]:
    return ["--home", str(home)] + (["--db", url] if url else [])


def night(landing: Path, home: Path, url: str | None = None) -> dict:
    p = run_cli(
        "run",
        "--as-of",
        AS_OF,
        "--landing",
        str(landing),
        *_home_args(home, url),
        "--json",
        env={"CREDIT_DB_URL": ""},
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout)


def backfill_json(landing: Path, home: Path, url: str | None = None) -> list[dict]:
    p = run_cli(
        "backfill",
        "--as-of",
        AS_OF,
        "--landing",
        str(landing),
        *_home_args(home, url),
        "--json",
        env={"CREDIT_DB_URL": ""},
    )
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr[-3000:]
    return [json.loads(line) for line in p.stdout.splitlines()]


def rows(home: Path, sql: str, url: str | None = None) -> list[tuple]:
    eng = sa.create_engine(url or f"sqlite:///{home / 'credit.db'}")
    try:
        with eng.connect() as conn:
            return sorted(tuple(str(v) for v in r) for r in conn.execute(sa.text(sql)))
    finally:
        eng.dispose()


@pytest.fixture(scope="module")
def first_night(landing, tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("first_night")
    return {"home": home, "summary": night(landing, home)}


@pytest.fixture(scope="module")
def backfilled(landing, tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("backfilled")
    events = backfill_json(landing, home)
    return {"home": home, "events": events, "done": events[-1], "night": night(landing, home)}


def test_the_night_after_a_backfill_is_the_first_night(first_night, backfilled):
    after, first = backfilled["night"], first_night["summary"]
    assert after["status"] == first["status"] == "published"
    assert after["deliveries"]["files"] == 0  # every file was stored by the backfill
    assert after["output_sha256"] == first["output_sha256"]
    assert after["tiers"] == first["tiers"]
    for sql in VERDICTS:
        assert rows(backfilled["home"], sql) == rows(first_night["home"], sql), sql
    runs = rows(backfilled["home"], "select run_id, kind, status from runs")
    files = [e for e in backfilled["events"] if e["event"] == "file"]
    assert [r for r in runs if r[1] == "backfill"] == sorted(
        (e["run_id"], "backfill", "loaded") for e in files
    )


def test_progress_is_reported_file_by_file(backfilled, landing):
    files = [e for e in backfilled["events"] if e["event"] == "file"]
    n = len(list(landing.glob("*/*")))
    assert [e["files_done"] for e in files] == list(range(1, n + 1))
    assert {e["files_total"] for e in files} == {n}
    assert all(b["rows"] == a["rows"] + b["received"] for a, b in zip(files, files[1:]))
    assert all(e["rows_per_s"] > 0 and e["eta_s"] is not None for e in files)
    assert files[-1]["eta_s"] == 0
    # the register first (records are judged against registration dates), the change feed last
    assert files[0]["path"].endswith("_register.csv")
    assert files[-1]["path"].endswith("_credit_change.csv")
    done = backfilled["done"]
    assert done["event"] == "done" and done["loaded_now"] == n and done["already_stored"] == 0
    assert done["rows"] == files[-1]["rows"] and done["outcomes"] == {"loaded": n}


def test_a_backfill_after_go_live_is_refused(backfilled, landing):
    p = run_cli(
        "backfill",
        "--as-of",
        AS_OF,
        "--landing",
        str(landing),
        "--home",
        str(backfilled["home"]),
        env={"CREDIT_DB_URL": ""},
    )
    assert p.returncode == 1 and "published nights" in p.stderr, p.stderr[-2000:]


def _start(landing: Path, home: Path, url: str | None) -> subprocess.Popen:
    env = dict(os.environ, CREDIT_DB_URL="")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scoring",
            "backfill",
            "--as-of",
            AS_OF,
            "--landing",
            str(landing),
            *_home_args(home, url),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def test_a_backfill_killed_after_some_files_resumes_to_the_same_history(
    landing, backfilled, first_night, tmp_path
):
    home = tmp_path / "home"
    proc = _start(landing, home, None)
    lines = []
    for line in proc.stderr:  # progress lines, one per file
        if line.startswith("backfill ["):
            lines.append(line)
            if len(lines) == 5:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert re.match(
        r"backfill \[1/\d+\] samr/\d{8}_register\.csv: loaded, [\d,]+ rows \([\d,]+ accepted, "
        r"[\d,]+ quarantined\) — [\d,]+ rows in [\d.]+ s, [\d,]+ rows/s, ETA \d",
        lines[0],
    ), lines[0]
    resumed = backfill_json(landing, home)[-1]
    assert resumed["already_stored"] >= 5
    assert resumed["history_sha256"] == backfilled["done"]["history_sha256"]
    assert night(landing, home)["output_sha256"] == first_night["summary"]["output_sha256"]


def _count(url: str, sql: str) -> int:
    eng = sa.create_engine(url)
    try:
        with eng.connect() as conn:
            return conn.execute(sa.text(sql)).scalar()
    except sa.exc.SQLAlchemyError:  # the tables are not created yet
        return 0
    finally:
        eng.dispose()


@pytest.mark.postgres
def test_a_backfill_killed_inside_a_file_resumes_on_postgres(
    landing, backfilled, first_night, tmp_path, pg_url
):
    """Killed between a file's staging and its gate: the file is redone under its run id."""
    home = tmp_path / "home"
    proc = _start(landing, home, pg_url)
    deadline = time.monotonic() + 600

    def inside_a_file() -> bool:
        staged = _count(pg_url, "select count(*) from landed_files where status = 'staged'")
        return bool(staged) and (
            _count(pg_url, "select count(*) from runs where status = 'loaded'") >= 3
        )

    while proc.poll() is None and time.monotonic() < deadline:
        if inside_a_file():
            # Held still, then asked again: it dies in the state just read, not a moment later.
            proc.send_signal(signal.SIGSTOP)
            if inside_a_file():
                proc.send_signal(signal.SIGKILL)
                break
            proc.send_signal(signal.SIGCONT)
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()[-2000:]
    half = rows(home, "select run_id, path from landed_files where status = 'staged'", pg_url)
    assert len(half) == 1
    resumed = backfill_json(landing, home, pg_url)[-1]
    assert resumed["history_sha256"] == backfilled["done"]["history_sha256"]
    assert (half[0][0], "loaded") in rows(home, "select run_id, status from runs", pg_url)
    assert night(landing, home, pg_url)["output_sha256"] == first_night["summary"]["output_sha256"]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict:
    from scoring.world.province import write_deliveries

    root = tmp_path_factory.mktemp("backfill_hostile")
    as_of = "2026-03-31"
    write_deliveries(root / "province", as_of, n_entities=400, seed=11, defect_rate=0.0)
    landing = root / "province" / "landing"
    cases = hostile_corpus.build(
        landing,
        (landing / "samr" / "20260331_penalty.csv").read_bytes(),
        (landing / "ema" / "20260331_penalty.xlsx").read_bytes(),
        root / "outside",
    )
    out = {"landing": landing, "cases": cases, "as_of": as_of}
    for how in ("run", "backfill"):
        home = root / how
        p = run_cli(
            how,
            "--as-of",
            as_of,
            "--landing",
            str(landing),
            "--home",
            str(home),
            "--json",
            env={"CREDIT_DB_URL": ""},
        )
        out[how] = {"proc": p, "home": home}
    return out


def test_bad_files_are_judged_one_by_one_and_the_backfill_goes_on(hostile):
    p = hostile["backfill"]["proc"]
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr[-3000:]
    events = [json.loads(line) for line in p.stdout.splitlines()]
    done = events[-1]
    assert done["event"] == "done" and done["outcomes"].get("rejected", 0) >= 10
    by_path = {e["path"]: e for e in events if e["event"] == "file"}
    for case in hostile["cases"]:
        if case.outcome[0] == "rejected" and case.rel in by_path:
            assert by_path[case.rel]["outcome"] == "rejected", case.name
    # each file gets the verdict the one night over the same landing gave it
    assert hostile["run"]["proc"].returncode == 0, hostile["run"]["proc"].stderr[-3000:]
    sql = f"select {FILE_COLUMNS}, message from landed_files"
    assert rows(hostile["backfill"]["home"], sql) == rows(hostile["run"]["home"], sql)
    quarantined = "select path, line_no, reasons from quarantine"
    assert rows(hostile["backfill"]["home"], quarantined) == rows(
        hostile["run"]["home"], quarantined
    )


def test_a_file_a_hard_gate_stops_is_held_alone_and_the_first_night_reads_it_again(tmp_path):
    from scoring.world.province import write_deliveries

    write_deliveries(tmp_path / "p", AS_OF, n_entities=200, seed=3, defect_rate=0.0)
    landing = tmp_path / "p" / "landing"
    good = landing / "eco" / "20260630_penalty.csv"
    frame = pd.read_csv(good, dtype=str, encoding="gb18030", keep_default_na=False)
    # at least 40 rows (the quarantine share is judged from 20), each with its own decision number
    frame = pd.concat(
        [frame.assign(**{frame.columns[13]: frame.iloc[:, 13] + f"-{i}"}) for i in range(40)]
    )
    frame.iloc[:, 2] = "not-a-uscc"  # every row quarantined: the quarantine share gate fails
    bad = "eco/20260630_penalty_resent.csv"
    frame.to_csv(landing / bad, index=False, encoding="gb18030")
    home = tmp_path / "home"
    events = backfill_json(landing, home)
    outcome = {e["path"]: e["outcome"] for e in events if e["event"] == "file"}
    assert outcome.pop(bad) == "held" and set(outcome.values()) == {"loaded"}
    assert rows(home, f"select status from landed_files where path = '{bad}'") == [("held",)]
    p = run_cli(
        "run",
        "--as-of",
        AS_OF,
        "--landing",
        str(landing),
        "--home",
        str(home),
        "--json",
        env={"CREDIT_DB_URL": ""},
    )
    after = json.loads(p.stdout)
    assert p.returncode == 1 and after["status"] == "gate_failed"
    assert after["deliveries"]["files"] == 1  # the held file only: the others are stored
    assert "quarantine_share" in after["message"] and bad in after["message"]
