"""Batch gates: feeds missing beyond their cycle, row counts far from history, quarantine share."""

import json
import shutil

import pandas as pd
import sqlalchemy as sa
from conftest import AS_OF, run_cli

from scoring.common.catalogue import Catalogue
from scoring.quality.gates import gate_feeds_present, gate_quarantine_share, gate_row_count
from scoring.reporting.report import provider_feedback


def test_feed_missing_beyond_its_update_cycle():
    cat = Catalogue.load()
    rows = [
        {"provider": p["id"], "feed": f, "delivered_on": pd.Timestamp("2026-06-30")}
        for p in cat.providers
        for f in p["feeds"]
    ]
    d = pd.DataFrame(rows)
    assert all(g.passed for g in gate_feeds_present(cat, d, "2026-06-30"))
    # The register is due every working day (+3 working days grace): five working days late fails
    # (a weekend in between does not count), the monthly feeds still pass.
    assert all(g.passed for g in gate_feeds_present(cat, d, "2026-07-05"))
    late = gate_feeds_present(cat, d, "2026-07-07")
    failed = {g.scope for g in late if not g.passed}
    assert "samr/register" in failed and "court/dishonest_debtor" in failed
    assert "tax/credit_record" not in failed
    missing = gate_feeds_present(cat, d[d["feed"] != "licence"], "2026-06-30")
    assert [g.scope for g in missing if not g.passed] == ["samr/licence"]


def test_row_count_against_recent_history():
    cfg = Catalogue.load().gates
    assert gate_row_count("f", 1000, [900, 1100, 1000, 950], cfg).passed
    assert not gate_row_count("f", 100, [900, 1100, 1000, 950], cfg).passed
    assert not gate_row_count("f", 10_000, [900, 1100, 1000, 950], cfg).passed
    assert gate_row_count("f", 10_000, [900, 1100], cfg).passed  # too little history to judge
    # A correction is judged against the one file it replaces.
    assert gate_row_count("f", 1000, [990], cfg, min_history=1).passed
    assert not gate_row_count("f", 10_000, [990], cfg, min_history=1).passed


def test_quarantine_share_threshold():
    assert gate_quarantine_share("f", 1000, 100, 0.10).passed
    assert not gate_quarantine_share("f", 1000, 101, 0.10).passed


def test_a_missing_feed_stops_the_run(province, tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(province / "landing", landing)
    (landing / "court" / "20260630_dishonest_debtor.csv").unlink()
    p = run_cli(
        "run",
        "--as-of",
        AS_OF,
        "--landing",
        str(landing),
        "--home",
        str(tmp_path / "h"),
        "--json",
        env={"CREDIT_DB_URL": ""},
    )
    assert p.returncode == 1
    s = json.loads(p.stdout)
    assert s["status"] == "gate_failed" and "court/dishonest_debtor" in s["message"]


def test_provider_report_from_the_demo_run(sqlite_run):
    eng = sa.create_engine(sqlite_run["url"])
    files = pd.read_sql("select * from landed_files", eng)
    quar = pd.read_sql("select * from quarantine", eng)
    fb = provider_feedback(files, quar, Catalogue.load()).set_index("provider")
    assert set(fb.index) == set(files["provider"])
    for col in (
        "received",
        "accepted",
        "compliance",
        "compliance_ok",
        "uscc_error_per_10k",
        "uscc_ok",
        "top_reasons",
    ):
        assert col in fb.columns
    assert (fb["compliance"] < 0.98).any() and not fb[
        "compliance_ok"
    ].all()  # 2% defects miss 98% somewhere
    assert (fb["uscc_error_per_10k"] > 1).any()  # and USCC errors above 1‱
    with_q = fb[fb["quarantined"] > 0]
    assert len(with_q) and with_q["top_reasons"].str.contains(r"\(e\.g\. .+:\d+\)").all()
    csvs = list(sqlite_run["home"].rglob("provider_report.csv"))
    assert csvs and "timely_share" in pd.read_csv(csvs[0]).columns
