"""The console in a real browser against a real Airflow api-server (see airflow_console.py):
the planner refuses D = 0, its consequences follow a ratio change and a committed plan shows its
hash; bad input changes nothing; a department does not see another's scope; an auditor's rerun
shows "identical"; the operator sees the nights; an entity lookup is masked and logged; every
route refuses the unauthenticated, the forged and the wrong role."""

from __future__ import annotations

import pytest
from airflow_console import (
    ADMIN,
    AS_OF,
    AUDIT_DAG,
    NIGHT,
    REPO,
    Console,
    airflow_meta_url,
    browser,
    console,
    login,
    plans_in,
    publish_next_night,
    screenshot,
    text_of,
    type_into,
    uscc_in,
    wait_for,
)

pytestmark = [pytest.mark.airflow]
__all__ = ["airflow_meta_url", "browser", "console"]  # module fixtures used by the tests below


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
    ("GET", "/api/audit/reruns", "/console/api/audit/reruns?run_id=nightly-20260630", "auditor"),
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

    before = len(plans_in(console))
    login(browser, console, "reg_dq")
    browser.get(console.base + "/console/planner?agency=dq-samr")
    wait_for(browser, lambda d: text_of(d, "#total") not in ("", "—"))
    proposal_total = int(text_of(browser, "#total"))
    # Art. 48 bounds: tier D (high risk) may not be left uninspected.
    type_into(browser, "#rD", "0")
    wait_for(browser, lambda d: "D 级" in text_of(d, "#message"))
    assert "0.61" in text_of(browser, "#message")
    assert not browser.find_element(By.ID, "commit").is_enabled()
    assert text_of(browser, "#total") == "—"
    type_into(browser, "#rD", "1")
    wait_for(browser, lambda d: text_of(d, "#total") not in ("", "—"))
    # one tier's ratio changes → its inspections and the total follow
    type_into(browser, "#rA", "0")
    wait_for(browser, lambda d: text_of(d, "#kA") == "0")
    with_a0 = int(text_of(browser, "#total"))
    type_into(browser, "#rA", "0.05")
    wait_for(browser, lambda d: text_of(d, "#kA") not in ("0", "—"))
    assert int(text_of(browser, "#total")) == with_a0 + int(text_of(browser, "#kA"))
    type_into(browser, "#rB", "abc")
    wait_for(browser, lambda d: "not a number" in text_of(d, "#message"))
    browser.find_element(By.ID, "adopt").click()
    wait_for(browser, lambda d: text_of(d, "#total") == str(proposal_total))
    assert text_of(browser, "#message") == ""
    screenshot(browser, "console-planner.png")
    browser.find_element(By.ID, "commit").click()
    wait_for(browser, lambda d: text_of(d, "#commitment") != "", 120)
    plans = plans_in(console)
    assert len(plans) == before + 1
    plan = plans[-1]
    assert text_of(browser, "#commitment") == plan["commitment_sha256"]
    assert plan["agency_id"] == "dq-samr" and plan["status"] == "committed"
    # the plan's own page: the same hash, verified from the store, and its public file
    browser.find_element(By.LINK_TEXT, plan["plan_id"]).click()
    wait_for(browser, lambda d: text_of(d, "#verified") != "")
    assert text_of(browser, "#commitment") == plan["commitment_sha256"]
    assert "verified" in text_of(browser, "#verified")
    r = console.http.get(
        f"/console/plans/{plan['plan_id']}/files/plan.json", headers=console.as_user("reg_dq")
    )
    assert r.status_code == 200 and r.json()["commitment_sha256"] == plan["commitment_sha256"]


def test_after_the_next_publication_the_plan_shows_its_draw_inspectors_and_verification(
    console, browser
):
    from selenium.webdriver.common.by import By

    from scoring.sampling.plans import draw_committed

    plans = [
        p for p in plans_in(console) if p["agency_id"] == "dq-samr" and p["status"] == "committed"
    ]
    if not plans:  # run on its own: commit one as the regulator would
        r = console.http.post(
            "/console/api/plans",
            headers=console.as_user("reg_dq"),
            json={"agency": "dq-samr", "period": "2026-07", "task": "drawn",
                  "ratios": {"A": "0.05", "B": "0.2", "C": "0.6", "D": "1"}},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        plans = [p for p in plans_in(console) if p["plan_id"] == r.json()["plan_id"]]
    plan_id = plans[0]["plan_id"]
    # The next night (nothing new arrives) is published: its output hash is the plan's seed.
    publish_next_night(console)
    drawn = draw_committed(console.store(), plan_id)  # as the sampling DAG does on publication
    login(browser, console, "reg_dq")
    browser.get(console.base + f"/console/plans/{plan_id}")
    wait_for(browser, lambda d: text_of(d, "#verified") != "")
    assert text_of(browser, "#status") == "drawn" and "verified" in text_of(browser, "#verified")
    rows = browser.find_elements(By.CSS_SELECTOR, "main table tbody tr")
    assert len(rows) == len(drawn["draw"]["assignments"]) > 0
    assert all(r.find_elements(By.TAG_NAME, "td")[3].text for r in rows)  # inspectors named
    assert drawn["seed_source"]["value"] in browser.page_source


def test_planner_bad_input_gives_a_message_and_changes_nothing(console, browser):
    before = plans_in(console)
    login(browser, console, "reg_dq")
    browser.get(console.base + "/console/planner?agency=dq-samr&period=2026-05")
    wait_for(browser, lambda d: "closed" in text_of(d, "#message"))
    browser.get(console.base + "/console/planner?agency=dq-samr&period=July")
    wait_for(browser, lambda d: "bad period" in text_of(d, "#message"))
    h = console.as_user("reg_dq")
    for body in (
        {"agency": "dq-samr", "period": "2026-07", "ratios": {"A": "0.05", "B": "0.1", "C": "0.3", "D": "0"}},
        {"agency": "dq-samr", "period": "2026-05", "ratios": {"A": "0.05", "B": "0.1", "C": "0.3", "D": "0.8"}},
        {"agency": "dq-samr", "period": "2026-07", "ratios": {"A": "x", "B": "0.1", "C": "0.3", "D": "0.8"}},
    ):  # fmt: skip
        r = console.http.post("/console/api/plans", json={**body, "task": "bad"}, headers=h)
        assert r.status_code == 400 and "\n" not in r.json()["detail"], r.text
    assert plans_in(console) == before


def test_a_department_does_not_see_another_departments_scope(console, browser):
    from selenium.webdriver.common.by import By

    login(browser, console, "reg_hrb")
    browser.get(console.base + "/console/planner")
    options = [
        o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "select option")
    ]
    assert options == ["hrb-samr"]
    browser.get(console.base + "/console/planner?agency=dq-samr")
    wait_for(browser, lambda d: "outside your scope" in d.page_source)
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
    dq = [p for p in plans_in(console) if p["agency_id"] == "dq-samr"]
    for p in dq:
        assert console.http.get(f"/console/plans/{p['plan_id']}", headers=h).status_code == 403


