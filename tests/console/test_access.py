"""The console's rules without a server: who may use which page and department, and what the
planner computes from a basis (the browser tests drive the same functions through Airflow)."""

from __future__ import annotations

import pytest

from scoring.console.access import (
    Forbidden,
    agencies_for,
    entity_scope,
    pages_for,
    require_agency,
    require_page,
)
from scoring.console.planner import consequences, wilson

IDS = ["dq-samr", "hrb-samr", "hlj-tax"]


def test_pages_follow_roles_and_admin_has_all():
    assert pages_for(["credit_regulator"]) == ["planner"]
    assert pages_for(["Viewer", "Op"]) == []
    assert pages_for(["Admin"]) == ["planner", "audit", "nights", "entity"]
    with pytest.raises(Forbidden, match="credit_auditor"):
        require_page(["credit_regulator"], "audit")


def test_a_department_acts_only_for_its_own_scope():
    roles = ["credit_regulator", "credit_agency_dq-samr"]
    assert agencies_for(roles, IDS) == ["dq-samr"]
    require_agency(roles, "dq-samr", IDS)
    with pytest.raises(Forbidden, match="outside your scope"):
        require_agency(roles, "hrb-samr", IDS)
    with pytest.raises(ValueError, match="unknown department"):
        require_agency(roles, "nowhere", IDS)
    assert agencies_for(["credit_regulator"], IDS) == []  # a regulator without a department
    assert agencies_for(["credit_auditor"], IDS) == IDS
    assert entity_scope(["credit_entity_lookup"], IDS) is None
    assert entity_scope(["credit_entity_lookup", "credit_agency_hrb-samr"], IDS) == ["hrb-samr"]


def test_wilson_interval_contains_the_rate_and_narrows_with_observations():
    assert wilson(0, 0) is None
    lo, hi = wilson(3, 10)
    assert lo < 0.3 < hi
    lo2, hi2 = wilson(300, 1000)
    assert lo < lo2 < 0.3 < hi2 < hi
    assert wilson(0, 5)[0] == 0.0 and wilson(5, 5)[1] == 1.0


BASIS = {
    "capacity_left": 10,
    "bounds": {"source": "Art. 48"},
    "tiers": [
        {"tier": t, "label": t, "population": n, "bounds": b, "hit_rate": h, "hit_interval": iv}
        for t, n, b, h, iv in (
            ("A", 100, ["0", "0.05"], 0.1, [0.05, 0.2]),
            ("B", 20, ["0.03", "0.2"], 0.2, [0.1, 0.3]),
            ("C", 4, ["0.21", "0.6"], 0.5, None),
            ("D", 2, ["0.61", "1"], 0.5, [0.2, 0.8]),
        )
    ],
}


def test_consequences_count_like_the_draw_and_refuse_what_the_law_refuses():
    out = consequences(BASIS, {"A": "0.05", "B": "0.1", "C": "0.5", "D": "1"})
    assert [r["inspections"] for r in out["tiers"]] == [5, 2, 2, 2]  # round half up, exact
    assert out["inspections"] == 11 and not out["ok"] and "10 left" in out["error"]
    assert out["expected_findings"] == round(5 * 0.1 + 2 * 0.2 + 2 * 0.5 + 2 * 0.5, 1)
    ok = consequences(BASIS, {"A": "0", "B": "0.1", "C": "0.5", "D": "1"})
    assert ok["ok"] and ok["inspections"] == 6 and ok["error"] is None
    d0 = consequences(BASIS, {"A": "0", "B": "0.1", "C": "0.5", "D": "0"})
    assert not d0["ok"] and "D" in d0["error"] and "0.61" in d0["error"] and "tiers" not in d0
    bad = consequences(BASIS, {"A": "x", "B": "0.1", "C": "0.5", "D": "1"})
    assert not bad["ok"] and "not a number" in bad["error"]
