"""
### 双随机、一公开 Double-random inspection plans by tier

Scheduled on the asset `public_credit_published` (emitted by the nightly when a night is
published): every publication may be the seed a committed plan waits for, so each run first
**draws** the committed plans whose seed now exists: the seed of a plan is the
output hash of the first nightly publication after the plan was committed, so nobody — operator or
system — knows a draw when committing it, and no form or command takes a seed. Each draw is
verified and published (一公开: `public/sampling/<agency>/<period>-<task>/plan.json` and `.csv`).

Triggered with **commit** on, it then commits a new plan for a department: ratios by tier inside
the bounds in force (config/agencies.yaml; refused with one line naming tier, bound and source),
within the department's capacity for the period counting its other plans, on the whole tier
(exclusions replaced by the next in the random order). One plan per department, period and task;
a re-draw needs an approver and a reason, and the abandoned plan stays on record and public.
With a capacity it also asks the ratio advisor.
"""

from __future__ import annotations

import datetime as dt

from _shared import PUBLISHED, START, RunAlert, default_args, fail_fast, sampling_form
from airflow.sdk import DAG, Param, task

# The form's choices come from the registry (config/agencies.yaml) the commit checks against.
AGENCIES, BOUNDS, SOURCE = sampling_form()


def _ratio(tier: str, default: float) -> Param:
    return Param(
        default,
        type="number",
        minimum=0,
        maximum=1,
        title=f"{tier} 级抽查比例 Ratio for tier {tier}",
        description=f"Bounds in force: {BOUNDS[tier]} ({SOURCE}); outside them the commit is refused. "
        "k = floor(ratio × whole tier + 1/2).",
    )


with DAG(
    dag_id="public_credit_sampling",
    description="双随机、一公开: commit plans, draw them with the next publication's hash, verify, publish",
    schedule=[PUBLISHED],  # never before anything is published; by hand to commit a plan
    start_date=START,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=dt.timedelta(hours=2),
    on_failure_callback=[RunAlert()],
    default_args=default_args(2, dt.timedelta(minutes=5), dt.timedelta(hours=1)),
    tags=["public-credit", "sampling", "double-random"],
    doc_md=__doc__,
    params={
        "commit": Param(
            False,
            type="boolean",
            title="提交新计划 Commit a new plan",
            description="Off: only draw the plans whose seed publication now exists",
        ),
        "agency": Param(
            "hlj-samr",
            type="string",
            enum=AGENCIES,
            title="部门 Department",
            description="the department (agency) whose plan this is; see `credit agencies`",
        ),
        "period": Param(
            None,
            type=["null", "string"],
            pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
            title="期间 Period",
            description="YYYY-MM; empty: the month after the latest publication",
        ),
        "task": Param(
            "routine",
            type="string",
            pattern=r"^[a-z0-9-]{1,30}$",
            title="抽查任务 Inspection task",
            description="the inspection task's short name (lower case, digits, dashes)",
        ),
        "ratio_A": _ratio("A", 0.03),
        "ratio_B": _ratio("B", 0.1),
        "ratio_C": _ratio("C", 0.4),
        "ratio_D": _ratio("D", 0.8),
        "approver": Param(
            None,
            type=["null", "string"],
            title="批准人 Approver (re-draw only)",
            description="a re-draw of a department's plan for the same period needs a named approver",
        ),
        "reason": Param(
            None,
            type=["null", "string"],
            title="理由 Reason (re-draw only)",
            description="why the department's plan for the period is re-drawn",
        ),
        "capacity": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="检查能力 Capacity (advisor)",
            description="empty: the department's capacity left for the period",
        ),
    },
) as dag:

    @task(task_id="draw_ready")
    @fail_fast  # a refused or unverifiable draw: retrying can't help
    def draw_ready() -> list[str]:
        from scoring.history.store import Store
        from scoring.sampling.scheduled import draw_and_verify

        return draw_and_verify(Store.open())

    @task(task_id="commit")
    @fail_fast
    def commit(params=None) -> str | None:
        from scoring.history.store import Store
        from scoring.sampling.scheduled import commit_from_form

        return commit_from_form(Store.open(), params) if params.get("commit") else None

    @task(task_id="advise")
    @fail_fast
    def advise_task(params=None) -> dict | None:
        from scoring.history.store import Store
        from scoring.sampling.scheduled import advise_from_form

        if not params.get("commit") and not params.get("capacity"):
            return None
        return advise_from_form(Store.open(), params)

    draw_ready() >> commit()
    advise_task()
