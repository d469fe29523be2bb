"""The command line's guards: `credit check` reads the change feed, and an agency id that is not in
the registry is refused before it reaches a path."""

from __future__ import annotations

import json

from conftest import run_cli


def test_check_reads_the_change_feed(province):
    change = next((province / "landing").glob("*/*_credit_change.csv"))
    p = run_cli("check", str(change), "--json")
    assert p.returncode in (0, 1) and "Traceback" not in p.stderr, p.stderr[-2000:]
    out = json.loads(p.stdout)
    assert (
        out["feed"] == "credit_change" and out["received"] == out["accepted"] + out["quarantined"]
    )


def test_unknown_agency_is_refused_before_any_path(tmp_path):
    home = tmp_path / "home"
    p = run_cli(
        "sample",
        "commit",
        "--agency",
        "../../escape",
        "--ratios",
        "A=0.03,B=0.1,C=0.4,D=0.8",
        "--home",
        str(home),
    )
    assert p.returncode == 2 and "unknown agency" in p.stderr
    assert not (tmp_path / "escape").exists() and not list(tmp_path.rglob("*escape*"))
