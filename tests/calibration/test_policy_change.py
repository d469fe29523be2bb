"""Policy changes: refusal of bad policy files (one line each), the diff an approver sees, and an
effective-dated promotion that leaves earlier nights alone."""

import json

import pytest
import yaml
from conftest import AS_OF, run_cli

from scoring.common.catalogue import Catalogue
from scoring.common.config import CONFIG_DIR
from scoring.evaluation.evaluate import Policy
from scoring.history import policy_registry
from scoring.history.store import Store

V1, V2 = CONFIG_DIR / "policy" / "v1.yaml", CONFIG_DIR / "policy" / "v2.yaml"
SEED = CONFIG_DIR / "policy" / "history.yaml"


def _registry(home) -> list[dict]:
    store = Store.open(f"sqlite:///{home / 'credit.db'}", home)
    with store.engine.connect() as conn:
        return policy_registry.entries(conn)


def _v2() -> dict:
    return yaml.safe_load(V2.read_text(encoding="utf-8"))


def _broken(kind: str) -> dict:
    doc = _v2()
    if kind == "missing dimension":
        doc["dimensions"] = [d for d in doc["dimensions"] if d["id"] != "supervisory_risk"]
        doc["items"] = {
            k: v for k, v in doc["items"].items() if v["dimension"] != "supervisory_risk"
        }
    elif kind == "overlapping cuts":
        doc["tiers"][2]["min_score"] = doc["tiers"][1]["min_score"]
    elif kind == "unordered cuts":
        doc["tiers"][1]["min_score"], doc["tiers"][2]["min_score"] = 500, 720
    elif kind == "unknown item":
        doc["items"]["CHARITY_GALA"] = dict(doc["items"]["COMMENDATION"], reason="R099")
    return doc


EXPECTED = {
    "missing dimension": "dimension supervisory_risk is missing",
    "overlapping cuts": "cut scores overlap: B and C both start at 700",
    "unordered cuts": "cut scores are not in order: C starts at 720, above B at 500",
    "unknown item": "item CHARITY_GALA is not in the catalogue in force on 2026-07-01",
}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_a_bad_policy_file_is_refused_with_one_clear_line(kind, tmp_path, sqlite_run):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_broken(kind), allow_unicode=True), encoding="utf-8")
    before = SEED.read_bytes()
    p = run_cli(
        "policy",
        "promote",
        str(path),
        "--approved-by",
        "张三",
        "--reason",
        "test",
        "--effective-from",
        "2026-07-01",
        "--diff",
        str(tmp_path / "none.json"),
        "--home",
        str(sqlite_run["home"]),
        env={"CREDIT_DB_URL": ""},
    )
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and EXPECTED[kind] in lines[0], p.stderr
    assert SEED.read_bytes() == before


def test_an_effective_date_before_a_published_night_is_refused(tmp_path, sqlite_run):
    p = run_cli(
        "policy",
        "promote",
        str(V2),
        "--approved-by",
        "张三",
        "--reason",
        "test",
        "--effective-from",
        "2026-06-15",
        "--diff",
        str(tmp_path / "none.json"),
        "--home",
        str(sqlite_run["home"]),
        env={"CREDIT_DB_URL": ""},
    )
    assert p.returncode != 0
    assert p.stderr.strip() == (
        "credit policy: policy refused: effective date 2026-06-15 is on or before night 2026-06-30, "
        "already published under the policy then in force (choose a date after 2026-06-30)"
    )


@pytest.fixture(scope="module")
def diff(sqlite_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("diff")
    p = run_cli(
        "policy",
        "diff",
        str(V1),
        str(V2),
        "--as-of",
        AS_OF,
        "--out",
        str(out),
        "--json",
        "--home",
        str(sqlite_run["home"]),
        env={"CREDIT_DB_URL": ""},
    )
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout)


def test_the_diff_shows_the_migration_shares_movers_and_inspection_load(diff, sqlite_run):
    n = diff["entities"]
    assert n == sqlite_run["summary"]["entities_scored"]
    assert sum(sum(row.values()) for row in diff["matrix"].values()) == n
    assert (
        diff["new_counts"] == sqlite_run["summary"]["tiers"]
    )  # the night itself ran under v2, on the same inputs
    assert {t: sum(diff["matrix"][a][t] for a in "ABCD") for t in "ABCD"} == diff["new_counts"]
    # v2 makes the clean majority A (v1 had them in B).
    assert diff["new_shares"]["A"] > 0.6 > diff["old_shares"]["A"]
    assert diff["matrix"]["B"]["A"] > 0.5 * n
    # The published reference, with its citation: Dandong's counts (A 31107, B 12044, C 3682, D 721).
    ref = diff["reference"]
    assert ref["verified"] is True and ref["printed"] == {
        "A": 31107,
        "B": 12044,
        "C": 3682,
        "D": 721,
    }
    assert {t: round(ref["shares"][t], 3) for t in "ABCD"} == {
        "A": 0.654,
        "B": 0.253,
        "C": 0.077,
        "D": 0.015,
    }
    assert "https://aic.dandong.gov.cn/" in ref["citation"] and ref["source"]["quote"]
    assert diff["new_minus_reference"]["A"] == round(
        diff["new_shares"]["A"] - ref["shares"]["A"], 6
    )
    assert all(
        abs("ABCD".index(m["new_tier"]) - "ABCD".index(m["old_tier"])) >= 2 for m in diff["movers"]
    )
    assert len(diff["movers"]) == diff["movers_2plus"]
    assert all(m["new_reasons"] for m in diff["movers"])
    load = {r["agency_id"]: r for r in diff["inspection_load"]}
    assert set(load) >= {"hlj-samr", "hlj-tax"}
    whole = load["hlj-samr"]  # the whole province: fewer inspections once most entities are A
    assert whole["entities"] == n and whole["inspections_new"] < whole["inspections_old"]
    assert whole["change"] == whole["inspections_new"] - whole["inspections_old"]
    assert sum(whole["new_by_tier"].values()) == n


