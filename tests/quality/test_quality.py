"""The generator's injected defects are caught with precision and recall of 100% per kind."""

import json

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from scoring.common.catalogue import Catalogue
from scoring.quality.validate import gx_context, validate_table

EXPECTED_REASON = {
    "bad_check_digit": {"invalid_uscc", "invalid_id_number"},
    "unknown_item": {"unknown_item"},
    "future_date": {"future_date"},
    "duplicate": {"duplicate"},
    "missing_field": {"missing_field"},
    "orphan_change": {"unknown_record"},
}


@pytest.fixture(scope="module")
def verdicts(sqlite_run, province):
    eng = sa.create_engine(sqlite_run["url"])
    q = pd.read_sql("select path, line_no, reasons from quarantine", eng)
    files = pd.read_sql("select * from landed_files", eng)
    truth = pd.read_csv(province / "ground_truth" / "defects.csv")
    return q, files, truth


def test_simplified_procedure_penalties_are_excluded_not_quarantined(verdicts, sqlite_run):
    """Art. 18: not public credit information. Exactly the labelled rows are excluded (with the
    reason), none of them is quarantined, and the quarantine share does not count them."""
    from scoring.history.store import Store

    q, files, truth = verdicts
    store = Store.open(sqlite_run["url"], sqlite_run["home"])
    with store.engine.connect() as conn:
        batches = store.visible_batches(conn, "exclusions", "2100-01-01")
        gates = pd.read_sql(
            "select scope, observed from gate_results where gate = 'quarantine_share'", conn
        )
    exc = store.read_batches(batches)
    labelled = truth[truth["defect"] == "simplified_procedure"]
    assert len(labelled)
    assert set(zip(exc["source_file"], exc["line_no"])) == set(
        zip(labelled["file"], labelled["line"])
    )
    assert set(exc["reason"]) == {"simplified procedure (Art. 18): not public credit information"}
    assert not set(zip(q["path"], q["line_no"])) & set(zip(labelled["file"], labelled["line"]))
    f = files.set_index("path")
    for path, n in exc.groupby("source_file").size().items():
        share = float(gates.set_index("scope").loc[path, "observed"])
        expect = f.loc[path, "quarantined"] / (f.loc[path, "received"] - n)
        assert share == pytest.approx(expect, abs=1e-4)


@pytest.mark.parametrize("defect", sorted(EXPECTED_REASON))
def test_precision_and_recall_are_100_percent_per_defect_kind(verdicts, defect):
    q, _, truth = verdicts
    reasons = EXPECTED_REASON[defect]
    flagged = q[q["reasons"].str.split(",").map(lambda r: bool(reasons & set(r)))]
    flagged_keys = set(zip(flagged["path"], flagged["line_no"]))
    labelled = truth[truth["defect"] == defect]
    labelled_keys = set(zip(labelled["file"], labelled["line"]))
    assert labelled_keys, f"the province has no {defect} defects to test with"
    tp = len(flagged_keys & labelled_keys)
    assert tp / len(flagged_keys) == 1.0, sorted(flagged_keys - labelled_keys)[:5]  # precision
    assert tp / len(labelled_keys) == 1.0, sorted(labelled_keys - flagged_keys)[:5]  # recall


def test_no_clean_row_is_quarantined(verdicts):
    q, _, truth = verdicts
    clean_flagged = set(zip(q["path"], q["line_no"])) - set(zip(truth["file"], truth["line"]))
    assert not clean_flagged


def test_every_received_row_is_accounted_for(verdicts, sqlite_run):
    """received = accepted + quarantined + excluded (simplified procedure), file by file."""
    from scoring.history.store import Store

    _, files, _ = verdicts
    store = Store.open(sqlite_run["url"], sqlite_run["home"])
    with store.engine.connect() as conn:
        exc = store.read_batches(store.visible_batches(conn, "exclusions", "2100-01-01"))
    excluded = exc["source_file"].value_counts() if len(exc) else pd.Series(dtype=int)
    ok = files[files["status"] != "rejected"]
    assert len(ok) > 0 and excluded.sum() > 0
    assert (
        ok["received"] == ok["accepted"] + ok["quarantined"] + ok["path"].map(excluded).fillna(0)
    ).all()


def test_quarantine_rows_keep_file_line_and_raw_values(sqlite_run):
    eng = sa.create_engine(sqlite_run["url"])
    row = pd.read_sql("select * from quarantine limit 1", eng).iloc[0]
    raw = json.loads(row["raw_json"])
    assert row["line_no"] >= 2 and row["path"] and raw


# --------------------------------------------------------------------------- custom expectations one by one


