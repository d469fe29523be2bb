"""Quiet nights, waivers, catch-up and bad landing input through the real `credit run` command."""

from __future__ import annotations

import json
import pathlib
import shutil

import pytest
from conftest import run_cli

from scoring import pipeline

ENTITIES = 300


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    """Deliveries on Friday 6 March 2026, a quiet weekend, then Monday's deliveries."""
    from scoring.world.province import write_deliveries

    out = tmp_path_factory.mktemp("nights")
    write_deliveries(out, "2026-03-06", n_entities=ENTITIES, seed=5)
    home = out / "home"
    p = run_cli(
        "run",
        "--from",
        "2026-03-06",
        "--to",
        "2026-03-08",
        "--landing",
        str(out / "landing"),
        "--home",
        str(home),
        "--json",
        env={"CREDIT_DB_URL": ""},
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return out, home, json.loads(p.stdout)["nights"]


def test_quiet_nights_publish_from_the_stored_history(nights):
    out, home, s = nights
    assert [n["status"] for n in s] == ["published"] * 3
    assert [n["no_new_deliveries"] for n in s] == [False, True, True]
    report = pathlib.Path(s[1]["report"]).read_text(encoding="utf-8")
    assert "No new deliveries" in report and "Provider freshness" in report
    assert "<!--status-->published<!--/status-->" in report
    assert all(n["entities_scored"] == s[0]["entities_scored"] for n in s)


def test_a_waiver_needs_a_name_and_a_reason(nights):
    out, home, _ = nights
    p = run_cli(
        "run",
        "--as-of",
        "2026-03-09",
        "--landing",
        str(out / "landing"),
        "--home",
        str(home),
        "--waive",
        "feed_present:court",
        env={"CREDIT_DB_URL": ""},
    )
    assert p.returncode == 2 and "--approver" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_bad_landing_input_is_a_clear_line_not_a_traceback(nights, tmp_path, monkeypatch):
    out, home, _ = nights
    landing = tmp_path / "landing"
    shutil.copytree(out / "landing", landing)
    home2 = tmp_path / "home"
    # A file named for a future date, and a provider folder that cannot be read.
    (landing / "tax" / "20270101_penalty.csv").write_bytes(
        (landing / "tax" / "20260306_penalty.csv").read_bytes()
    )
    real = pathlib.Path.iterdir

    def iterdir(self):
        if self == landing / "hf":
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(pathlib.Path, "iterdir", iterdir)
    s = pipeline.run_night(pipeline.RunContext(as_of="2026-03-06", landing=landing, home=home2))
    kinds = {(p["kind"], p["path"]) for p in s["landing_problems"]}
    assert ("future_dated", "tax/20270101_penalty.csv") in kinds
    assert ("folder_unreadable", "hf") in kinds
    # hf never delivered here: its freshness gate stops the run before publication, and says why.
    assert (
        s["status"] == "gate_failed" and "hf/credit_record" in s["message"] and not s["published"]
    )
    report = pathlib.Path(s["report"]).read_text(encoding="utf-8")
    assert "folder_unreadable" in report and "future_dated" in report