def test_the_diff_page_has_the_matrix_as_a_picture(diff):
    from pathlib import Path

    page = Path(diff["files"]["html"]).read_text(encoding="utf-8")
    assert "data:image/png;base64," in page and diff["diff_id"] in page
    assert Path(diff["files"]["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<a href='https://aic.dandong.gov.cn/html/DDJGJ/202305/0168506601542937.html'>" in page


def test_the_terminal_table_prints_v2_shares_next_to_the_cited_reference(diff):
    from scoring.calibration.diff_views import diff_text

    text = diff_text(diff)
    for t in "ABCD":  # one line per tier: old, new, reference, new - reference
        cells = (
            f"{diff['old_shares'][t]:.1%}",
            f"{diff['new_shares'][t]:.1%}",
            f"{diff['reference']['shares'][t]:.1%}",
        )
        assert any(line.split()[:4] == [t, *cells] for line in text.splitlines()), (t, text)
    assert diff["reference"]["label"] in text and diff["reference"]["citation"] in text
    assert "UNVERIFIED" not in text


def test_the_first_report_under_v2_sets_its_shares_beside_the_cited_reference(sqlite_run):
    from pathlib import Path

    from scoring.reporting.reference import load_reference

    report = Path(sqlite_run["summary"]["report"]).read_text(encoding="utf-8")
    section = report[report.index("Policy change: v1.yaml → v2.yaml") :]
    ref = load_reference()["reference"]
    n = sqlite_run["summary"]["entities_scored"]
    for t in "ABCD":
        this_night = sqlite_run["summary"]["tiers"].get(t, 0) / n
        assert (
            f"<td>{t}</td>" in section
            and f"<td>{this_night:.1%}</td><td>{ref['shares'][t]:.1%}</td>" in section
        )
    assert "https://aic.dandong.gov.cn/html/DDJGJ/202305/0168506601542937.html" in section


def test_promotion_records_the_approval_and_applies_only_from_its_date(diff, tmp_path):
    home = tmp_path / "home"  # a store of its own: the session's store stays as the night left it
    before = SEED.read_bytes()
    args = [
        "policy",
        "promote",
        str(V2),
        "--approved-by",
        "信用评价科 李四",
        "--reason",
        "clean entities are A",
        "--diff",
        diff["files"]["json"],
        "--home",
        str(home),
        "--json",
    ]
    # No approver: refused.
    p = run_cli(
        *[a if a != "信用评价科 李四" else " " for a in args],
        "--effective-from",
        "2026-07-01",
        env={"CREDIT_DB_URL": ""},
    )
    assert p.returncode != 0 and "approver" in p.stderr
    p = run_cli(*args, "--effective-from", "2026-07-01", env={"CREDIT_DB_URL": ""})
    assert p.returncode == 0, p.stderr
    entry = json.loads(p.stdout)
    assert entry["diff"]["id"] == diff["diff_id"] and entry["approved_by"] == "信用评价科 李四"
    assert entry["diff"]["body"]["diff_id"] == diff["diff_id"]  # the diff itself is on record
    assert SEED.read_bytes() == before  # the registry only
    registry = _registry(home)
    assert [e["entry_id"] for e in registry] == [1, 2, 3]
    assert Policy.in_force("2026-06-30", registry).approval["entry_id"] == 2
    assert Policy.in_force("2026-07-01", registry).approval["entry_id"] == 3
    assert Policy.in_force("2026-07-01", registry).sha256 == Policy.load(V2).sha256
    # Not after the latest entry: refused.
    p = run_cli(*args, "--effective-from", "2026-07-01", env={"CREDIT_DB_URL": ""})
    assert p.returncode != 0 and "not after the latest policy in the registry" in p.stderr
    # A diff made for another policy cannot approve this one.
    other = json.loads(open(diff["files"]["json"], encoding="utf-8").read())
    other["new"]["sha256"] = "0" * 64
    (tmp_path / "tampered.json").write_text(json.dumps(other))
    p = run_cli(
        *[a if a != diff["files"]["json"] else str(tmp_path / "tampered.json") for a in args],
        "--effective-from",
        "2026-08-01",
        env={"CREDIT_DB_URL": ""},
    )
    assert p.returncode != 0 and "changed after it was made" in p.stderr


def test_the_repository_history_puts_v2_in_force_from_its_date():
    assert Policy.shipped_in_force("2026-05-31").sha256 == Policy.load(V1).sha256
    assert (
        Policy.shipped_in_force("2026-06-01").sha256
        == Policy.load(V2).sha256
        == Policy.shipped_in_force(AS_OF).sha256
    )
    assert (
        Catalogue.in_force("2026-05-31").sha256
        == Catalogue.load(CONFIG_DIR / "catalogue" / "v1.yaml").sha256
    )
    assert (
        Catalogue.in_force("2026-06-01").sha256
        == Catalogue.load(CONFIG_DIR / "catalogue" / "v2.yaml").sha256
    )
    entry = yaml.safe_load(SEED.read_text())["history"][-1]
    assert (
        entry["approved_by"]
        and entry["reason"]
        and (CONFIG_DIR / "policy" / entry["diff"]["file"]).exists()
    )
