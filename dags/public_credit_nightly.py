"""
### 公共信用综合评价 nightly run (public credit composite evaluation)

Every night at 01:00 Asia/Shanghai the agency's pipeline evaluates every market entity as of the
previous day: **ingest** the providers' deliveries → **gate** them with Great Expectations
(bad rows quarantined, hard gates stop the run) → **score** and tier A/B/C/D with reasons →
**report** → **publish** to each supervisory agency's outbox (last: nothing changes what agencies
see until every check and the report have passed).

The steps are defined once in `scoring.pipeline` (the CLI `credit run` calls the same ones).
Tasks pass only a small JSON run context through XCom. Params (trigger form):
`as_of` (default: the day before the logical date, Asia/Shanghai), `landing`, `db_url`, `home`
(defaults: CREDIT_LANDING, CREDIT_DB_URL, CREDIT_HOME on the worker), and an operator waiver for
this run only: `waive` (`gate:scope`, e.g. `feed_present:court`), `approver`, `reason`.

Catch-up: if the scheduler was down, the missed nights run one at a time in date order
(`catchup=True`, `max_active_runs=1`); a night keyed on its logical date reads only the files that
had landed by its scheduled time, so a late file is known from the night it arrived.
`airflow backfill create --dag-id public_credit_nightly --from-date ... --to-date ...` works the same way.
"""
from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Param, task

from scoring.steps import ALWAYS_RUN, STEP_NAMES

DEFAULT_ARGS = {"owner": "public-credit-agency", "retries": 2, "retry_delay": dt.timedelta(minutes=5)}


def _run(step: str, ctx_json: str) -> dict:
    from airflow.sdk.exceptions import AirflowFailException

    from scoring.pipeline import GateFailed, RunContext, run_step

    ctx = RunContext.from_json(ctx_json)
    try:
        return run_step(step, ctx)
    except GateFailed as exc:  # data will not fix itself in five minutes: fail without retrying
        raise AirflowFailException(str(exc)) from exc


with DAG(
    dag_id="public_credit_nightly",
    description="Nightly public credit composite evaluation: ingest, gate, score, publish, report",
    schedule="0 1 * * *",
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=8))),
    catchup=True,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["public-credit", "nightly", "scoring"],
    doc_md=__doc__,
    params={
        "as_of": Param("", type="string", title="As-of date (YYYY-MM-DD)",
                       description="Empty: the day before the logical date in Asia/Shanghai"),
        "landing": Param("", type="string", title="Landing folder", description="Empty: CREDIT_LANDING"),
        "db_url": Param("", type="string", title="Database URL", description="Empty: CREDIT_DB_URL"),
        "home": Param("", type="string", title="Data folder", description="Empty: CREDIT_HOME"),
        "waive": Param("", type="string", title="Waive one failed hard gate (gate:scope)",
                       description="For this run only, e.g. feed_present:court. Needs approver and reason."),
        "approver": Param("", type="string", title="Waiver approved by"),
        "reason": Param("", type="string", title="Waiver reason"),
    },
) as dag:

    @task(task_id="prepare", retries=0)
    def prepare(params=None, logical_date=None) -> str:
        """Resolve the run context once, so every step of this run agrees on it."""
        from scoring.pipeline import context_from_env

        from scoring.intake.arrivals import nightly_arrival_cut
        from scoring.quality.waivers import parse_waiver

        overrides = {k: params[k] for k in ("landing", "db_url", "home") if params.get(k)}
        if params.get("as_of"):
            as_of = params["as_of"]
        else:  # keyed on the logical date: read only what had landed when this night was due
            as_of = (logical_date.astimezone(dt.timezone(dt.timedelta(hours=8))).date()
                     - dt.timedelta(days=1)).isoformat()
            overrides["arrival_cut"] = nightly_arrival_cut(dt.date.fromisoformat(as_of))
        if params.get("waive"):
            overrides["waivers"] = (parse_waiver(params["waive"], params.get("approver"), params.get("reason")).as_dict(),)
        return context_from_env(as_of, **overrides).to_json()

    def make_step(name: str):
        trigger = "all_done" if name in ALWAYS_RUN else "all_success"

        @task(task_id=name, trigger_rule=trigger)
        def step(ctx_json: str) -> dict:
            return _run(name, ctx_json)

        return step

    ctx = prepare()
    previous, done = ctx, []
    for step_name in STEP_NAMES:
        current = make_step(step_name)(ctx)
        previous >> current
        if step_name not in ALWAYS_RUN:
            done >> current  # needs every earlier step to have succeeded (the report runs regardless)
        previous = current
        done.append(current)