def _stg(**cols):
    n = len(next(iter(cols.values())))
    base = {
        "source_file": ["f.csv"] * n,
        "line_no": list(range(2, n + 2)),
        "provider": ["samr"] * n,
        "layout": ["sgs_penalty"] * n,
        "delivered_on": [pd.Timestamp("2026-06-30")] * n,
        "item_code": ["PENALTY_GENERAL"] * n,
        "subject_type": ["legal"] * n,
        "subject_name": ["某公司"] * n,
        "uscc": ["91330100799655058B"] * n,
        "id_number": [None] * n,
        "legal_rep_name": [None] * n,
        "legal_rep_id_number": [None] * n,
        "doc_number": [f"D{i}" for i in range(n)],
        "penalty_category": ["罚款"] * n,
        "amount_yuan": [50000.0] * n,
        "decision_date": [pd.Timestamp("2026-05-01")] * n,
        "publicity_end_date": [pd.Timestamp("2026-11-01")] * n,
        "valid_to_date": [pd.NaT] * n,
        "authority_name": ["某局"] * n,
        "inspection_result": [None] * n,
        "bad_values": [None] * n,
        "raw": ["{}"] * n,
        "registered_date": [pd.Timestamp("2020-01-01")] * n,
        "seen_before": [False] * n,
        "grade": [None] * n,
        "removal_date": [pd.NaT] * n,
    }
    base.update(cols)
    df = pd.DataFrame(base)
    for c in (
        "decision_date",
        "publicity_end_date",
        "valid_to_date",
        "registered_date",
        "delivered_on",
        "removal_date",
    ):
        df[c] = pd.to_datetime(df[c]).astype("datetime64[s]")
    for c in (
        "uscc",
        "id_number",
        "doc_number",
        "item_code",
        "subject_type",
        "penalty_category",
        "bad_values",
        "grade",
    ):
        df[c] = df[c].astype("string")
    df["record_key"] = (df["doc_number"].fillna("") + "|" + df["uscc"].fillna("")).astype("string")
    return df


@pytest.fixture(scope="module")
def ctx():
    return gx_context(None), Catalogue.load()


def _reasons(ctx, df):
    gx, cat = ctx
    return list(
        validate_table(gx, "stg_record", df, cat, "2026-06-30", "t", with_docs=False).reasons
    )


def test_publicity_bounds_follow_the_rules_in_force_on_the_decision_date(ctx):
    # Severe: 6-36 months under the 2019 notice; NDRC Order 58 (2023-05-01): every penalty 3-36.
    df = _stg(
        item_code=["PENALTY_SEVERE"] * 3,
        penalty_category=["吊销许可证件"] * 3,
        decision_date=["2023-04-15", "2023-05-15", "2023-05-15"],
        publicity_end_date=["2023-08-15", "2023-08-15", "2023-07-15"],
    )
    df["decision_date"] = pd.to_datetime(df["decision_date"]).astype("datetime64[s]")
    r = _reasons(ctx, df)
    assert ["publicity_out_of_range" in x for x in r] == [True, False, True]


def test_dates_duplicates_and_catalogue(ctx):
    df = _stg(
        doc_number=["A", "A", "B", "C", "D"],
        decision_date=["2026-05-01", "2026-05-01", "2026-07-15", "2019-01-01", "2026-05-01"],
        publicity_end_date=["2026-11-01", "2026-11-01", "2027-01-15", "2019-06-01", "2026-04-01"],
        item_code=["PENALTY_GENERAL"] * 4 + ["NOT_IN_CATALOGUE"],
    )
    df["decision_date"] = pd.to_datetime(df["decision_date"]).astype("datetime64[s]")
    df["record_key"] = (df["doc_number"] + "|" + df["uscc"]).astype("string")
    r = _reasons(ctx, df)
    assert r[0] == ""
    assert "duplicate" in r[1]
    assert "future_date" in r[2]
    assert "before_registration" in r[3]
    assert "unknown_item" in r[4] and "publicity_before_decision" in r[4]


def test_seen_before_is_a_duplicate(ctx):
    df = _stg(seen_before=[True, False])
    assert ["duplicate" in x for x in _reasons(ctx, df)] == [True, False]


def test_mandatory_fields_by_item_and_subject_type(ctx):
    df = _stg(
        item_code=["TAX_ARREARS", "TAX_ARREARS", "PENALTY_GENERAL"],
        amount_yuan=[np.nan, 10.0, 50000.0],
        uscc=["91330100799655058B", "91330100799655058B", None],
    )
    r = _reasons(ctx, df)
    assert ["missing_field" in x for x in r] == [True, False, True]


def test_a_table_in_chunks_renders_its_data_docs_once(tmp_path, ctx):
    """A chunked table's Data Docs built once at the end (not once per chunk), with the same
    verdicts as one run without docs. GX keys a stored result by suite, run and batch, which the
    chunks share: the table's page is its last chunk's run, as it was when each chunk rebuilt."""
    from scoring.quality.chunks import validate_in_chunks

    _, cat = ctx
    df = _stg(
        doc_number=["A", "A", "B", "C", "D"],
        decision_date=["2026-05-01", "2026-05-01", "2026-07-15", "2019-01-01", "2026-05-01"],
        publicity_end_date=["2026-11-01", "2026-11-01", "2027-01-15", "2019-06-01", "2026-04-01"],
    )
    df["decision_date"] = pd.to_datetime(df["decision_date"]).astype("datetime64[s]")
    df["record_key"] = (df["doc_number"] + "|" + df["uscc"]).astype("string")
    gx = gx_context(tmp_path / "gx")
    v = validate_in_chunks(gx, "stg_record", df, cat, "2026-06-30", "night", True, chunk_rows=2)
    assert list(v.reasons) == _reasons(ctx, df)
    assert v.docs_index and v.docs_index.endswith("index.html")
    site = tmp_path / "gx" / "gx" / "uncommitted" / "data_docs" / "local_site"
    pages = sorted((site / "validations").rglob("*.html"))
    assert [p.name for p in pages] == ["pipeline-stg_record.html"]
    assert "stg_record" in (site / "index.html").read_text(encoding="utf-8")
