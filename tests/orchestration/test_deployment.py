"""The deployment as an operator runs it: the production topology from the venv (deploy/local.py —
api-server, scheduler, dag-processor, triggerer, two Celery workers) on this machine's PostgreSQL
and Redis, DAGs triggered through the REST API (v2) only.

Scale-out, proven: the first night is cut into 4 partitions (the trigger form's `partitions`); its
mapped evaluate_partition tasks all succeed and ran on both workers (each records its own
hostname), and the auditor's rerun of that night in one partition gives the same output bytes.

What agencies see must only change when a night fully succeeds: a gate-failure night ends *failed*
with the previous publication intact, and a failed re-run of a published night leaves that night
(row, manifest, hash, results, publications.delivered_at, outbox files, CURRENT) exactly as it was.

Faults cost a retry, not a night: a worker killed (kill -9) mid-partition and another mid-`score`
leave the night published once, with the bytes of an uninterrupted one; `deploy-status` names the
dead worker (non-zero exit), the watchdog alerts within a minute, `deploy-restart` brings it back.
Errors that will repeat fail once (a hard gate, a wrong database user: try 1), a failed night
still has its report, and each failed night sends one alert naming night, step and reason.

Exchange, for real: the first night's 生态环境厅 penalties are not dropped as a file but sit in a
provider's exchange database (a PostgreSQL database made here, in the CF_* field codes, read by its
own login through an Airflow Connection given only in the environment), and the registry the
deployment reads declares that source with a readiness wait (a row of the provider's batch table
for the night). The night's pull is seen *deferred* (waiting in the triggerer, no worker slot)
until the test writes that row; then it pulls every row, ingest reads the pulled file as an
ordinary delivery (landed with provider and hash), the published night settles the watermark,
and the connection's password appears in no log, manifest, report or table.

One Airflow for the whole module (a unique metadata database, credit database, Celery queue and
free ports); its processes are stopped by their recorded pids and the databases dropped at the end.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = [pytest.mark.airflow, pytest.mark.postgres]

AS_OF = "2026-06-30"
NIGHT = "nightly-20260630"
RUN_TIMEOUT = 420  # seconds for one DAG run on a busy 2-core machine
PARTITIONS = 4
WORKERS = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _redis_url() -> str:
    url = os.environ.get("CREDIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=3) as s:
            s.sendall(b"PING\r\n")
            ok = s.recv(16).startswith(b"+PONG")
    except OSError as exc:
        ok, why = False, exc
    else:
        why = "no PONG"
    if not ok:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must have Redis at {url}: {why}")
        pytest.skip(f"no Redis at {url} ({why}); set CREDIT_TEST_REDIS_URL")
    return url


class Api:
    """The Airflow REST API v2 with a JWT from the FAB auth manager's /auth/token."""

    def __init__(self, base: str, user: str, password: str):
        import httpx

        self.base = base
        token = httpx.post(
            f"{base}/auth/token", json={"username": user, "password": password}, timeout=30
        )
        assert token.status_code in (200, 201), token.text
        self.http = httpx.Client(
            base_url=f"{base}/api/v2",
            timeout=60,
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        )

    def get(self, path: str, **params):
        r = self.http.get(path, params=params)
        assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text[:500]}"
        return r.json()

    def unpause(self, dag_id: str) -> None:
        r = self.http.patch(f"/dags/{dag_id}", json={"is_paused": False})
        assert r.status_code == 200, r.text

    def trigger(
        self, dag_id: str, conf: dict, logical_date: str | None = None, run_id: str | None = None
    ):
        body = {"conf": conf, "logical_date": logical_date}
        if run_id:
            body["dag_run_id"] = run_id
        return self.http.post(f"/dags/{dag_id}/dagRuns", json=body)

    def wait(self, dag_id: str, run_id: str, timeout: float = RUN_TIMEOUT) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.get(f"/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(3)
        raise AssertionError(
            f"{dag_id} {run_id} not finished after {timeout}s: {self.states(dag_id, run_id)}"
        )

    def states(self, dag_id: str, run_id: str) -> dict:
        tis = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {t["task_id"]: (t["state"], t["try_number"]) for t in tis}

    def xcom(self, dag_id: str, run_id: str, task_id: str):
        v = self.get(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
            deserialize="true",
            stringify="false",
        )["value"]
        if isinstance(v, str):
            try:
                return json.loads(v)
            except ValueError:
                return ast.literal_eval(v)
        return v


QZJ_CONN = "eco_qzj_deploy"
QZJ_SOURCE = {
    "id": "eco-qzj-penalty",
    "kind": "sql",
    "conn_id": QZJ_CONN,
    "table": "T_SGS_XZCF",
    "feed": "penalty",
    "layout": "sgs_penalty_2016",
    "watermark": "SJC",
    "status_column": "CF_ZT",
    "deleted_values": ["1", "撤销", "删除"],
    "timeout_s": 30,
    # The provider writes its batch row (批次日期, 完成标志) when the night's rows are complete.
    "ready": {
        "kind": "table",
        "table": "T_PC_ZT",
        "date_column": "PCRQ",
        "flag_column": "WCBZ",
        "timeout_s": 600,
        "poll_s": 2,
    },
}


def _provider_exchange_db(server, tag: str, landing: Path) -> dict:
    """The provider's 前置机: a database with the night's penalties in exchange field codes (the
    file the province dropped is taken out of the landing folder: the night must pull them), a
    batch table the provider writes when a night is complete, and a login of its own."""
    import datetime as dt

    import sqlalchemy as sa

    sys.path.insert(0, str(REPO / "tests" / "exchange"))
    try:
        from exchange_servers import WORLD_TO_2016, read_text_csv
    finally:
        sys.path.remove(str(REPO / "tests" / "exchange"))
    dropped = landing / "eco" / f"{AS_OF.replace('-', '')}_penalty.csv"
    frame = read_text_csv(dropped)
    dropped.unlink()
    name, secret = f"qzj_d_{tag}", f"qzj-pw-{uuid.uuid4().hex}"
    admin = sa.create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
        c.execute(sa.text(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{secret}'"))
    admin.dispose()
    url = server.set(database=name)
    rows = frame[[h for h in frame.columns if h in WORLD_TO_2016]].rename(columns=WORLD_TO_2016)
    start = dt.datetime(2026, 6, 30, 17)
    rows = rows.assign(SJC=[start + dt.timedelta(seconds=i) for i in range(len(rows))], CF_ZT="0")
    eng = sa.create_engine(url)
    cols = ", ".join(f'"{c}" text' for c in rows.columns if c != "SJC")
    with eng.begin() as c:
        c.execute(sa.text(f'CREATE TABLE "T_SGS_XZCF" ({cols}, "SJC" timestamp NOT NULL)'))
        c.execute(sa.text('CREATE TABLE "T_PC_ZT" ("PCRQ" text, "WCBZ" text)'))
        # The later nights of this module are complete at once; the first one is not, yet.
        for day in ("20260701", "20260702", "20260703"):
            c.execute(sa.text("""INSERT INTO "T_PC_ZT" VALUES (:d, '1')"""), {"d": day})
        c.execute(sa.text(f'GRANT SELECT ON "T_SGS_XZCF", "T_PC_ZT" TO "{name}"'))
    rows.to_sql("T_SGS_XZCF", eng, if_exists="append", index=False)
    eng.dispose()
    port = server.port or 5432
    return {
        "name": name,
        "url": url,
        "secret": secret,
        "rows": len(rows),
        "uri": f"postgresql://{name}:{secret}@{server.host or '127.0.0.1'}:{port}/{name}",
    }


def _config_with_a_waiting_source(config: Path) -> Path:
    """The configuration folder with one more provider registry version: eco's penalties come
    from its exchange database, pulled when its batch row says the night is complete."""
    import copy
    import shutil

    import yaml

    shutil.copytree(REPO / "config", config)
    doc = yaml.safe_load((config / "providers.yaml").read_text(encoding="utf-8"))
    latest = max(doc["versions"], key=lambda v: str(v["effective_from"]))
    assert str(latest["effective_from"]) < "2026-06-01"
    providers = copy.deepcopy(latest["providers"])
    for p in providers:
        p.pop("sources", None)
        if p["id"] == "eco":
            p["sources"] = [QZJ_SOURCE]
    doc["versions"].append(
        {
            "effective_from": "2026-06-01",
            "approved_by": "deployment test",
            "reason": "eco's penalties pulled from its exchange database, after its batch row",
            "providers": providers,
        }
    )
    (config / "providers.yaml").write_text(
        yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    return config


def _alert_hook() -> tuple[HTTPServer, list[dict]]:
    """The operator's webhook: a real HTTP server on loopback that keeps what it is sent."""
    got: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, got


@pytest.fixture(scope="module")
def deployment(pg_server_url, tmp_path_factory):
    import sqlalchemy as sa

    from scoring.world.province import write_deliveries

    redis_url = _redis_url()
    tag = uuid.uuid4().hex[:10]
    server = sa.engine.make_url(pg_server_url)
    airflow_db = server.set(database=f"airflow_d_{tag}").render_as_string(hide_password=False)
    credit_db = server.set(database=f"credit_d_{tag}").render_as_string(hide_password=False)
    home = tmp_path_factory.mktemp("deploy")
    province = home / "province"
    write_deliveries(province, AS_OF, n_entities=600, seed=11, defect_rate=0.01)
    qzj = _provider_exchange_db(server, tag, province / "landing")
    hook, alerts = _alert_hook()
    env = {
        **os.environ,
        "DEPLOY_HOME": str(home),
        "AIRFLOW_DB_URL": airflow_db,
        "CREDIT_DB_URL": credit_db,
        "REDIS_URL": redis_url,
        "CELERY_QUEUE": f"credit-test-{tag}",
        "CELERY_WORKERS": str(WORKERS),
        "AIRFLOW_API_PORT": str(_free_port()),
        "WORKER_LOG_PORT": str(_free_port()),
        "TRIGGERER_LOG_PORT": str(_free_port()),
        "CREDIT_DATA_DIR": str(home / "data"),  # CREDIT_HOME and secrets default under it
        "CREDIT_LANDING": str(province / "landing"),
        "CREDIT_NIGHTLY_SCHEDULE": "manual",
        "CREDIT_ALERT_WEBHOOK": f"http://127.0.0.1:{hook.server_port}/alert",
        # A dead worker's task is failed after 30 s without a heartbeat and retried 5 s later.
        "CREDIT_TASK_HEARTBEAT_TIMEOUT": "30",
        "CREDIT_RETRY_DELAY_SECONDS": "5",
        "CREDIT_WATCHDOG_INTERVAL": "5",
        "AIRFLOW_ADMIN_PASSWORD": f"pw-{tag}",
        # The registry with the provider's exchange database as a source, and its connection:
        # an Airflow Connection from the environment only (never in the repository or config).
        "CREDIT_CONFIG_DIR": str(_config_with_a_waiting_source(home / "config")),
        f"AIRFLOW_CONN_{QZJ_CONN.upper()}": qzj["uri"],
    }
    env.pop("CREDIT_HOME", None)
    for k in [k for k in env if k.startswith("AIRFLOW__")]:
        del env[k]  # the deployment's own configuration only
    script = [sys.executable, str(REPO / "deploy" / "local.py")]
    started = subprocess.run(
        [*script, "start"], env=env, capture_output=True, text=True, timeout=420
    )
    pids = sorted((home / "pids").glob("*.pid")) if (home / "pids").exists() else []
    recorded = {p.stem: int(p.read_text()) for p in pids}
    try:
        assert started.returncode == 0, started.stdout + started.stderr + _logs(home)
        api = Api(
            f"http://127.0.0.1:{env['AIRFLOW_API_PORT']}", "admin", env["AIRFLOW_ADMIN_PASSWORD"]
        )
        engine = sa.create_engine(credit_db)
        yield {
            "api": api,
            "home": home,
            "credit_home": home / "data" / "credit",
            "province": province,
            "landing": province / "landing",
            "engine": engine,
            "recorded": recorded,
            "alerts": alerts,
            "script": script,
            "env": env,
            "qzj": qzj,
        }
        engine.dispose()
    finally:
        stopped = subprocess.run(
            [*script, "stop"], env=env, capture_output=True, text=True, timeout=120
        )
        left = [f"{name} pid {pid}" for name, pid in recorded.items() if _running(pid)]
        admin = sa.create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for db in (f"airflow_d_{tag}", f"credit_d_{tag}", qzj["name"]):
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{qzj["name"]}"'))
        admin.dispose()
        hook.shutdown()
        assert stopped.returncode == 0 and not left, (
            f"processes left running: {left}\n{stopped.stdout}{stopped.stderr}"
        )


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _logs(home: Path) -> str:
    out = []
    for f in sorted((home / "logs").glob("*.log")) if (home / "logs").exists() else []:
        out.append(f"--- {f.name}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-20:]))
    return "\n".join(out)


def _visible(d: dict, run_id: str) -> dict:
    """Everything agencies (and auditors, and sampling) see of one night."""
    import sqlalchemy as sa

    with d["engine"].connect() as conn:
        run = dict(
            conn.execute(sa.text("SELECT * FROM runs WHERE run_id = :r"), {"r": run_id})
            .one()
            ._mapping
        )
        pubs = [
            tuple(r)
            for r in conn.execute(
                sa.text(
                    "SELECT agency_id, path, rows, sha256, delivered_at FROM publications WHERE run_id = :r "
                    "ORDER BY agency_id, path"
                ),
                {"r": run_id},
            )
        ]
        results = conn.execute(
            sa.text(
                "SELECT count(*), md5(string_agg(uscc || ':' || score || ':' || tier || ':' || coalesce(reasons, ''), "
                "'|' ORDER BY uscc)) FROM entity_results WHERE run_id = :r"
            ),
            {"r": run_id},
        ).one()
    outbox = d["credit_home"] / "outbox"
    files = {
        p.relative_to(outbox).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(outbox.rglob("*"))
        if p.is_file()
    }
    return {"run": run, "publications": pubs, "results": tuple(results), "outbox": files}


def _schema_broken_file(path: Path) -> None:
    """A credit-record delivery without the mandatory 主体名称 column: a hard (schema) gate."""
    from scoring.intake.layouts import CREDIT_RECORD

    cols = [h for h in CREDIT_RECORD.standard_headers() if h != "主体名称"]
    path.write_text(",".join(cols) + "\n" + ",".join("x" for _ in cols) + "\n", encoding="utf-8")


def _see_deferred(api: Api, run_id: str, task_id: str, timeout: float = 240) -> None:
    """Wait until the task (map index 0) is deferred: waiting in the triggerer, no worker slot."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        tis = api.get(f"/dags/public_credit_nightly/dagRuns/{run_id}/taskInstances", limit=100)
        seen = [t["state"] for t in tis["task_instances"] if t["task_id"] == task_id]
        if seen == ["deferred"]:
            return
        assert not seen or seen[0] not in ("success", "failed", "skipped"), seen
        time.sleep(0.5)
    raise AssertionError(
        f"{task_id} never deferred ({seen}): {api.states('public_credit_nightly', run_id)}"
    )


def _provider_says_ready(d: dict, day: str) -> None:
    import sqlalchemy as sa

    eng = sa.create_engine(d["qzj"]["url"])
    with eng.begin() as c:
        c.execute(
            sa.text("""INSERT INTO "T_PC_ZT" VALUES (:d, '1')"""), {"d": day.replace("-", "")}
        )
    eng.dispose()


def _pulled_as_a_delivery(d: dict) -> None:
    """The night pulled every row of the 前置机 once it was ready, ingest read the pulled file as
    a delivery of eco (landed with its hash), and the published night settled the watermark."""
    import sqlalchemy as sa

    with d["engine"].connect() as conn:
        pulls = conn.execute(
            sa.text(
                "SELECT source_id, status, rows, paths_json, committed_by, watermark_after"
                " FROM exchange_pulls WHERE as_of = :d ORDER BY pull_id"
            ),
            {"d": AS_OF},
        ).all()
        assert [(p.source_id, p.status, p.rows) for p in pulls] == [
            ("eco-qzj-penalty", "ok", d["qzj"]["rows"])
        ], pulls
        ((path, sha),) = json.loads(pulls[0].paths_json)
        landed = conn.execute(
            sa.text(
                "SELECT provider, feed, sha256, status, received FROM landed_files"
                " WHERE run_id = :r AND path = :p"
            ),
            {"r": NIGHT, "p": path},
        ).one()
    assert path == "eco/20260630_penalty_sql.csv", path
    assert (landed.provider, landed.feed, landed.sha256) == ("eco", "penalty", sha), landed
    assert landed.status == "stored" and landed.received == d["qzj"]["rows"], landed
    assert pulls[0].committed_by == NIGHT and pulls[0].watermark_after
    logs = {
        p.name: p.read_text(errors="replace")
        for p in (d["home"] / "logs" / "tasks").rglob("*.log")
        if "run_id=night-20260630" in str(p) and "task_id=pull/" in str(p)
    }
    task = logs.get("attempt=1.log", "")
    # The triggerer's part of the task log: attempt=1.log.trigger.<triggerer job id>.log
    trigger = "".join(t for name, t in logs.items() if name.startswith("attempt=1.log.trigger."))
    assert "waiting for the provider's table signal for 2026-06-30" in task, logs.keys()
    assert "ready after" in task and "T_PC_ZT has the row for 2026-06-30" in task, task[-2000:]
    # The looks ran in the triggerer: the first saw no row yet, a later one the row.
    assert "not ready (no row for 2026-06-30 in T_PC_ZT); next look in 2s" in trigger, trigger
    fired = re.search(r"'status': 'ready'.*?'polls': (\d+)", trigger)
    assert fired and int(fired.group(1)) >= 2, trigger[-2000:]


def _no_secret_anywhere(d: dict) -> None:
    """The 前置机 password: in no log (task, triggerer, components), manifest, report, outbox,
    landing file or table of the credit store."""
    import sqlalchemy as sa

    secret = d["qzj"]["secret"].encode()
    leaks = [
        str(p)
        for root in (d["home"], d["province"])
        for p in root.rglob("*")
        if p.is_file() and secret in p.read_bytes()
    ]
    assert leaks == [], leaks
    with d["engine"].connect() as conn:
        for table, col in (("exchange_pulls", "message"), ("runs", "message")):
            texts = conn.execute(sa.text(f"SELECT {col} FROM {table}")).scalars().all()
            assert not any(t and d["qzj"]["secret"] in t for t in texts), table


def _night_alerts(d: dict, dag_run_id: str) -> list[dict]:
    return [a for a in d["alerts"] if a.get("dag_run_id") == dag_run_id]


def test_the_scheduled_service_publishes_fails_honestly_and_keeps_published_nights(deployment):
    api, d = deployment["api"], deployment
    # A fresh deployment runs what it is sent (the operations guide's trigger works as written),
    # and every setting, the alert hook included, is in the recorded environment.
    for dag_id in ("public_credit_nightly", "public_credit_audit_rerun"):
        assert api.get(f"/dags/{dag_id}")["is_paused"] is False, dag_id
    recorded_env = (d["home"] / "env").read_text()
    assert "CREDIT_ALERT_WEBHOOK=" in recorded_env and "CREDIT_DATA_DIR=" in recorded_env
    assert (d["home"] / "data" / "secrets.json").exists()

    # 1. A night through the REST API, cut into 4 partitions: success, and agencies have it.
    r = api.trigger(
        "public_credit_nightly",
        {"as_of": AS_OF, "partitions": PARTITIONS},
        logical_date="2026-06-30T17:00:00Z",
        run_id="night-20260630",
    )
    assert r.status_code == 200, r.text
    # eco's source waits for its provider's batch row: deferred, until the provider writes it.
    _see_deferred(api, "night-20260630", "pull")
    time.sleep(5)  # the triggerer looks every 2 s: it sees no batch row, then the row appears
    _provider_says_ready(d, AS_OF)
    run = api.wait("public_credit_nightly", "night-20260630")
    assert run["state"] == "success", api.states("public_credit_nightly", "night-20260630")
    # Scale-out: every mapped partition task succeeded, and they ran on both Celery workers.
    tis = api.get("/dags/public_credit_nightly/dagRuns/night-20260630/taskInstances", limit=100)[
        "task_instances"
    ]
    pieces = sorted(
        (t["map_index"], t["state"], t["hostname"])
        for t in tis
        if t["task_id"] == "evaluate_partition"
    )
    assert [(i, s) for i, s, _ in pieces] == [(i, "success") for i in range(PARTITIONS)], pieces
    fqdn = socket.getfqdn()
    assert {h for _, _, h in pieces} == {f"{fqdn}-w{i}" for i in range(1, WORKERS + 1)}, pieces
    assert api.xcom("public_credit_nightly", "night-20260630", "score")["partitions"] == PARTITIONS
    before = _visible(d, NIGHT)
    assert before["run"]["status"] == "published" and before["run"]["output_sha256"]
    assert before["publications"] and before["results"][0] > 0
    current = {
        p.parent.name: p.read_text() for p in (d["credit_home"] / "outbox").glob("*/CURRENT")
    }
    assert current and all(v.split()[0] == NIGHT for v in current.values())
    _pulled_as_a_delivery(d)

    # A duplicate run id gets a clear 409, not a second run.
    dup = api.trigger(
        "public_credit_nightly",
        {"as_of": AS_OF},
        logical_date="2026-06-30T17:00:00Z",
        run_id="night-20260630",
    )
    assert dup.status_code == 409

    # 2. A gate-failure night ends failed; the report still ran; the published night is intact.
    _schema_broken_file(d["landing"] / "ndrc" / "20260701_credit_record.csv")
    r = api.trigger(
        "public_credit_nightly",
        {"as_of": "2026-07-01"},
        logical_date="2026-07-01T17:00:00Z",
        run_id="night-20260701",
    )
    assert r.status_code == 200, r.text
    # 3. Meanwhile an auditor reruns the published night through the form's Params.
    r = api.trigger(
        "public_credit_audit_rerun", {"run_id": NIGHT, "mode": "as-known-then"}, run_id="audit-1"
    )
    assert r.status_code == 200, r.text

    run = api.wait("public_credit_nightly", "night-20260701")
    states = api.states("public_credit_nightly", "night-20260701")
    assert run["state"] == "failed", states
    assert states["gate"][0] == "failed" and states["gate"][1] == 1  # a hard gate is not retried
    assert states["report"][0] == "success"
    assert states["publish"][0] == "upstream_failed"
    with d["engine"].connect() as conn:
        import sqlalchemy as sa

        row = conn.execute(
            sa.text("SELECT status, message FROM runs WHERE run_id = 'nightly-20260701'")
        ).one()
    assert row.status == "gate_failed" and "schema" in row.message
    assert _visible(d, NIGHT) == before
    # The failed night has its report, and its one alert names night, step, kind and report.
    alerts = _night_alerts(d, "night-20260701")
    assert [(a["night"], a["run_id"], a["step"], a["reason_code"]) for a in alerts] == [
        ("2026-07-01", "nightly-20260701", "gate", "data")
    ], d["alerts"]
    assert alerts[0]["message"].startswith("data: ") and "schema" in alerts[0]["message"]
    report = Path(alerts[0]["report_url"].removeprefix("file://"))
    assert report.is_file() and "nightly-20260701" in report.read_text(encoding="utf-8")

    audit = api.wait("public_credit_audit_rerun", "audit-1")
    assert audit["state"] == "success", api.states("public_credit_audit_rerun", "audit-1")
    out = api.xcom("public_credit_audit_rerun", "audit-1", "rerun")
    assert out["identical"] is True and out["output_sha256"] == before["run"]["output_sha256"]
    assert out["partitions"] == 1  # the same night in one piece: the same bytes as the 4-way night

    # 4. A failed re-run of the published night (a provider re-sent a broken file): nothing that
    #    agencies, auditors or sampling see changes. Triggered without a logical date.
    _schema_broken_file(d["landing"] / "ndrc" / "20260630_credit_record_resent.csv")
    r = api.trigger("public_credit_nightly", {"as_of": AS_OF}, run_id="rerun-20260630")
    assert r.status_code == 200, r.text
    run = api.wait("public_credit_nightly", "rerun-20260630")
    assert run["state"] == "failed", api.states("public_credit_nightly", "rerun-20260630")
    assert _visible(d, NIGHT) == before
    assert all(
        (d["credit_home"] / "outbox" / a / "CURRENT").read_text() == v for a, v in current.items()
    )
    _no_secret_anywhere(d)


def _deploy(d: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*d["script"], *args], env=d["env"], capture_output=True, text=True, timeout=180
    )


def _kill_worker_running(d: dict, run_id: str, task_id: str, timeout: float = 240) -> str:
    """kill -9 the process group of the Celery worker that is running ``task_id`` (the worker,
    its task supervisors and tasks: as a machine dying would); returns the worker's name."""
    api, fqdn = d["api"], socket.getfqdn()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tis = api.get(f"/dags/public_credit_nightly/dagRuns/{run_id}/taskInstances", limit=100)
        for t in tis["task_instances"]:
            if t["task_id"] == task_id and t["state"] == "running" and t["hostname"]:
                i = int(t["hostname"].removeprefix(f"{fqdn}-w"))
                name = "celery-worker" if i == 1 else f"celery-worker-{i}"
                os.killpg(int((d["home"] / "pids" / f"{name}.pid").read_text()), signal.SIGKILL)
                return name
        time.sleep(0.3)
    raise AssertionError(f"{task_id} never ran: {api.states('public_credit_nightly', run_id)}")


def _restart(d: dict, name: str) -> None:
    down = _deploy(d, "status")
    assert down.returncode == 1 and f"DOWN: {name}" in down.stdout, down.stdout + down.stderr
    restarted = _deploy(d, "restart", name)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    deadline = time.monotonic() + 120
    while (up := _deploy(d, "status")).returncode != 0 and time.monotonic() < deadline:
        time.sleep(3)
    assert up.returncode == 0, up.stdout + up.stderr


def test_a_worker_killed_mid_partition_and_mid_score_costs_a_retry_not_the_night(deployment):
    """Two workers; kill -9 the one running a mapped partition, then the one running score."""
    import sqlalchemy as sa

    from scoring.world.province import write_deliveries

    api, d = deployment["api"], deployment
    for broken in ("20260701_credit_record.csv", "20260630_credit_record_resent.csv"):
        (d["landing"] / "ndrc" / broken).unlink(missing_ok=True)  # the providers re-sent them
    write_deliveries(d["province"], "2026-07-02", n_entities=600, seed=11, defect_rate=0.01)
    run_id = "night-20260702"
    r = api.trigger(
        "public_credit_nightly",
        {"as_of": "2026-07-02", "partitions": PARTITIONS},
        logical_date="2026-07-02T17:00:00Z",
        run_id=run_id,
    )
    assert r.status_code == 200, r.text
    killed = _kill_worker_running(d, run_id, "evaluate_partition")
    t_kill = time.monotonic()
    # The watchdog says so within a minute; deploy-status names it; deploy-restart brings it back.
    while time.monotonic() - t_kill < 60 and not any(
        a.get("event") == "component_down" and a.get("component") == killed for a in d["alerts"]
    ):
        time.sleep(1)
    assert any(a.get("component") == killed for a in d["alerts"]), d["alerts"]
    _restart(d, killed)
    second = _kill_worker_running(d, run_id, "score")  # left dead: the other worker takes over
    run = api.wait("public_credit_nightly", run_id)
    states = api.states("public_credit_nightly", run_id)
    assert run["state"] == "success", states
    tis = api.get(f"/dags/public_credit_nightly/dagRuns/{run_id}/taskInstances", limit=100)
    tries = {(t["task_id"], t["map_index"]): t["try_number"] for t in tis["task_instances"]}
    assert max(n for (task, _), n in tries.items() if task == "evaluate_partition") == 2, tries
    assert tries[("score", -1)] == 2, tries
    assert not _night_alerts(d, run_id)  # a retried worker death is no failed night
    # One publication, with the bytes of the same night evaluated uninterrupted in one piece.
    with d["engine"].connect() as conn:
        published = conn.execute(
            sa.text("SELECT run_id, output_sha256 FROM runs WHERE as_of = '2026-07-02'")
        ).all()
        agencies = conn.execute(
            sa.text(
                "SELECT agency_id, path, count(*) FROM publications "
                "WHERE run_id = 'nightly-20260702' GROUP BY agency_id, path"
            )
        ).all()
    assert [p.run_id for p in published] == ["nightly-20260702"], published
    assert agencies and all(n == 1 for *_, n in agencies), agencies  # each file delivered once
    current = {
        p.parent.name: p.read_text() for p in (d["credit_home"] / "outbox").glob("*/CURRENT")
    }
    assert current and all(v.split()[0] == "nightly-20260702" for v in current.values())
    down = _deploy(d, "status")
    assert down.returncode == 1 and f"DOWN: {second}" in down.stdout, down.stdout
    r = api.trigger(
        "public_credit_audit_rerun",
        {"run_id": "nightly-20260702", "mode": "as-known-then"},
        run_id="audit-20260702",
    )
    assert r.status_code == 200, r.text
    audit = api.wait("public_credit_audit_rerun", "audit-20260702")
    assert audit["state"] == "success", api.states("public_credit_audit_rerun", "audit-20260702")
    out = api.xcom("public_credit_audit_rerun", "audit-20260702", "rerun")
    assert out["identical"] is True and out["output_sha256"] == published[0].output_sha256


def test_a_wrong_database_user_fails_once_and_alerts_once(deployment):
    api, d = deployment["api"], deployment
    import sqlalchemy as sa

    wrong = sa.engine.make_url(str(d["engine"].url)).set(username="no_such_credit_user")
    run_id = "night-wrong-user"
    r = api.trigger(
        "public_credit_nightly",
        {"as_of": "2026-07-03", "db_url": wrong.render_as_string(hide_password=False)},
        run_id=run_id,
    )
    assert r.status_code == 200, r.text
    run = api.wait("public_credit_nightly", run_id)
    states = api.states("public_credit_nightly", run_id)
    assert run["state"] == "failed", states
    assert states["prepare"] == ("failed", 1), states  # configuration: no retry can fix it
    assert states["report"][0] == "skipped" and states["published"] == ("failed", 1), states
    deadline = time.monotonic() + 30
    while not _night_alerts(d, run_id) and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(3)  # nothing more may follow
    alerts = _night_alerts(d, run_id)
    assert [(a["step"], a["reason_code"]) for a in alerts] == [("prepare", "configuration")], alerts
    assert "no_such_credit_user" in alerts[0]["message"]
