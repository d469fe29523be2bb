"""One real Airflow for the console tests: api-server, scheduler and dag-processor (LocalExecutor)
on a temporary AIRFLOW_HOME with its metadata in a fresh PostgreSQL database,
the FAB auth manager, the project's plugins folder, on a free local port, and a credit store with
one published night of a small province. Users and roles are made through FAB's own REST API.
The servers are stopped by their recorded process groups at the end; a headless Debian Chromium
(Selenium, the system chromedriver: no browser download) drives the pages."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import REPO

AS_OF = "2026-06-30"
AUDIT_DAG = "public_credit_audit_rerun"
NIGHT = "nightly-20260630"
ADMIN = ("admin", "admin-pw-console")
# user: (password, roles)
USERS = {
    "reg_dq": ("pw-dq", ["credit_regulator", "credit_agency_dq-samr"]),
    "reg_hrb": ("pw-hrb", ["credit_regulator", "credit_agency_hrb-samr"]),
    "auditor": ("pw-aud", ["credit_auditor"]),
    "operator": ("pw-op", ["credit_operator"]),
    "lookup": ("pw-look", ["credit_entity_lookup"]),
    "lookup_hrb": ("pw-look-hrb", ["credit_entity_lookup", "credit_agency_hrb-samr"]),
    "viewer": ("pw-view", ["Viewer"]),
}
ROLES = sorted({r for _, roles in USERS.values() for r in roles if r.startswith("credit_")})
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _need(path: str, package: str) -> None:
    if not Path(path).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must have {path} (.ci/run installs {package})")
        pytest.skip(f"{path} missing: apt-get install -y {package}")


def _start(cmd: list[str], env: dict, log: Path, **kw) -> subprocess.Popen:
    fh = open(log, "ab")
    return subprocess.Popen(
        cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True, **kw
    )


def _finish(p: subprocess.Popen, what: str, log: Path, timeout: float) -> None:
    rc = p.wait(timeout=timeout)
    if rc != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise AssertionError(f"{what} failed (exit {rc}):\n{tail}")


def _stop(p: subprocess.Popen) -> None:
    """The api-server and whatever it started, by its own process group."""
    if p.poll() is not None:
        return
    os.killpg(p.pid, signal.SIGTERM)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=10)


class Console:
    def __init__(self, base: str, home: Path, credit_home: Path, env: dict):
        import httpx

        self.base, self.home, self.credit_home, self.env = base, home, credit_home, env
        self.http = httpx.Client(base_url=base, timeout=120)
        self.tokens: dict[str, str] = {}

    def token(self, user: str) -> str:
        if user not in self.tokens:
            pw = ADMIN[1] if user == ADMIN[0] else USERS[user][0]
            r = self.http.post("/auth/token", json={"username": user, "password": pw})
            assert r.status_code in (200, 201), r.text
            self.tokens[user] = r.json()["access_token"]
        return self.tokens[user]

    def as_user(self, user: str | None) -> dict:
        return {"Authorization": f"Bearer {self.token(user)}"} if user else {}

    def store(self):
        from scoring.history.store import Store

        return Store.open(f"sqlite:///{self.credit_home / 'credit.db'}", self.credit_home)


def _environment(af: Path, credit: Path, port: int, meta_url: str) -> dict:
    """The servers' settings: their own home, metadata on PostgreSQL (LocalExecutor runs the audit
    DAG, which SQLite's single writer does not allow), FAB, the project's DAGs and plugins."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    env.update(
        {
            "AIRFLOW_HOME": str(af),
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
            ),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta_url,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            # Only the audit DAG runs here (unpaused below): a scheduled nightly would take the
            # store's run lock from under the tests' own nights.
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "1",
            # the scheduler's log server on a free port, not 8793 that another Airflow may hold
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
            "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(24).hex(),
            "AIRFLOW__API__SECRET_KEY": os.urandom(24).hex(),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(af / "logs"),
            "CREDIT_HOME": str(credit),
            "CREDIT_DB_URL": "",
            "PYTHONPATH": str(REPO),
            "PYTHONHASHSEED": "0",
        }
    )
    return env


