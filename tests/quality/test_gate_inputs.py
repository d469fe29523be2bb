"""Gate inputs as a damaged night delivers them: empty, all-invalid, of the wrong type. The gates
decide (quarantine share, feed missing); they never fail to."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from scoring.common.catalogue import Catalogue
from scoring.quality.gates import StagedVerdicts, decide_gates, registered_dates

USCCS = pd.Series(["91230102MA00000001", "91230102MA00000002", None, "garbage"])


@pytest.mark.parametrize(
    "registers",
    [
        [],
        [pd.DataFrame()],
        [pd.DataFrame(columns=["uscc", "registered_date"])],
        [pd.DataFrame({"uscc": ["91230102MA00000001"], "other": [1]})],  # no date column
        [pd.DataFrame({"uscc": ["91230102MA00000001"] * 2, "registered_date": ["x", "2026-13-45"]})],
        [pd.DataFrame({"uscc": [None, np.nan], "registered_date": [pd.NaT, None]})],
        [
            pd.DataFrame({"uscc": ["91230102MA00000001"], "registered_date": [pd.Timestamp("2020-01-02")]}),
            pd.DataFrame({"uscc": ["91230102MA00000002"], "registered_date": [np.nan]}),  # float NaN
        ],
        [pd.DataFrame({"uscc": ["91230102MA00000001"], "registered_date": [20200102]})],  # ints
        [
            pd.DataFrame(
                {
                    "uscc": ["91230102MA00000001"],
                    "registered_date": pd.to_datetime(["2020-01-02"]).tz_localize("Asia/Shanghai"),
                }
            )
        ],
        [pd.DataFrame({"uscc": ["91230102MA00000001"], "registered_date": [dt.date(2020, 1, 2)]})],
    ],
    ids=[
        "none", "empty", "no-rows", "no-date-column", "unparseable", "all-null",
        "datetime-then-float", "integers", "tz-aware", "python-dates",
    ],
)  # fmt: skip
def test_registered_date_lookup_never_raises(registers):
    got = registered_dates(USCCS, registers)
    assert got.dtype == "datetime64[s]" and list(got.index) == list(USCCS.index)
    assert got.iloc[2:].isna().all()  # no USCC, or none registered: unknown
    known = got.dropna()
    assert (known == pd.Timestamp("2020-01-02")).all()


def test_the_later_register_wins():
    got = registered_dates(
        USCCS,
        [
            pd.DataFrame({"uscc": ["91230102MA00000001"], "registered_date": ["2019-05-05"]}),
            pd.DataFrame({"uscc": ["91230102MA00000001"], "registered_date": ["2020-01-02"]}),
        ],
    )
    assert got.iloc[0] == pd.Timestamp("2020-01-02") and got.iloc[1:].isna().all()


def _all_invalid_night(cat: Catalogue, rows: int = 50) -> pd.DataFrame:
    """Every feed of every provider delivered tonight with every row quarantined."""
    return pd.DataFrame(
        [
            {
                "path": f"{p['id']}/20260630_{feed}.csv",
                "provider": p["id"],
                "feed": feed,
                "delivered_on": pd.Timestamp("2026-06-30"),
                "status": "stored",
                "received": rows,
                "accepted": 0,
                "quarantined": rows,
                "excluded": 0,
                "simplified": 0,
                "message": None,
            }
            for p in cat.providers
            for feed in p["feeds"]
        ]
    )


def test_every_feed_with_all_rows_invalid_is_decided_by_the_share_gate():
    cat = Catalogue.load()
    files = _all_invalid_night(cat)
    gates = decide_gates(
        files, pd.DataFrame(), StagedVerdicts(*[pd.DataFrame()] * 3), cat, "2026-06-30"
    )
    share = {g.scope: g for g in gates if g.gate == "quarantine_share"}
    assert set(share) == set(files["path"]) and len(files) >= 8
    assert all(g.hard and not g.passed for g in share.values())
    assert all(g.passed for g in gates if g.gate == "reconciliation")


@pytest.mark.parametrize(
    "damage",
    [
        {"received": np.nan, "accepted": None, "quarantined": "x"},  # counts of the wrong type
        {"message": 3.5},  # a note that is not text
    ],
)
def test_counts_and_notes_of_the_wrong_type_are_decided_not_raised(damage):
    cat = Catalogue.load()
    files = _all_invalid_night(cat).assign(**damage)
    history = pd.DataFrame({"provider": ["samr"], "feed": ["register"], "status": ["stored"]})
    gates = decide_gates(files, history, StagedVerdicts(*[pd.DataFrame()] * 3), cat, "2026-06-30")
    assert {"reconciliation", "quarantine_share", "row_count", "schema"} <= {g.gate for g in gates}


def test_an_empty_night_is_decided_by_the_feed_gates():
    cat = Catalogue.load()
    gates = decide_gates(
        pd.DataFrame(), pd.DataFrame(), StagedVerdicts(*[pd.DataFrame()] * 3), cat, "2026-07-31"
    )
    assert gates and all(g.gate == "feed_present" for g in gates)
    assert any(not g.passed for g in gates)


def test_a_waiver_for_a_gate_that_passed_stops_the_night():
    from scoring.quality.validate import GateResult
    from scoring.quality.waivers import apply_waivers, parse_waiver

    w = parse_waiver("feed_present:court", "Li Ming", "court system maintenance")
    gates = [GateResult("feed_present", "court/dishonest_debtor", True, True)]
    failing, record = apply_waivers(gates, (w,))
    assert record[0]["covered"] == []
    assert [(g.gate, g.scope, g.passed) for g in failing] == [
        ("waiver", "feed_present:court", False)
    ]
    assert "covers no failed gate" in failing[0].message


def _staged(csv: str, stage, name: str) -> pd.DataFrame:
    from scoring.intake import ingest

    return stage(ingest.read_bytes(csv.encode("utf-8"), name, "ndrc"), pd.Timestamp("2026-06-30"))


def _validate_staged(rec, chg, stored_ent):
    from scoring.quality.gates import validate_staged
    from scoring.quality.validate import gx_context

    empty = pd.DataFrame()
    cat = Catalogue.load()
    return validate_staged(
        gx_context(None), rec, empty, chg, stored_ent, empty, empty, cat, "2026-06-30", "r1",
        with_docs=False,
    )  # fmt: skip


def test_changes_with_no_record_stored_or_staged_are_quarantined_not_raised():
    from scoring.intake.staging_changes import stage_changes

    chg = _staged(
        "操作类型,原文书编号,统一社会信用代码,生效日期\n撤销,D9,91330100799655058B,2026-06-01\n",
        stage_changes,
        "20260630_change.csv",
    )
    v = _validate_staged(pd.DataFrame(), chg, pd.DataFrame())
    assert len(chg) == 1 and v.reasons["records"].empty
    assert list(v.reasons["changes"]) == ["unknown_record"]


@pytest.mark.parametrize(
    "stored_ent",
    [
        pd.DataFrame(),
        pd.DataFrame(
            {
                "uscc": pd.Series([], dtype="string"),
                "registered_date": pd.Series([], dtype="datetime64[s]"),
            }
        ),
    ],
    ids=["nothing", "no-rows"],
)
def test_records_with_no_registration_at_all_are_decided_by_the_suite(stored_ent):
    from scoring.intake.staging import stage_records

    cat = Catalogue.load()
    rec = _staged(
        "信息项编码,主体名称,统一社会信用代码,文书编号,认定日期\n"
        "PENALTY_GENERAL,某公司,91330100799655058B,D1,2026-01-10\n",
        lambda raw, day: stage_records(raw, cat, day),
        "20260630_record.csv",
    )
    v = _validate_staged(rec, pd.DataFrame(), stored_ent)
    assert len(v.reasons["records"]) == 1 and v.records["registered_date"].isna().all()
    assert "records" in v.validations
