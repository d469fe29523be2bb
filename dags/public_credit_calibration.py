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

from airflow.sdk import DAG, Asset, task

from scoring.common.alerts import on_failure

PUBLISHED = Asset(name="public_credit_published", uri="credit://public-credit/published")

with DAG(
    dag_id="public_credit_calibration",
    description="Monthly candidate policy from inspection outcomes, with a model card",
    schedule=[PUBLISHED],
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=8))),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=dt.timedelta(hours=4),
    on_failure_callback=on_failure,
    default_args={
        "owner": "public-credit-agency",
        "retries": 1,
        "retry_delay": dt.timedelta(minutes=10),
        "execution_timeout": dt.timedelta(hours=3),
        "on_failure_callback": on_failure,
    },
    tags=["public-credit", "calibration"],
    doc_md=__doc__,
) as dag:

    @task.short_circuit(task_id="due", retries=1)
    def due(dag_run=None) -> bool:
        from scoring.history.store import Store
        from scoring.publication.nights import latest_published, opens_its_month

        if dag_run.run_type == "manual":
            return True
        store = Store.open()
        with store.engine.connect() as conn:
            run = latest_published(conn)
            ok = run is not None and opens_its_month(conn, run)
        print(
            f"calibrating after {run['run_id']}, the first published night of {run['as_of']:%Y-%m}"
            if ok
            else "nothing published yet: nothing to calibrate"
            if run is None
            else f"{run['run_id']} is not the first published night of {run['as_of']:%Y-%m}: calibrated already"
        )
        return ok

    @task(task_id="calibrate")
    def calibrate_task() -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from scoring.calibration.calibrate import calibrate
        from scoring.common.errors import PipelineError
        from scoring.history.store import Store

        try:
            out = calibrate(Store.open())
        except (
            PipelineError,
            ValueError,
        ) as exc:  # no records / too few inspections: retrying can't help
            raise AirflowFailException(str(exc)) from exc
        return {k: out[k] for k in ("candidate_id", "auc", "ks", "model_card", "training_set")} | {
            "baseline_auc": out["baseline"]["auc"],
            "auc_difference": out["comparison"]["auc_difference"],
            "auc_difference_ci95": out["comparison"]["ci95"],
            "weighted": out["comparison"]["weighted"],
            "kept_current_policy": out["learned"]["kept_current_policy"],
        }

    due() >> calibrate_task()
