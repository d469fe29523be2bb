"""DAG integrity (imports, no DB or connection access at parse time, tags, retries) and a real
`airflow dags test` run of public_credit_nightly on SQLite."""

import datetime as dt
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import AS_OF, REPO, run_cli

DAGS = REPO / "dags"
BIN = Path(sys.executable).parent

PARSE_PROBE = r"""
import importlib.util, json, os, socket, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))  # as Airflow puts its DAG folder on the path
import airflow.sdk  # Airflow's own start-up may build (not connect) its engine; the DAG files may not.
def _no_network(*a, **k):
    raise RuntimeError("network access at DAG parse time")
socket.socket.connect = _no_network
socket.create_connection = _no_network
import sqlalchemy
import sqlalchemy.engine
def _no_engine(*a, **k):
    raise RuntimeError("database engine created or connected at DAG parse time")
sqlalchemy.create_engine = _no_engine
sqlalchemy.engine.Engine.connect = _no_engine
before = set(sys.modules)
out = {}
for path in sys.argv[1:]:
    spec = importlib.util.spec_from_file_location("dagfile", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for name, obj in vars(mod).items():
        if type(obj).__name__ == "DAG":
            out[obj.dag_id] = {
                "tags": sorted(obj.tags), "doc": bool(obj.doc_md), "catchup": obj.catchup,
                "start_date": obj.start_date.isoformat() if obj.start_date else None,
                "max_active_runs": obj.max_active_runs, "schedule": str(obj.schedule),
                "tasks": {t.task_id: {"retries": t.retries, "upstream": sorted(t.upstream_task_ids),
                                       "backoff": float(t.retry_exponential_backoff or 0)} for t in obj.tasks},
                "params": sorted(obj.params.keys()),
            }
heavy = sorted(m for m in ("pandas", "numpy", "great_expectations", "sklearn", "pyarrow", "scoring.pipeline")
               if m in sys.modules and m not in before)
print(json.dumps({"dags": out, "heavy": heavy}))
"""


