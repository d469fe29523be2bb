"""Feed freshness in Chinese working days, and operator waivers."""

from __future__ import annotations

import pandas as pd
import pytest

from scoring.common.catalogue import Catalogue
from scoring.quality.freshness import cycle_working_days, feed_freshness, gate_feeds_present
from scoring.quality.validate import GateResult
from scoring.quality.waivers import WaiverError, apply_waivers, parse_waiver


@pytest.fixture(scope="module")
def cat():
    return Catalogue.load()


def _all_delivered(cat, day):
    return pd.DataFrame(
        [
            {"provider": p["id"], "feed": f, "delivered_on": pd.Timestamp(day)}
            for p in cat.providers
            for f in p["feeds"]
        ]
    )


def test_cycles_in_working_days():
    assert [cycle_working_days(c) for c in (1, 7, 30)] == [1, 5, 21]


def test_spring_festival_is_not_an_outage(cat):
    # Last delivery on Fri 2026-02-13; 14 Feb (Sat) is an adjusted working day, 15-23 Feb are off.
    fr = feed_freshness(cat, _all_delivered(cat, "2026-02-13"), "2026-02-23").set_index(
        ["provider", "feed"]
    )
    assert (
        fr.loc[("court", "dishonest_debtor"), "working_days_since"] == 1
    )  # only the adjusted Saturday
    assert fr["ok"].all()
    # Counting calendar days the daily court feed would have been 10 days old and failed.
    late = feed_freshness(cat, _all_delivered(cat, "2026-02-13"), "2026-03-02").set_index(
        ["provider", "feed"]
    )
    # 24-27 Feb, Sat 28 Feb (adjusted working day), Mon 2 Mar.
    assert late.loc[("court", "dishonest_debtor"), "working_days_since"] == 7
    assert late.loc[("court", "dishonest_debtor"), "overdue_working_days"] == 6
    assert not late.loc[("court", "dishonest_debtor"), "ok"]


def test_never_delivered_fails_with_a_clear_line(cat):
    d = _all_delivered(cat, "2026-06-29")
    d = d[d["provider"] != "court"]
    failed = [g for g in gate_feeds_present(cat, d, "2026-06-30") if not g.passed]
    assert {g.scope for g in failed} == {"court/dishonest_debtor", "court/credit_record"}
    assert all(g.observed == "never delivered" for g in failed)


def test_waiver_names_one_gate_and_needs_approver_and_reason():
    with pytest.raises(WaiverError, match="approver"):
        parse_waiver("feed_present:court", "", "outage")
    with pytest.raises(WaiverError, match="reason"):
        parse_waiver("feed_present:court", "Li Ming", " ")
    with pytest.raises(WaiverError, match="cannot be waived"):
        parse_waiver("reconciliation:court", "Li Ming", "x")
    with pytest.raises(WaiverError, match="scope"):
        parse_waiver("feed_present", "Li Ming", "x")
    w = parse_waiver("feed_present:court", "Li Ming", "court system maintenance")
    gates = [
        GateResult("feed_present", "court/dishonest_debtor", True, False),
        GateResult("feed_present", "courtyard/penalty", True, False),
        GateResult("feed_present", "tax/penalty", True, True),
    ]
    failing, record = apply_waivers(gates, (w,))
    assert [g.scope for g in failing] == ["courtyard/penalty"]
    assert record == [
        {
            "gate": "feed_present",
            "scope": "court",
            "approver": "Li Ming",
            "reason": "court system maintenance",
            "covered": ["court/dishonest_debtor"],
        }
    ]
    assert "WAIVED by Li Ming" in gates[0].waiver
