"""
### 政策校准 Monthly calibration of the policy from inspection outcomes

Builds the point-in-time training set from past inspections, learns half-lives and points
(sign-constrained model) on the earlier ones, compares the candidate with the current policy on
later inspections (AUC difference with a bootstrap interval) and writes a model card for the
operators. The candidate is stored by content hash; it never promotes itself
(`credit policy promote CANDIDATE_ID --approved-by NAME --reason TEXT --effective-from DATE`).
"""
from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, task

with DAG(
    dag_id="public_credit_calibration",
    description="Monthly candidate policy from inspection outcomes, with a model card",
    schedule="0 4 2 * *",
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=8))),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "public-credit-agency", "retries": 1, "retry_delay": dt.timedelta(minutes=10)},
    tags=["public-credit", "calibration"],
    doc_md=__doc__,
) as dag:

    @task(task_id="calibrate")
    def calibrate_task() -> dict:
        from scoring.calibration.learn import calibrate
        from scoring.history.store import Store

        out = calibrate(Store.open())
        return {k: out[k] for k in ("candidate_id", "auc", "ks", "model_card")} | {
            "baseline_auc": out["baseline"]["auc"], "auc_difference": out["comparison"]["auc_difference"],
            "auc_difference_ci95": out["comparison"]["ci95"]}

    calibrate_task()