def _parse(files, **env_extra):
    env = dict(
        os.environ,
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:////nonexistent/no-db-at-parse-time.db",
        CREDIT_DB_URL="postgresql+psycopg://nobody@203.0.113.1:1/none",
        **env_extra,
    )
    return subprocess.run(
        [sys.executable, "-c", PARSE_PROBE, *files],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def parsed():
    p = _parse(sorted(str(p) for p in DAGS.glob("*.py")), CREDIT_GO_LIVE="2026-12-01")
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_dag_files_import_without_db_network_or_heavy_modules(parsed):
    assert "public_credit_nightly" in parsed["dags"]
    assert parsed["heavy"] == []


def test_shared_dag_module_parses_alone_without_heavy_modules():
    """dags/_shared.py is imported by every DAG file at parse time: no DAG of its own, no DB,
    no network, nothing heavy (the sampling form's YAML read aside)."""
    p = _parse([str(DAGS / "_shared.py")])
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out == {"dags": {}, "heavy": []}


def test_what_the_dags_share_is_declared_once():
    texts = {p.name: p.read_text(encoding="utf-8") for p in DAGS.glob("*.py")}
    for needle in ("Asset(", '"owner":', "AirflowFailException("):
        holders = sorted(n for n, t in texts.items() if needle in t)
        assert holders == ["_shared.py"], (needle, holders)


def test_fail_fast_fails_deterministic_errors_and_lets_others_retry():
    sys.path.insert(0, str(DAGS))
    try:
        from _shared import fail_fast
    finally:
        sys.path.remove(str(DAGS))
    from airflow.sdk.exceptions import AirflowFailException

    from scoring.common.errors import GateFailed

    def raising(exc):
        @fail_fast
        def body(x, y=1):
            """A task body."""
            raise exc

        return body

    for exc in (GateFailed("gate"), ValueError("bad date")):
        with pytest.raises(AirflowFailException, match=f"^data: {exc}$"):
            raising(exc)(1)
    # A code error fails once, in one line naming it (the crash that used to be retried 3 times).
    with pytest.raises(AirflowFailException, match="^code: TypeError: operation 'truediv'"):
        raising(TypeError("operation 'truediv' not supported\n  more"))(1)
    with pytest.raises(OSError):  # transient: left to the task's retries
        raising(OSError("disk"))(1)
    with pytest.raises(AirflowFailException, match="^configuration: .*no_such_landing"):
        raising(FileNotFoundError("no_such_landing"))(1)
    # Airflow reads a task's name, docs and context arguments from the function it decorates.
    body = raising(OSError())
    assert body.__name__ == "body" and body.__doc__ == "A task body."
    assert list(inspect.signature(body).parameters) == ["x", "y"]


def test_pulls_and_pushes_retry_the_network_and_record_the_rest_at_once(parsed):
    """One rule for the exchange tasks: a source's or agency's auth, schema or path error is
    recorded on the first try (the night goes on); a network error or timeout is retried with
    backoff while tries remain and recorded on the last; a failure of the pipeline itself is
    fail_fast's (one line, no retry)."""
    sys.path.insert(0, str(DAGS))
    try:
        from _shared import ExchangeRetry, exchange_rule, exchange_task
    finally:
        sys.path.remove(str(DAGS))
    from airflow.sdk.exceptions import AirflowFailException

    from scoring.common.errors import TRANSIENT, reason_code

    auth = {"source_id": "a", "code": "auth", "message": "source a: the login was refused"}
    schema = {"source_id": "s", "code": "schema", "message": "source s: column SJC missing"}
    slow = {"source_id": "b", "code": "timeout", "message": "source b: no answer in 30s"}
    ok = {"source_id": "c", "code": None, "message": "12 rows"}
    assert exchange_rule([auth, schema, ok], 1, 3) == [auth, schema, ok]  # no retry can help
    with pytest.raises(ExchangeRetry, match="^source b: no answer in 30s$") as got:
        exchange_rule([auth, slow, ok], 1, 3)
    assert reason_code(got.value) == TRANSIENT  # fail_fast leaves it to Airflow's retries
    assert exchange_rule([slow], 4, 3) == [slow]  # the last try records it: a missing delivery

    @exchange_task
    def broken_registry(ctx_json, source_id):
        raise ValueError("source eco-qzj-penalty: provider eco does not deliver 'licence'")

    with pytest.raises(AirflowFailException, match="^data: source eco-qzj-penalty"):
        broken_registry("{}", "eco-qzj-penalty")  # before any context is needed: fails at once
    assert list(inspect.signature(broken_registry).parameters) == ["ctx_json", "source_id"]
    tasks = parsed["dags"]["public_credit_nightly"]["tasks"]
    for name in ("pull", "push"):
        assert tasks[name]["retries"] >= 3 and tasks[name]["backoff"] >= 2, (name, tasks[name])
    # Every retried task backs off (a multiplier: 1.0, which True is, would be a constant delay).
    assert all(t["backoff"] >= 2 for t in tasks.values() if t["retries"]), tasks


def test_a_database_that_refuses_fails_once_and_one_that_is_down_retries(pg_url):
    """Against the real server: a wrong user is configuration (no retry can fix it); nothing
    listening is transient."""
    import socket

    import sqlalchemy as sa

    sys.path.insert(0, str(DAGS))
    try:
        from _shared import fail_fast
    finally:
        sys.path.remove(str(DAGS))
    from airflow.sdk.exceptions import AirflowFailException

    def connect(url):
        @fail_fast
        def body():
            engine = sa.create_engine(url)
            try:
                with engine.connect():
                    pass
            finally:
                engine.dispose()

        return body

    wrong_user = sa.engine.make_url(pg_url).set(username="no_such_credit_user")
    with pytest.raises(AirflowFailException, match='^configuration: .*"no_such_credit_user"'):
        connect(wrong_user.render_as_string(hide_password=False))()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there
    down = sa.engine.make_url(pg_url).set(port=port)
    with pytest.raises(sa.exc.OperationalError):
        connect(down.render_as_string(hide_password=False))()


def test_the_sampling_form_shows_the_bounds_in_force_for_every_agency():
    """The trigger form's agencies and ratio bounds are read from the registry the commit checks
    (config/agencies.yaml): every agency's bounds in force appear in its tier's description."""
    sys.path.insert(0, str(DAGS))
    try:
        from _shared import sampling_form
    finally:
        sys.path.remove(str(DAGS))
    from scoring.sampling.rules import bounds_for, registry

    agencies, shown, source = sampling_form()
    reg = registry()
    assert agencies == [a["id"] for a in reg["agencies"]]
    assert "第四十八条" in source
    for agency in agencies:
        b = bounds_for(agency, dt.date(2026, 7, 1), reg)
        for t in "ABCD":
            lo, hi = b["tiers"][t]
            assert f"{lo}–{hi}" in shown[t], (agency, t, shown[t])
    assert shown["B"] == "0.03–0.2 (lindian-samr 0.05–0.2)"


def test_nightly_dag_settings(parsed):
    d = parsed["dags"]["public_credit_nightly"]
    assert d["tags"] and "public-credit" in d["tags"] and d["doc"]
    # Missed nights are caught up one at a time, in order (each keyed on its logical date), back to
    # the go-live night only: its run is due at 01:00 the next morning, Asia/Shanghai.
    assert d["catchup"] is True and d["max_active_runs"] == 1
    shanghai = dt.timezone(dt.timedelta(hours=8))
    assert dt.datetime.fromisoformat(d["start_date"]) == dt.datetime(2026, 12, 2, tzinfo=shanghai)
    assert "0 1 * * *" in d["schedule"]
    steps = ["ingest", "gate", "score", "report", "publish"]
    assert set(steps) <= set(d["tasks"])
    for name in steps:
        assert d["tasks"][name]["retries"] >= 1
    for a, b in zip(steps, steps[1:]):
        assert a in d["tasks"][b]["upstream"]
    # Publication is last and needs every earlier step to have succeeded (the report runs regardless).
    assert set(steps[:-1]) <= set(d["tasks"]["publish"]["upstream"])
    # An operator waiver is a trigger-form choice for one run: gate:scope, approver, reason.
    assert {"waive", "approver", "reason"} <= set(d["params"])


def test_without_a_go_live_date_a_fresh_install_catches_nothing_up():
    nightly = [str(DAGS / "public_credit_nightly.py")]
    p = _parse(nightly, CREDIT_GO_LIVE="")
    assert p.returncode == 0, p.stderr[-3000:]
    assert (
        json.loads(p.stdout.strip().splitlines()[-1])["dags"]["public_credit_nightly"]["catchup"]
        is False
    )
    bad = _parse(nightly, CREDIT_GO_LIVE="1 Dec")
    assert (
        bad.returncode != 0
        and "CREDIT_GO_LIVE='1 Dec': expected the first night to evaluate as YYYY-MM-DD"
        in bad.stderr
    )


def test_every_dag_has_tags_docs_and_retries(parsed):
    for dag_id, d in parsed["dags"].items():
        assert d["tags"], dag_id
        assert d["doc"], dag_id
        assert all(t["retries"] is not None for t in d["tasks"].values())


def test_audit_rerun_dag_has_a_trigger_form(parsed):
    d = parsed["dags"]["public_credit_audit_rerun"]
    assert {"run_id", "mode"} <= set(d["params"])
    assert d["schedule"] in ("None", "") or "None" in d["schedule"]


def test_pipeline_steps_are_defined_once():
    from scoring import pipeline, steps

    assert tuple(pipeline.STEPS) == steps.STEP_NAMES
    text = (DAGS / "public_credit_nightly.py").read_text()
    for name in steps.STEP_NAMES:
        assert f'"{name}"' not in text  # the DAG takes the names from scoring.steps
    # ... and its graph, written out edge by edge, names the step tasks in that order.
    import ast

    unpacked = [
        [e.id for e in n.targets[0].elts]
        for n in ast.walk(ast.parse(text))
        if isinstance(n, ast.Assign)
        and isinstance(n.targets[0], ast.Tuple)
        and "STEP_NAMES" in ast.unparse(n.value)
    ]
    assert unpacked == [list(steps.STEP_NAMES)]


def _airflow_env(tmp_path, home, landing):
    return dict(
        os.environ,
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        CREDIT_HOME=str(home),
        CREDIT_LANDING=str(landing),
        CREDIT_DB_URL="",
        PATH=f"{BIN}:{os.environ.get('PATH', '')}",
    )


def _dags_test(env, logical_date="2026-07-01"):
    m = subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert m.returncode == 0, m.stderr[-2000:]
    return subprocess.run(
        [str(BIN / "airflow"), "dags", "test", "public_credit_nightly", logical_date],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )


@pytest.mark.airflow
def test_airflow_dags_test_runs_the_nightly_pipeline(province, sqlite_run, tmp_path):
    home = tmp_path / "home"
    t = _dags_test(_airflow_env(tmp_path, home, province / "landing"))
    log = t.stdout + t.stderr
    assert t.returncode == 0, log[-4000:]
    assert "state=success" in log
    # The logical date 2026-07-01 evaluates the day before (Asia/Shanghai): the same as the CLI run.
    p = run_cli(
        "status", "--as-of", AS_OF, "--home", str(home), "--json", env={"CREDIT_DB_URL": ""}
    )
    s = json.loads(p.stdout)
    assert s["status"] == "published"
    assert s["output_sha256"] == sqlite_run["summary"]["output_sha256"]
    assert all(s["tiers"][t] > 0 for t in "ABCD")


@pytest.mark.airflow
def test_a_dag_run_whose_hard_gate_fails_publishes_nothing_and_says_why(province, tmp_path):
    import shutil

    from scoring.intake.arrivals import SHANGHAI, set_arrival
    from scoring.intake.layouts import CREDIT_RECORD

    landing = tmp_path / "landing"
    shutil.copytree(province / "landing", landing)
    cols = [h for h in CREDIT_RECORD.standard_headers() if h != "主体名称"]
    (landing / "ndrc" / "20260630_late.csv").write_text(
        ",".join(cols) + "\n" + ",".join("x" for _ in cols) + "\n", encoding="utf-8"
    )
    # Landed on the evening of the 30th: the night keyed on logical date 1 July reads what had
    # landed by its scheduled time (scoring.intake.arrivals).
    set_arrival(
        landing / "ndrc" / "20260630_late.csv", dt.datetime(2026, 6, 30, 18, tzinfo=SHANGHAI)
    )
    home = tmp_path / "home"
    t = _dags_test(_airflow_env(tmp_path, home, landing))
    log = t.stdout + t.stderr
    assert "state=failed" in log
    assert "hard gates" in log and "schema" in log
    assert not (home / "outbox").exists()
    p = run_cli(
        "status", "--as-of", AS_OF, "--home", str(home), "--json", env={"CREDIT_DB_URL": ""}
    )
    s = json.loads(p.stdout)
    assert s["status"] == "gate_failed" and s["published"] == []
    assert Path(s["report"]).exists()
