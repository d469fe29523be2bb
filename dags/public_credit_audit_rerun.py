"""
### 审计复算 Audit rerun of a past evaluation

Triggered by hand (the trigger form asks for `run_id` and `mode`). Recomputes a stored run:

- **as-known-then**: from exactly the record batches, catalogue and policy the run used, and
  reports `identical: true` with the same `output_sha256`, or which rows and inputs differ;
- **as-known-now**: the same as-of date with everything known today, with a diff of the
  entities whose score or tier changed and the corrections, objections, repairs and late
  deliveries that caused it.

Writes only under `CREDIT_HOME/audits/`; never publishes, never alters stored runs.
"""
from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Param, task

with DAG(
    dag_id="public_credit_audit_rerun",
    description="Audit rerun of a past public credit evaluation (as known then / as known now)",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=8))),
    catchup=False,
    max_active_runs=4,
    default_args={"owner": "public-credit-agency", "retries": 1, "retry_delay": dt.timedelta(minutes=2)},
    tags=["public-credit", "audit"],
    doc_md=__doc__,
    params={
        "run_id": Param("nightly-20260630", type="string", title="Run id", minLength=1,
                        description="The evaluation run to recompute, e.g. nightly-20260630"),
        "mode": Param("as-known-then", type="string", enum=["as-known-then", "as-known-now"], title="Mode",
                      description="as-known-then: reproduce byte for byte; as-known-now: diff with today's knowledge"),
        "db_url": Param("", type="string", title="Database URL", description="Empty: CREDIT_DB_URL"),
        "home": Param("", type="string", title="Data folder", description="Empty: CREDIT_HOME"),
    },
) as dag:

    @task(task_id="rerun")
    def rerun_task(params=None) -> dict:
        from pathlib import Path

        from scoring.audit.rerun import rerun

        out = rerun(params["run_id"], params["mode"], db_url=params.get("db_url") or None,
                    home=Path(params["home"]) if params.get("home") else None)
        return {k: out[k] for k in ("run_id", "mode", "identical", "output_sha256", "report")} | {
            "changed_entities": len(out["changed_entities"])}

    rerun_task()
