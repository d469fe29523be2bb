"""The deployment as an operator runs it: the production topology from the venv (deploy/local.py —
api-server, scheduler, dag-processor, triggerer, two Celery workers) on this machine's PostgreSQL
and Redis, DAGs triggered through the REST API (v2) only.

Scale-out, proven: the first night is cut into 4 partitions (the trigger form's `partitions`); its
mapped evaluate_partition tasks all succeed and ran on both workers (each records its own
hostname), and the auditor's rerun of that night in one partition gives the same output bytes.

What agencies see must only change when a night fully succeeds: a gate-failure night ends *failed*
with the previous publication intact, and a failed re-run of a published night leaves that night
(row, manifest, hash, results, publications.delivered_at, outbox files, CURRENT) exactly as it was.

One Airflow for the whole module (a unique metadata database, credit database, Celery queue and
free ports); its processes are stopped by their recorded pids and the databases dropped at the end.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
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
        "CREDIT_HOME": str(home / "credit"),
        "CREDIT_LANDING": str(province / "landing"),
        "CREDIT_NIGHTLY_SCHEDULE": "manual",
        "AIRFLOW_ADMIN_PASSWORD": f"pw-{tag}",
    }
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
            "credit_home": home / "credit",
            "landing": province / "landing",
            "engine": engine,
            "recorded": recorded,
        }
        engine.dispose()
    finally:
        stopped = subprocess.run(
            [*script, "stop"], env=env, capture_output=True, text=True, timeout=120
        )
        left = [f"{name} pid {pid}" for name, pid in recorded.items() if _running(pid)]
        admin = sa.create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for db in (f"airflow_d_{tag}", f"credit_d_{tag}"):
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()
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


def test_the_scheduled_service_publishes_fails_honestly_and_keeps_published_nights(deployment):
    api, d = deployment["api"], deployment
    for dag_id in ("public_credit_nightly", "public_credit_audit_rerun"):
        api.unpause(dag_id)

    # 1. A night through the REST API, cut into 4 partitions: success, and agencies have it.
    r = api.trigger(
        "public_credit_nightly",
        {"as_of": AS_OF, "partitions": PARTITIONS},
        logical_date="2026-06-30T17:00:00Z",
        run_id="night-20260630",
    )
    assert r.status_code == 200, r.text
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
