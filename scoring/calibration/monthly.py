"""What the monthly calibration DAG runs: whether a publication opens a month (the one that calls
for a calibration), and the calibration's summary for the task log."""

from __future__ import annotations

from scoring.calibration.calibrate import calibrate
from scoring.history.store import Store
from scoring.publication.nights import latest_published, opens_its_month


def calibration_due(manual: bool = False, open_store=Store.open) -> tuple[bool, str]:
    """(due, why): an operator's run always is (the store not even opened); a scheduled one only
    after the first published night of a month."""
    if manual:
        return True, "triggered by hand"
    store = open_store()
    with store.engine.connect() as conn:
        run = latest_published(conn)
        ok = run is not None and opens_its_month(conn, run)
    if run is None:
        return False, "nothing published yet: nothing to calibrate"
    month = f"{run['as_of']:%Y-%m}"
    if ok:
        return True, f"calibrating after {run['run_id']}, the first published night of {month}"
    return False, f"{run['run_id']} is not the first published night of {month}: calibrated already"


def calibration_summary(store: Store) -> dict:
    """Calibrate, and say what the candidate is and how it compares with the policy in force."""
    out = calibrate(store)
    return {k: out[k] for k in ("candidate_id", "auc", "ks", "model_card", "training_set")} | {
        "baseline_auc": out["baseline"]["auc"],
        "auc_difference": out["comparison"]["auc_difference"],
        "auc_difference_ci95": out["comparison"]["ci95"],
        "weighted": out["comparison"]["weighted"],
        "kept_current_policy": out["learned"]["kept_current_policy"],
    }
