"""
### 审计复算 Audit rerun of a past evaluation

Triggered by hand. The form asks for the run to recompute (`run_id`, e.g. `nightly-20260630`;
a re-run attempt looks like `nightly-20260630-r2`; `credit status` lists them) and the mode:

- **as-known-then**: from exactly the record batches, catalogue and policy the run used, and
  reports `identical: true` with the same `output_sha256`, or which rows and inputs differ;
- **as-known-now**: the same as-of date with everything known today, with a diff of the
  entities whose score or tier changed and the corrections, objections, repairs and late
  deliveries that caused it.

An unknown run id fails at once with the stored runs listed. Writes only under
`CREDIT_HOME/audits/`; never publishes, never alters stored runs.
"""

from __future__ import annotations

import datetime as dt

from _shared import START, RunAlert, default_args, fail_fast
from airflow.sdk import DAG, Param, task

from scoring.publication.nights import RUN_ID_PATTERN

with DAG(
    dag_id="public_credit_audit_rerun",
    description="Audit rerun of a past public credit evaluation (as known then / as known now)",
    schedule=None,
    start_date=START,
    catchup=False,
    max_active_runs=4,
    dagrun_timeout=dt.timedelta(hours=3),
    on_failure_callback=[RunAlert()],
    default_args=default_args(1, dt.timedelta(minutes=2), dt.timedelta(hours=2)),
    tags=["public-credit", "audit"],
    doc_md=__doc__,
    params={
        "run_id": Param(
            type="string",
            pattern=RUN_ID_PATTERN,
            title="复算批次",
            description="Run id of the stored evaluation to recompute, e.g. nightly-20260630 "
            "(attempts: nightly-20260630-r2). Required; `credit status` lists them.",
        ),
        "mode": Param(
            "as-known-then",
            type="string",
            enum=["as-known-then", "as-known-now"],
            title="复算方式",
            description="as-known-then: reproduce byte for byte; as-known-now: diff with today's knowledge",
        ),
        "db_url": Param(
            None,
            type=["null", "string"],
            title="结果数据库",
            description="Credit store database URL. Empty: CREDIT_DB_URL.",
        ),
        "home": Param(
            None,
            type=["null", "string"],
            title="数据目录",
            description="Data folder. Empty: CREDIT_HOME.",
        ),
    },
) as dag:

    @task(task_id="rerun")
    @fail_fast  # an unknown run or missing inputs: retrying can't help
    def rerun_task(params=None) -> dict:
        from pathlib import Path

        from scoring.audit.rerun import rerun_summary

        home = Path(params["home"]) if params.get("home") else None
        return rerun_summary(
            params["run_id"], params["mode"], db_url=params.get("db_url") or None, home=home
        )

    rerun_task()
