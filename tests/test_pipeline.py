"""The nightly pipeline end to end on the embedded store, through the real CLI."""

import json
import re
import shutil

import pandas as pd
import sqlalchemy as sa
from conftest import AS_OF, run_cli

from scoring.intake.layouts import CREDIT_RECORD


def test_run_json_contract_and_all_four_tiers(sqlite_run):
    s = sqlite_run["summary"]
    assert s["status"] == "published"
    assert s["run_id"] and s["entities_scored"] > 1000
    assert set(s["tiers"]) == set("ABCD") and all(s["tiers"][t] > 0 for t in "ABCD")
    assert sum(s["tiers"].values()) == s["entities_scored"]
    assert re.fullmatch(r"[0-9a-f]{64}", s["output_sha256"])
    assert s["published"] and all(p.startswith(str(sqlite_run["home"])) for p in s["published"])


def test_rerunning_a_published_night_builds_beside_it_and_swaps_on_success(sqlite_run, province):
    from pathlib import Path

    first = sqlite_run["summary"]
    before = {p: open(p, "rb").read() for p in first["published"]}
    p = run_cli(
        "run",
        "--as-of",
        AS_OF,
        "--landing",
        str(province / "landing"),
        "--home",
        str(sqlite_run["home"]),
        "--json",
        env={"CREDIT_DB_URL": ""},
    )
    assert p.returncode == 0, p.stderr[-2000:]
    again = json.loads(p.stdout)
    assert again["run_id"] == first["run_id"] + "-r2" and again["status"] == "published"
    assert again["output_sha256"] == first["output_sha256"]
    assert again["tiers"] == first["tiers"]

    def data(paths):  # the delivered data per agency; the manifests name their own run
        return {
            (Path(p).parent.parent.name, Path(p).name): open(p, "rb").read()
            for p in paths
            if not p.endswith("manifest.json")
        }

    assert data(again["published"]) == data(first["published"])
    assert {
        p: open(p, "rb").read() for p in first["published"]
    } == before  # the first attempt is kept
    eng = sa.create_engine(sqlite_run["url"])
    states = dict(
        pd.read_sql("select run_id, status from runs where as_of = '2026-06-30'", eng).values
    )
    assert states == {first["run_id"]: "superseded", again["run_id"]: "published"}
    n = pd.read_sql(
        f"select count(*) as n from entity_results where run_id = '{again['run_id']}'", eng
    )["n"].iloc[0]
    assert n == again["entities_scored"]
    pointers = {p.read_text().split()[0] for p in (sqlite_run["home"] / "outbox").glob("*/CURRENT")}
    assert pointers == {again["run_id"]}
    shown = json.loads(
        run_cli(
            "status",
            "--as-of",
            AS_OF,
            "--home",
            str(sqlite_run["home"]),
            "--json",
            env={"CREDIT_DB_URL": ""},
        ).stdout
    )
    assert shown["run_id"] == again["run_id"]


def test_published_files_carry_a_manifest_with_hashes(sqlite_run):
    import hashlib
    from pathlib import Path

    manifests = [Path(p) for p in sqlite_run["summary"]["published"] if p.endswith("manifest.json")]
    assert manifests
    for m in manifests:
        doc = json.loads(m.read_text())
        assert doc["run_id"] == sqlite_run["summary"]["run_id"] and doc["as_of"] == AS_OF
        for name, meta in doc["files"].items():
            assert hashlib.sha256((m.parent / name).read_bytes()).hexdigest() == meta["sha256"]


def test_tiers_come_from_real_records(sqlite_run):
    eng = sa.create_engine(sqlite_run["url"])
    res = pd.read_sql("select uscc, tier, score, override, reasons from entity_results", eng)
    listed = res[res["override"] == "severe_dishonesty_list"]
    assert len(listed) > 0 and (listed["tier"] == "D").all()
    assert res["reasons"].str.match(r"^R\d{3} ").all()
    clean = res[res["reasons"].str.startswith("R000")]
    assert (clean["tier"].isin(["B"])).all()  # nothing known: the base score, tier B


