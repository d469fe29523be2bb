"""One real Airflow api-server for the console tests: a temporary AIRFLOW_HOME with SQLite metadata,
the FAB auth manager, the project's plugins folder, on a free local port, and a credit store with
one published night of a small province. Users and roles are made through FAB's own REST API.
The api-server is stopped by its recorded process group at the end; a headless Debian Chromium
(Selenium, the system chromedriver: no browser download) drives the pages."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

AS_OF = "2026-06-30"
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
    def __init__(self, base: str, home: Path, credit_home: Path):
        import httpx

        self.base, self.home, self.credit_home = base, home, credit_home
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


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    from scoring.world.province import write_deliveries

    home = tmp_path_factory.mktemp("console")
    af, credit = home / "airflow", home / "credit"
    af.mkdir()
    port = _free_port()
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
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{af / 'airflow.db'}",
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
        # Both sync FAB's permissions as they start: one after the other, or SQLite sees a race.
        procs.append(_start(make_admin, env, home / "users.log"))
        _finish(procs[-1], "airflow users create", home / "users.log", 300)
        server = _start(
            [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)],
            env,
            home / "api.log",
        )
        procs.append(server)
        _finish(night, "credit run", home / "night.log", 600)
        c = Console(f"http://127.0.0.1:{port}", home, credit)
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


def dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


# ------------------------------------------------------------------------------------ helpers


def _wait(driver, cond, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(cond)


def _text(driver, css: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css).text


def _type(driver, css: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    el = driver.find_element(By.CSS_SELECTOR, css)
    el.send_keys(Keys.CONTROL, "a")
    el.send_keys(Keys.DELETE)
    el.send_keys(value)


def _plans(console: Console) -> list[dict]:
    import sqlalchemy as sa

    from scoring.history.store import sampling_plans

    with console.store().engine.connect() as conn:
        return [
            json.loads(t)
            for t in conn.execute(
                sa.select(sampling_plans.c.record_json).order_by(sampling_plans.c.plan_id)
            ).scalars()
        ]


def _uscc(console: Console, agency_prefix: str = "2306") -> str:
    import sqlalchemy as sa

    with console.store().engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT uscc FROM entity_results WHERE run_id = :r AND division_code LIKE :p "
                "ORDER BY uscc LIMIT 1"
            ),
            {"r": NIGHT, "p": agency_prefix + "%"},
        ).scalar_one()


# ------------------------------------------------------------------------------- the checks


def _routes() -> set[tuple[str, str]]:
    """Every route the plugin declares (@app.get / @app.post), read from its source."""
    import ast

    tree = ast.parse((REPO / "plugins" / "credit_console.py").read_text(encoding="utf-8"))
    return {
        (d.func.attr.upper(), d.args[0].value)
        for f in ast.walk(tree)
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
        for d in f.decorator_list
        if isinstance(d, ast.Call)
        and isinstance(d.func, ast.Attribute)
        and getattr(d.func.value, "id", None) == "app"
        and d.func.attr in ("get", "post", "put", "patch", "delete")
    }


# (method, route, concrete path, a role that may use it)
ENDPOINTS = [
    ("GET", "/", "/console/", None),  # any console role; the viewer has none
    ("GET", "/planner", "/console/planner?agency=dq-samr", "reg_dq"),
    ("GET", "/plans/{plan_id}", "/console/plans/dq-samr-2026-07-routine-1", "reg_dq"),
    (
        "GET",
        "/plans/{plan_id}/files/{filename}",
        "/console/plans/dq-samr-2026-07-routine-1/files/plan.json",
        "reg_dq",
    ),
    ("GET", "/audit", "/console/audit", "auditor"),
    ("GET", "/nights", "/console/nights", "operator"),
    ("GET", "/entity", "/console/entity", "lookup"),
    ("GET", "/entity/report", "/console/entity/report?uscc=X", "lookup"),
    ("GET", "/api/planner", "/console/api/planner?agency=dq-samr", "reg_dq"),
    (
        "GET",
        "/api/planner/consequences",
        "/console/api/planner/consequences?agency=dq-samr",
        "reg_dq",
    ),
    ("POST", "/api/plans", "/console/api/plans", "reg_dq"),
    ("POST", "/api/audit/reruns", "/console/api/audit/reruns", "auditor"),
    ("GET", "/api/audit/reruns", "/console/api/audit/reruns?run_id=x", "auditor"),
]
WRONG_ROLE = {"reg_dq": "auditor", "auditor": "operator", "operator": "lookup", "lookup": "reg_dq"}


def test_every_console_endpoint_refuses_the_unauthenticated_and_the_wrong_role(console):
    assert {(m, r) for m, r, _, _ in ENDPOINTS} == _routes(), "a route is not covered here"
    forged = _forged_token(console)
    for method, _, path, right in ENDPOINTS:
        for headers, want in (
            ({}, 401),
            ({"Authorization": "Bearer not-a-token"}, 401),
            ({"Authorization": f"Bearer {forged}"}, 401),
            (console.as_user("viewer"), 403),
            *([(console.as_user(WRONG_ROLE[right]), 403)] if right else []),
        ):
            r = console.http.request(method, path, headers=headers, json={})
            assert r.status_code == want, (
                method,
                path,
                headers.keys(),
                r.status_code,
                r.text[:300],
            )
    # the same through a browser's cookie: refused, and nothing of the page's data is shown
    import httpx

    r = httpx.get(console.base + "/console/planner?agency=dq-samr", cookies={"_token": forged})
    assert r.status_code == 401 and "大庆" not in r.text


def _forged_token(console: Console) -> str:
    """A well-formed token for the admin, signed with a secret the server does not have."""
    import jwt

    claims = jwt.decode(console.token("admin"), options={"verify_signature": False})
    return jwt.encode(claims, "not-the-server-secret-" + "0123456789abcdef" * 4, algorithm="HS512")


def test_planner_refuses_d0_updates_consequences_and_commits_a_plan(console, browser):
    from selenium.webdriver.common.by import By

    before = len(_plans(console))
    login(browser, console, "reg_dq")
    browser.get(console.base + "/console/planner?agency=dq-samr")
    _wait(browser, lambda d: _text(d, "#total") not in ("", "—"))
    proposal_total = int(_text(browser, "#total"))
    # Art. 48 bounds: tier D (high risk) may not be left uninspected.
    _type(browser, "#rD", "0")
    _wait(browser, lambda d: "D 级" in _text(d, "#message"))
    assert "0.61" in _text(browser, "#message")
    assert not browser.find_element(By.ID, "commit").is_enabled()
    assert _text(browser, "#total") == "—"
    _type(browser, "#rD", "1")
    _wait(browser, lambda d: _text(d, "#total") not in ("", "—"))
    # one tier's ratio changes → its inspections and the total follow
    _type(browser, "#rA", "0")
    _wait(browser, lambda d: _text(d, "#kA") == "0")
    with_a0 = int(_text(browser, "#total"))
    _type(browser, "#rA", "0.05")
    _wait(browser, lambda d: _text(d, "#kA") not in ("0", "—"))
    assert int(_text(browser, "#total")) == with_a0 + int(_text(browser, "#kA"))
    _type(browser, "#rB", "abc")
    _wait(browser, lambda d: "not a number" in _text(d, "#message"))
    browser.find_element(By.ID, "adopt").click()
    _wait(browser, lambda d: _text(d, "#total") == str(proposal_total))
    assert _text(browser, "#message") == ""
    screenshot(browser, "console-planner.png")
    browser.find_element(By.ID, "commit").click()
    _wait(browser, lambda d: _text(d, "#commitment") != "", 120)
    plans = _plans(console)
    assert len(plans) == before + 1
    plan = plans[-1]
    assert _text(browser, "#commitment") == plan["commitment_sha256"]
    assert plan["agency_id"] == "dq-samr" and plan["status"] == "committed"
    # the plan's own page: the same hash, verified from the store, and its public file
    browser.find_element(By.LINK_TEXT, plan["plan_id"]).click()
    _wait(browser, lambda d: _text(d, "#verified") != "")
    assert _text(browser, "#commitment") == plan["commitment_sha256"]
    assert "verified" in _text(browser, "#verified")
    r = console.http.get(
        f"/console/plans/{plan['plan_id']}/files/plan.json", headers=console.as_user("reg_dq")
    )
    assert r.status_code == 200 and r.json()["commitment_sha256"] == plan["commitment_sha256"]


def test_planner_bad_input_gives_a_message_and_changes_nothing(console, browser):
    before = _plans(console)
    login(browser, console, "reg_dq")
    browser.get(console.base + "/console/planner?agency=dq-samr&period=2026-05")
    _wait(browser, lambda d: "closed" in _text(d, "#message"))
    browser.get(console.base + "/console/planner?agency=dq-samr&period=July")
    _wait(browser, lambda d: "bad period" in _text(d, "#message"))
    h = console.as_user("reg_dq")
    for body in (
        {"agency": "dq-samr", "period": "2026-07", "ratios": {"A": "0.05", "B": "0.1", "C": "0.3", "D": "0"}},
        {"agency": "dq-samr", "period": "2026-05", "ratios": {"A": "0.05", "B": "0.1", "C": "0.3", "D": "0.8"}},
        {"agency": "dq-samr", "period": "2026-07", "ratios": {"A": "x", "B": "0.1", "C": "0.3", "D": "0.8"}},
    ):  # fmt: skip
        r = console.http.post("/console/api/plans", json={**body, "task": "bad"}, headers=h)
        assert r.status_code == 400 and "\n" not in r.json()["detail"], r.text
    assert _plans(console) == before


def test_a_department_does_not_see_another_departments_scope(console, browser):
    from selenium.webdriver.common.by import By

    login(browser, console, "reg_hrb")
    browser.get(console.base + "/console/planner")
    options = [
        o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "select option")
    ]
    assert options == ["hrb-samr"]
    browser.get(console.base + "/console/planner?agency=dq-samr")
    _wait(browser, lambda d: "outside your scope" in d.page_source)
    assert "大庆市" not in browser.page_source
    h = console.as_user("reg_hrb")
    for path in ("/console/api/planner?agency=dq-samr", "/console/api/planner/consequences?agency=dq-samr&A=0&B=0.1&C=0.3&D=1"):  # fmt: skip
        assert console.http.get(path, headers=h).status_code == 403
    r = console.http.post(
        "/console/api/plans",
        headers=h,
        json={"agency": "dq-samr", "ratios": {"A": "0", "B": "0.1", "C": "0.3", "D": "1"}},
    )
    assert r.status_code == 403
    dq = [p for p in _plans(console) if p["agency_id"] == "dq-samr"]
    for p in dq:
        assert console.http.get(f"/console/plans/{p['plan_id']}", headers=h).status_code == 403


def test_auditor_reruns_a_night_and_sees_identical_with_the_manifest(console, browser):
    from selenium.webdriver.common.by import By

    login(browser, console, "auditor")
    browser.get(console.base + "/console/audit?run_id=nightly-20990101")
    _wait(browser, lambda d: "no stored run" in _text(d, "#message"))
    browser.get(console.base + "/console/audit?run_id=bad%20id")
    _wait(browser, lambda d: "bad run id" in _text(d, "#message"))
    browser.get(console.base + f"/console/audit?run_id={NIGHT}")
    with console.store().engine.connect() as conn:
        import sqlalchemy as sa

        out = conn.execute(
            sa.text("SELECT output_sha256 FROM runs WHERE run_id = :r"), {"r": NIGHT}
        ).scalar_one()
    assert out in browser.page_source  # the manifest, in labelled rows
    assert "输出哈希" in browser.page_source and '"input_batches"' not in browser.page_source
    browser.find_element(By.CSS_SELECTOR, "#rerun button").click()
    _wait(browser, lambda d: d.find_elements(By.ID, "verdict"), 240)
    assert "identical" in _text(browser, "#verdict")
    screenshot(browser, "console-audit.png")
    assert (console.credit_home / "audits" / NIGHT / "as-known-then" / "rerun.json").exists()


def test_operator_sees_the_nights(console, browser):
    login(browser, console, "operator")
    browser.get(console.base + "/console/nights")
    _wait(browser, lambda d: AS_OF in d.page_source)
    assert "published" in browser.page_source and "ndrc" in browser.page_source
    assert "<svg" in browser.page_source


def test_entity_lookup_masks_persons_records_the_read_and_downloads_the_report(console, browser):
    from selenium.webdriver.common.by import By

    from scoring.console.entity import entity_report_available, reads_of

    login(browser, console, "lookup")
    uscc = _uscc(console)
    wrong = uscc[:-1] + ("0" if uscc[-1] != "0" else "1")
    browser.get(console.base + f"/console/entity?uscc={wrong}")
    _wait(browser, lambda d: "check character" in _text(d, "#message"))
    assert reads_of(console.store(), wrong) == []
    browser.get(console.base + f"/console/entity?uscc={uscc}")
    _wait(browser, lambda d: d.find_elements(By.ID, "score"))
    import sqlalchemy as sa

    with console.store().engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT score, tier FROM entity_results WHERE run_id = :r AND uscc = :u"),
            {"r": NIGHT, "u": uscc},
        ).one()
    assert _text(browser, "#score") == str(row.score)
    assert "信用风险" in _text(browser, "#tier")
    assert "********" in browser.page_source  # the representative's ID number, masked
    assert reads_of(console.store(), uscc)[-1]["db_role"] == "lookup"
    # staff of another department: the entity is outside their scope, and nothing is read
    r = console.http.get(f"/console/entity?uscc={uscc}", headers=console.as_user("lookup_hrb"))
    assert r.status_code == 403 and str(row.score) not in r.text
    assert [x["db_role"] for x in reads_of(console.store(), uscc)] == ["lookup"]
    if not entity_report_available():
        assert "not available" in browser.page_source
        pytest.skip("scoring.reporting.entity_report is not in this tree yet")
    r = console.http.get(
        f"/console/entity/report?uscc={uscc}&run_id={NIGHT}", headers=console.as_user("lookup")
    )
    assert r.status_code == 200 and len(r.content) > 0
    assert "attachment" in r.headers.get("content-disposition", "")