@pytest.fixture(scope="module")
def airflow_meta_url(pg_server_url):
    """A fresh PostgreSQL database for Airflow's metadata, dropped (with its sessions) after."""
    import sqlalchemy as sa

    name = f"airflow_t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.engine.make_url(pg_server_url).set(database=name).render_as_string(False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def console(tmp_path_factory, airflow_meta_url):
    from scoring.world.province import write_deliveries

    home = tmp_path_factory.mktemp("console")
    af, credit = home / "airflow", home / "credit"
    af.mkdir()
    port = _free_port()
    env = _environment(af, credit, port, airflow_meta_url)
    airflow = str(Path(sys.executable).parent / "airflow")
    # The night's data and Airflow's metadata at the same time; then the admin and the server.
    write_deliveries(home / "prov", AS_OF, n_entities=400, seed=11, defect_rate=0.01)
    night = _start(
        [sys.executable, "-m", "scoring", "run", "--as-of", AS_OF, "--landing",
         str(home / "prov" / "landing"), "--json"],
        env, home / "night.log",
    )  # fmt: skip
    make_admin = [
        airflow, "users", "create", "--username", ADMIN[0], "--password", ADMIN[1], "--role",
        "Admin", "--email", "admin@example.org", "--firstname", "a", "--lastname", "b",
    ]  # fmt: skip
    procs = [night]
    try:
        procs.append(_start([airflow, "db", "migrate"], env, home / "migrate.log"))
        _finish(procs[-1], "airflow db migrate", home / "migrate.log", 300)
        # Both sync FAB's permissions as they start: one after the other, or they race on its tables.
        procs.append(_start(make_admin, env, home / "users.log"))
        _finish(procs[-1], "airflow users create", home / "users.log", 300)
        server = _start(
            [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)],
            env,
            home / "api.log",
        )
        procs.append(server)
        # Beside the api-server, what runs the audit DAG the auditor triggers.
        for what in ("dag-processor", "scheduler"):
            procs.append(_start([airflow, what], env, home / f"{what}.log"))
        _finish(night, "credit run", home / "night.log", 600)
        c = Console(f"http://127.0.0.1:{port}", home, credit, env)
        deadline = time.monotonic() + 240
        while True:
            try:
                if c.http.get("/api/v2/monitor/health").status_code == 200:
                    break
            except Exception:
                pass
            assert server.poll() is None, (home / "api.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "api-server not healthy after 240 s"
            time.sleep(1)
        h = c.as_user(ADMIN[0])
        while c.http.get(f"/api/v2/dags/{AUDIT_DAG}", headers=h).status_code != 200:
            assert time.monotonic() < deadline + 120, (
                "the dag-processor did not parse the audit DAG"
            )
            time.sleep(1)
        r = c.http.patch(f"/api/v2/dags/{AUDIT_DAG}", json={"is_paused": False}, headers=h)
        assert r.status_code == 200, r.text
        for role in ROLES:
            r = c.http.post("/auth/fab/v1/roles", json={"name": role, "actions": []}, headers=h)
            assert r.status_code in (200, 201), r.text
        for user, (pw, roles) in USERS.items():
            r = c.http.post(
                "/auth/fab/v1/users",
                headers=h,
                json={
                    "username": user,
                    "password": pw,
                    "email": f"{user}@example.org",
                    "first_name": user,
                    "last_name": "test",
                    "roles": [{"name": x} for x in roles],
                },
            )
            assert r.status_code in (200, 201), r.text
        yield c
    finally:
        for p in procs:
            _stop(p)


@pytest.fixture(scope="module")
def browser():
    _need(CHROMIUM, "chromium")
    _need(CHROMEDRIVER, "chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--lang=zh-CN",
    ):
        opts.add_argument(arg)
    prefs = {"download.default_directory": "/tmp", "download.prompt_for_download": False}
    opts.add_experimental_option("prefs", prefs)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def login(driver, console: Console, user: str) -> None:
    """The browser carries the user's Airflow token as the Airflow UI does: the _token cookie."""
    driver.get(console.base + "/console/")
    driver.delete_all_cookies()
    driver.add_cookie({"name": "_token", "value": console.token(user), "path": "/"})


def screenshot(driver, name: str) -> None:
    """Screenshots for docs/console.md when CONSOLE_SCREENSHOTS names a folder."""
    folder = os.environ.get("CONSOLE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / name))


# ------------------------------------------------------------------------------------ helpers


def wait_for(driver, cond, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(cond)


def text_of(driver, css: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css).text


def type_into(driver, css: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    el = driver.find_element(By.CSS_SELECTOR, css)
    el.send_keys(Keys.CONTROL, "a")
    el.send_keys(Keys.DELETE)
    el.send_keys(value)


def plans_in(console: Console) -> list[dict]:
    import sqlalchemy as sa

    from scoring.history.store import sampling_plans

    with console.store().engine.connect() as conn:
        return [
            json.loads(t)
            for t in conn.execute(
                sa.select(sampling_plans.c.record_json).order_by(sampling_plans.c.plan_id)
            ).scalars()
        ]


def uscc_in(console: Console, agency_prefix: str = "2306") -> str:
    import sqlalchemy as sa

    with console.store().engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT uscc FROM entity_results WHERE run_id = :r AND division_code LIKE :p "
                "ORDER BY uscc LIMIT 1"
            ),
            {"r": NIGHT, "p": agency_prefix + "%"},
        ).scalar_one()


NEXT_NIGHT = "2026-07-01"  # a quiet night: nothing new arrives


def publish_next_night(console: Console) -> None:
    """Publish the quiet night after AS_OF, as the nightly would, unless a test already did
    (a published night is never run again): tests that need two nights do not depend on order."""
    import sqlalchemy as sa

    run_id = "nightly-" + NEXT_NIGHT.replace("-", "")
    with console.store().engine.connect() as conn:
        status = conn.execute(
            sa.text("SELECT status FROM runs WHERE run_id = :r"), {"r": run_id}
        ).scalar_one_or_none()
    if status == "published":
        return
    env = {**console.env, "CREDIT_HOME": str(console.credit_home), "CREDIT_DB_URL": ""}
    night = subprocess.run(
        [sys.executable, "-m", "scoring", "run", "--as-of", NEXT_NIGHT, "--json",
         "--landing", str(console.home / "prov" / "landing")],
        env=env, capture_output=True, text=True, timeout=600, cwd=REPO,
    )  # fmt: skip
    assert night.returncode == 0, night.stderr[-2000:]