def test_explain_lists_every_record(sqlite_run):
    eng = sa.create_engine(sqlite_run["url"])
    uscc = pd.read_sql(
        "select uscc from entity_results where override = 'severe_dishonesty_list' "
        "order by uscc limit 1",
        eng,
    )["uscc"].iloc[0]
    p = run_cli(
        "explain",
        uscc,
        "--run",
        sqlite_run["summary"]["run_id"],
        "--home",
        str(sqlite_run["home"]),
        "--json",
        env={"CREDIT_DB_URL": ""},
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["tier"] == "D"
    assert any(
        r["item_code"] in ("DISHONEST_DEBTOR", "SEVERE_DISHONESTY_LIST") and r["counts"]
        for r in out["records"]
    )


def test_a_failed_hard_gate_publishes_nothing(province, tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(province / "landing", landing)
    cols = [h for h in CREDIT_RECORD.standard_headers() if h != "主体名称"]
    (landing / "ndrc" / "20260630_extra.csv").write_text(
        ",".join(cols) + "\n" + ",".join("x" for _ in cols) + "\n", encoding="utf-8"
    )
    home = tmp_path / "h"
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
    assert p.returncode == 1
    s = json.loads(p.stdout)
    assert s["status"] == "gate_failed" and "schema" in s["message"]
    assert s["published"] == [] and s["entities_scored"] == 0
    assert not (home / "outbox").exists()
    eng = sa.create_engine(f"sqlite:///{home / 'credit.db'}")
    assert pd.read_sql("select count(*) n from entity_results", eng)["n"].iloc[0] == 0
    assert pd.read_sql("select count(*) n from record_batches", eng)["n"].iloc[0] == 0
    report = (home / "runs").rglob("report.html")
    assert any("schema" in r.read_text(encoding="utf-8") for r in report)


def test_cli_errors_are_one_line(tmp_path):
    p = run_cli(
        "run", "--as-of", AS_OF, "--landing", str(tmp_path / "nope"), "--home", str(tmp_path)
    )
    assert p.returncode != 0 and p.stderr.strip().count("\n") == 0 and "Traceback" not in p.stderr
    p = run_cli("run", "--as-of", "2026-13-45", "--landing", str(tmp_path), "--home", str(tmp_path))
    assert p.returncode != 0 and "Traceback" not in p.stderr


def test_an_unregistered_folder_delivering_the_debtor_list_changes_no_tier(
    sqlite_run, province, tmp_path
):
    """Only registered provider folders are read: ten made-up dishonest debtors in a folder no
    registry names are refused with a landing-problem line on the report, and no tier moves. The
    same file in the court's folder (the control) does move tiers."""
    from scoring.intake.ingest import read_file
    from scoring.intake.layouts import DISHONEST

    register = read_file(next((province / "landing" / "samr").glob("20260630_register.*")))
    debtors = set(
        read_file(next((province / "landing" / "court").glob("*.csv"))).rows["subject_code"]
    )
    clean = [u for u in register.rows["uscc"].dropna() if u not in debtors][:10]
    names = dict(zip(register.rows["uscc"], register.rows["subject_name"]))
    rows = []
    for i, u in enumerate(clean):
        value = {
            "被执行人姓名/名称": names[u],
            "统一社会信用代码/身份证号码": u,
            "执行法院": "哈尔滨市中级人民法院",
            "案号": f"（2026）黑01执{9000 + i}号",
            "失信被执行人行为具体情形": "有履行能力而拒不履行生效法律文书确定义务",
            "发布时间": "2026-06-29",
        }
        rows.append(",".join(value.get(h, "") for h in DISHONEST.standard_headers()))
    text = ",".join(DISHONEST.standard_headers()) + "\n" + "\n".join(rows) + "\n"

    def night(folder: str) -> dict:
        landing = tmp_path / folder / "landing"
        shutil.copytree(province / "landing", landing)
        (landing / folder).mkdir(exist_ok=True)
        (landing / folder / "20260630_dishonest_debtor_extra.csv").write_text(text, "utf-8")
        home = tmp_path / folder / "home"
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
        assert p.returncode == 0, p.stderr[-2000:]
        return {"summary": json.loads(p.stdout), "home": home}

    rogue = night("rogue")
    s = rogue["summary"]
    assert s["tiers"] == sqlite_run["summary"]["tiers"]
    assert s["output_sha256"] == sqlite_run["summary"]["output_sha256"]
    assert {"kind": "unregistered_folder", "path": "rogue"} in [
        {k: p[k] for k in ("kind", "path")} for p in s["landing_problems"]
    ]
    report = next((rogue["home"] / "runs").rglob("report.html")).read_text(encoding="utf-8")
    assert "rogue" in report and "unregistered_folder" in report
    # The manifest names the layout and provider-registry versions the night read with.
    from scoring.intake.layouts import LayoutSet
    from scoring.intake.providers import Registry

    manifest = json.loads(next((rogue["home"] / "runs").rglob("manifest.json")).read_text("utf-8"))
    assert manifest["layouts_sha256"] == LayoutSet.in_force(AS_OF).sha256
    assert manifest["providers_sha256"] == Registry.in_force(AS_OF).sha256
    control = night("court")["summary"]
    assert control["tiers"]["D"] > s["tiers"]["D"], "the same rows from the court do count"
