"""Calibration: sign constraints, no leakage, deterministic candidates, promotion needs a person."""
import json

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from scoring.calibration import SignConstrainedLogisticRegression, point_in_time_features
from scoring.catalogue import Catalogue
from scoring.evaluate import Policy


def test_signs_are_respected_and_sklearn_conventions_hold():
    rng = np.random.default_rng(0)
    X = rng.random((400, 3))
    y = (X[:, 0] - X[:, 1] + rng.normal(0, 0.3, 400) > 0).astype(int)
    m = SignConstrainedLogisticRegression(signs=[1, 1, -1], random_state=0)
    assert m.fit(X, y) is m
    assert m.coef_[0] > 0 and m.coef_[1] >= 0 and m.coef_[2] <= 0  # the true -1 on column 1 is clipped to 0
    assert m.get_params()["signs"] == [1, 1, -1] and not hasattr(SignConstrainedLogisticRegression(), "coef_")


def _inspections():
    return pd.DataFrame({"uscc": ["U1"], "item_code": ["INSPECTION_FAIL"], "decision_date": [pd.Timestamp("2026-05-01")]})


def _records(extra=()):
    rows = [("K1|U1", "U1", "PENALTY_GENERAL", "2026-03-01", "2027-03-01")] + list(extra)
    df = pd.DataFrame(rows, columns=["record_key", "uscc", "item_code", "decision_date", "publicity_end_date"])
    df["decision_date"] = pd.to_datetime(df["decision_date"])
    df["publicity_end_date"] = pd.to_datetime(df["publicity_end_date"])
    df["valid_to_date"] = pd.NaT
    df["known_from"] = pd.Timestamp("2026-06-30")
    return df


def test_no_leakage_from_records_dated_after_the_inspection():
    cat, pol = Catalogue.load(), Policy.in_force("2026-06-30")
    base, features = point_in_time_features(_inspections(), _records(), None, cat, pol)
    # A severe penalty decided on the inspection day (the outcome itself, say) and one after it.
    leaky = _records([("K2|U1", "U1", "PENALTY_SEVERE", "2026-05-01", "2028-05-01"),
                      ("K3|U1", "U1", "TAX_ARREARS", "2026-05-20", "2027-05-20")])
    after, _ = point_in_time_features(_inspections(), leaky, None, cat, pol)
    pd.testing.assert_frame_equal(base, after)
    assert base["PENALTY_GENERAL"].iloc[0] > 0 and base["label"].iloc[0] == 1


def test_calibrate_is_deterministic_and_promotion_needs_approver_and_reason(sqlite_run):
    home = str(sqlite_run["home"])
    a = run_cli("calibrate", "--home", home, "--json", env={"CREDIT_DB_URL": ""})
    b = run_cli("calibrate", "--home", home, "--json", env={"CREDIT_DB_URL": ""})
    assert a.returncode == 0, a.stderr[-2000:]
    ja, jb = json.loads(a.stdout), json.loads(b.stdout)
    assert ja["candidate_id"] == jb["candidate_id"] and ja["candidate_sha256"] == jb["candidate_sha256"]
    for key in ("auc", "ks", "hit_rate_by_tier"):
        assert key in ja and key in ja["baseline"]
    refused = run_cli("policy", "promote", ja["candidate_id"], "--effective-from", "2026-08-01", "--home", home,
                      env={"CREDIT_DB_URL": ""})
    assert refused.returncode != 0 and "approver and a reason" in refused.stderr
    ok = run_cli("policy", "promote", ja["candidate_id"], "--effective-from", "2026-08-01", "--approved-by", "李审核",
                 "--reason", "月度校准通过评审", "--home", home, "--json", env={"CREDIT_DB_URL": ""})
    assert ok.returncode == 0, ok.stderr
    pol = Policy.in_force("2026-08-02", promoted=sqlite_run["home"] / "policy" / "history.json")
    assert pol.sha256 == ja["candidate_sha256"]
    assert Policy.in_force("2026-07-31", promoted=sqlite_run["home"] / "policy" / "history.json").sha256 != pol.sha256
