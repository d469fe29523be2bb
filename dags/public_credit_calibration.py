"""
### 政策校准 Monthly calibration of the policy from inspection outcomes

Scheduled on the asset `public_credit_published`: runs after the first night of each month that
agencies can see (later nights of the month skip with a message; nothing runs before anything is
published). Builds the IPW training set (the same path as `credit world-experiment`): randomly drawn
inspections only, each weighted by 1 / its inclusion probability (from its stored sampling plan,
or the draw's tier reconstructed with the policy in force), complaint-driven ones left out; learns
half-lives, points and policy signals (sign-constrained, the current policy kept unless the
outcomes beat it) on the earlier ones; compares the candidate with the current policy on later
inspections weighted to the population (AUC difference with a bootstrap interval) and writes a
model card for the operators. The candidate is stored by content hash; it never promotes itself
(`credit policy promote CANDIDATE_ID --approved-by NAME --reason TEXT --effective-from DATE`).
"""

from __future__ import annotations

import datetime as dt

from _shared import PUBLISHED, START, RunAlert, default_args, fail_fast
from airflow.sdk import DAG, task

with DAG(
    dag_id="public_credit_calibration",
    description="Monthly candidate policy from inspection outcomes, with a model card",
    schedule=[PUBLISHED],
    start_date=START,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=dt.timedelta(hours=4),
    on_failure_callback=[RunAlert()],
    default_args=default_args(1, dt.timedelta(minutes=10), dt.timedelta(hours=3)),
    tags=["public-credit", "calibration"],
    doc_md=__doc__,
) as dag:

    @task.short_circuit(task_id="due", retries=1)
    def due(dag_run=None) -> bool:
        from scoring.calibration.monthly import calibration_due

        ok, why = calibration_due(manual=dag_run.run_type == "manual")
        print(why)
        return ok

    @task(task_id="calibrate")
    @fail_fast  # no records, too few inspections: retrying can't help
    def calibrate_task() -> dict:
        from scoring.calibration.monthly import calibration_summary
        from scoring.history.store import Store

        return calibration_summary(Store.open())

    due() >> calibrate_task()