def test_auditor_reruns_a_night_and_sees_identical_with_the_manifest(console, browser):
    from selenium.webdriver.common.by import By

    login(browser, console, "auditor")
    browser.get(console.base + "/console/audit?run_id=nightly-20990101")
    wait_for(browser, lambda d: "no stored run" in text_of(d, "#message"))
    browser.get(console.base + "/console/audit?run_id=bad%20id")
    wait_for(browser, lambda d: "bad run id" in text_of(d, "#message"))
    browser.get(console.base + f"/console/audit?run_id={NIGHT}")
    with console.store().engine.connect() as conn:
        import sqlalchemy as sa

        out = conn.execute(
            sa.text("SELECT output_sha256 FROM runs WHERE run_id = :r"), {"r": NIGHT}
        ).scalar_one()
    assert out in browser.page_source  # the manifest, in labelled rows
    assert "输出哈希" in browser.page_source and '"input_batches"' not in browser.page_source
    browser.find_element(By.CSS_SELECTOR, "#rerun button").click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "verdict"), 240)
    assert "identical" in text_of(browser, "#verdict")
    screenshot(browser, "console-audit.png")
    assert (console.credit_home / "audits" / NIGHT / "as-known-then" / "rerun.json").exists()
    # the rerun was a run of the audit DAG in Airflow, with the form's params, by the auditor
    runs = console.http.get(
        f"/api/v2/dags/{AUDIT_DAG}/dagRuns", headers=console.as_user(ADMIN[0])
    ).json()["dag_runs"]
    assert [(r["state"], r["conf"], r["triggering_user_name"]) for r in runs] == [
        ("success", {"run_id": NIGHT, "mode": "as-known-then"}, "auditor")
    ]
    r = console.http.get(
        "/console/api/audit/reruns?run_id=../../etc&mode=as-known-then",
        headers=console.as_user("auditor"),
    )
    assert r.status_code == 400 and "bad run id" in r.json()["detail"]


def test_operator_sees_the_nights(console, browser):
    publish_next_night(console)
    login(browser, console, "operator")
    browser.get(console.base + "/console/nights")
    wait_for(browser, lambda d: AS_OF in d.page_source)
    assert "published" in browser.page_source and "ndrc" in browser.page_source
    assert "<svg" in browser.page_source
    from scoring.console.nights import overdue_objections, overview

    nights = overview(console.store())
    assert len(nights) >= 2
    for n in nights:  # every night's overdue objections, in its own row
        late = overdue_objections(console.store(), n["run_id"])
        cell = text_of(browser, f"[data-overdue='{n['run_id']}']")
        assert cell == ("、".join(f"{x['provider']} {x['overdue']}" for x in late) or "—")
    late = overdue_objections(console.store(), nights[0]["run_id"])
    shown = text_of(browser, "#overdue-objections")
    assert all(f"{x['provider']} {x['overdue']}" in shown for x in late), (late, shown)
    assert ("Overdue objections on the latest night:" in shown) == bool(late)


def test_entity_lookup_masks_persons_records_the_read_and_downloads_the_report(console, browser):
    from selenium.webdriver.common.by import By

    from scoring.console.entity import entity_report_available, reads_of

    login(browser, console, "lookup")
    uscc = uscc_in(console)
    wrong = uscc[:-1] + ("0" if uscc[-1] != "0" else "1")
    browser.get(console.base + f"/console/entity?uscc={wrong}")
    wait_for(browser, lambda d: "check character" in text_of(d, "#message"))
    assert reads_of(console.store(), wrong) == []
    browser.get(console.base + f"/console/entity?uscc={uscc}&run_id={NIGHT}")
    wait_for(browser, lambda d: d.find_elements(By.ID, "score"))
    import sqlalchemy as sa

    with console.store().engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT score, tier FROM entity_results WHERE run_id = :r AND uscc = :u"),
            {"r": NIGHT, "u": uscc},
        ).one()
    assert text_of(browser, "#score") == str(row.score)
    assert "信用风险" in text_of(browser, "#tier")
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
