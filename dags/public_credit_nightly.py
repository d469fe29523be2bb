"""
### 公共信用综合评价 nightly run (public credit composite evaluation)

Every night at 01:00 Asia/Shanghai the agency's pipeline evaluates every market entity as of the
previous day: **ingest** the providers' deliveries → **gate** them with Great Expectations
(bad rows quarantined, hard gates stop the run) → **score** and tier A/B/C/D with reasons →
**report** → **publish** to each supervisory agency's outbox (last: nothing changes what agencies
see until every check and the report have passed); then **published** confirms that the night is
what agencies see and emits the asset `public_credit_published`, on which sampling and calibration
are scheduled.

Run states are honest: the final `published` task alone decides the DAG run's state, so a night
that did not publish ends **failed** even though the report (which runs whatever happened before
it) succeeded. Deterministic errors (a failed hard gate, nothing to publish, a bad parameter) fail
at once with no retry; transient ones (database, disk) retry with backoff. A re-run of a published
night is built beside it as a new attempt (`nightly-YYYYMMDD-r2`) and replaces it only when it
publishes; a failed re-run changes nothing agencies see.

The steps are defined once in `scoring.pipeline` (the CLI `credit run` calls the same ones).
Tasks pass only a small JSON run context through XCom. Trigger form: every field may stay empty
(`as_of`: the day before the logical date, or the trigger time when there is none, Asia/Shanghai;
`landing`, `db_url`, `home`: CREDIT_LANDING, CREDIT_DB_URL, CREDIT_HOME on the worker), and an
operator waiver for this run only: `waive` (`gate:scope`, e.g. `feed_present:court`), `approver`,
`reason`; `partitions` (1–1024): cut this night's evaluation into that many entity-hash partitions,
mapped over the Celery workers (empty: CREDIT_PARTITIONS, else by size; any count gives the same bytes).

Catch-up: if the scheduler was down, the missed nights run one at a time in date order
(`catchup=True`, `max_active_runs=1`); a night keyed on its logical date reads only the files that
had landed by its scheduled time, so a late file is known from the night it arrived. Catch-up goes
back to the go-live date, `CREDIT_GO_LIVE` (YYYY-MM-DD: the first night evaluated; its run is due
at 01:00 the next morning), never further. Without it there is no catch-up at all (only the latest
night runs), so a fresh install never runs every night since some old date by surprise.
`airflow backfill create --dag-id public_credit_nightly --from-date ... --to-date ...` works the same way.
`CREDIT_NIGHTLY_SCHEDULE` moves the night (a cron) or makes it trigger-only (`manual`).
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.sdk import DAG, Asset, Param, task

from scoring.common.alerts import on_failure
from scoring.steps import ALWAYS_RUN, PARTITIONED_STEP, STEP_NAMES, STEP_TIMEOUT_MINUTES

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
# What sampling and calibration wait for: a night that agencies can see.
PUBLISHED = Asset(name="public_credit_published", uri="credit://public-credit/published")
_CRON = os.environ.get("CREDIT_NIGHTLY_SCHEDULE", "0 1 * * *").strip()
SCHEDULE = None if _CRON.lower() in ("", "manual", "none") else _CRON


def _go_live(text: str) -> dt.date | None:
    """CREDIT_GO_LIVE: the first night the schedule evaluates (an as-of date); None when unset."""
    if not text.strip():
        return None
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"CREDIT_GO_LIVE={text!r}: expected the first night to evaluate as YYYY-MM-DD"
        ) from None


GO_LIVE = _go_live(os.environ.get("CREDIT_GO_LIVE", ""))
# The run of night D is due at 01:00 on D+1 (its logical date); without a go-live date there is
# nothing to catch up from (the start date then only bounds manual and test runs).
START = dt.datetime.combine(
    GO_LIVE + dt.timedelta(days=1) if GO_LIVE else dt.date(2026, 1, 1), dt.time(0), tzinfo=SHANGHAI
)
DEFAULT_ARGS = {
    "owner": "public-credit-agency",
    "retries": 2,  # transient failures only: deterministic ones raise AirflowFailException
    "retry_delay": dt.timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(minutes=10),
    "execution_timeout": dt.timedelta(minutes=60),
    "on_failure_callback": on_failure,
}


def _run(step: str, ctx_json: str) -> dict:
    from airflow.sdk.exceptions import AirflowFailException

    from scoring.common.errors import PipelineError
    from scoring.pipeline import RunContext, run_step

    ctx = RunContext.from_json(ctx_json)
    try:
        return run_step(step, ctx)
    except (PipelineError, ValueError) as exc:  # the same input fails the same way: don't retry
        raise AirflowFailException(str(exc)) from exc


def _call(fn_name: str, ctx_json: str, *args):
    """A partition task: the same functions ``credit run`` calls, deterministic errors not retried."""
    from airflow.sdk.exceptions import AirflowFailException

    from scoring import pipeline
    from scoring.common.errors import PipelineError

    ctx = pipeline.RunContext.from_json(ctx_json)
    try:
        return getattr(pipeline, fn_name)(ctx, *args)
    except (PipelineError, ValueError) as exc:
        raise AirflowFailException(str(exc)) from exc


def _optional(title: str, description: str, **schema) -> Param:
    return Param(None, type=["null", "string"], title=title, description=description, **schema)


with DAG(
    dag_id="public_credit_nightly",
    description="Nightly public credit composite evaluation: ingest, gate, score, report, publish",
    schedule=SCHEDULE,
    start_date=START,
    catchup=GO_LIVE is not None,
    max_active_runs=1,
    dagrun_timeout=dt.timedelta(hours=4),
    on_failure_callback=on_failure,
    default_args=DEFAULT_ARGS,
    tags=["public-credit", "nightly", "scoring"],
    doc_md=__doc__,
    params={
        "as_of": _optional(
            "评价基准日",
            "As-of date, YYYY-MM-DD. Empty: the day before the run's logical date "
            "(or, without one, its trigger time), Asia/Shanghai.",
            pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
        ),
        "landing": _optional(
            "报送文件目录", "Landing folder of the providers' deliveries. Empty: CREDIT_LANDING."
        ),
        "db_url": _optional("结果数据库", "Credit store database URL. Empty: CREDIT_DB_URL."),
        "home": _optional("数据目录", "Data folder (runs, outboxes, lake). Empty: CREDIT_HOME."),
        "waive": _optional(
            "豁免闸门 (gate:scope)",
            "Waive one failed hard gate for this run only, e.g. "
            "feed_present:court. Needs approver and reason.",
            pattern=r"^[a-z_]+:\S+$",
        ),
        "approver": _optional("豁免批准人", "Who approved the waiver (required with a waiver)."),
        "reason": _optional(
            "豁免理由", "Why the gate may be waived for this run (required with a waiver)."
        ),
        "partitions": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=1024,
            title="分区数",
            description="Entity-hash partitions of this night's evaluation, spread over the "
            "workers. Empty: CREDIT_PARTITIONS, else by size. Same results for any count.",
        ),
    },
) as dag:

    @task(task_id="prepare", retries=1, execution_timeout=dt.timedelta(minutes=10))
    def prepare() -> str:
        """Resolve the run context once (date, arrival cut, waivers, attempt), so every step agrees."""
        from airflow.sdk import get_current_context
        from airflow.sdk.exceptions import AirflowFailException

        from scoring.common.errors import PipelineError
        from scoring.intake.arrivals import nightly_arrival_cut
        from scoring.pipeline import begin, context_from_env
        from scoring.quality.waivers import parse_waiver

        context = get_current_context()
        params = context["params"]
        logical_date = context.get("logical_date")
        overrides = {k: params[k] for k in ("landing", "db_url", "home") if params.get(k)}
        if params.get("partitions"):
            overrides["partitions"] = int(params["partitions"])
        try:
            if params.get("as_of"):
                as_of = params["as_of"]
            elif (
                logical_date is not None
            ):  # keyed on the logical date: what had landed when the night was due
                as_of = (
                    logical_date.astimezone(SHANGHAI).date() - dt.timedelta(days=1)
                ).isoformat()
                overrides["arrival_cut"] = nightly_arrival_cut(dt.date.fromisoformat(as_of))
            else:  # triggered without a logical date (REST API "logical_date": null): the trigger time
                as_of = (
                    context["dag_run"].run_after.astimezone(SHANGHAI).date() - dt.timedelta(days=1)
                ).isoformat()
            if params.get("waive"):
                overrides["waivers"] = (
                    parse_waiver(
                        params["waive"], params.get("approver"), params.get("reason")
                    ).as_dict(),
                )
            return begin(context_from_env(as_of, **overrides)).to_json()
        except (PipelineError, ValueError) as exc:  # a bad date or waiver: retrying can't help
            raise AirflowFailException(str(exc)) from exc

    def make_step(name: str):
        trigger = "all_done" if name in ALWAYS_RUN else "all_success"

        @task(
            task_id=name,
            trigger_rule=trigger,
            execution_timeout=dt.timedelta(minutes=STEP_TIMEOUT_MINUTES.get(name, 60)),
        )
        def step(ctx_json: str) -> dict:
            return _run(name, ctx_json)

        return step

    @task(
        task_id="published",
        trigger_rule="all_done",
        outlets=[PUBLISHED],
        retries=1,
        execution_timeout=dt.timedelta(minutes=10),
    )
    def published(ctx_json: str, outlet_events=None) -> dict:
        """The run's state is the night's: success only if agencies now see this night."""
        from airflow.sdk.exceptions import AirflowFailException

        from scoring.pipeline import RunContext, run_summary

        s = run_summary(RunContext.from_json(ctx_json))
        if s["status"] != "published":
            raise AirflowFailException(
                f"night {s['run_id']} was not published (status {s['status']}"
                + (f": {s['message']})" if s.get("message") else ")")
            )
        outlet_events[PUBLISHED].extra = {
            "run_id": s["run_id"],
            "as_of": s["as_of"],
            "output_sha256": s["output_sha256"],
        }
        return {
            k: s[k]
            for k in ("run_id", "as_of", "status", "entities_scored", "tiers", "output_sha256")
        }

    @task(task_id="plan_partitions", execution_timeout=dt.timedelta(minutes=30))
    def plan_partitions(ctx_json: str) -> list[int]:
        """Fix the night's inputs and cut them into entity-hash partitions (CREDIT_PARTITIONS or by size)."""
        return _call("plan_partitions", ctx_json)

    @task(
        task_id="evaluate_partition",
        execution_timeout=dt.timedelta(minutes=STEP_TIMEOUT_MINUTES[PARTITIONED_STEP]),
    )
    def evaluate_partition(ctx_json: str, partition: int) -> dict:
        """One partition's evaluation; mapped, so the CeleryExecutor spreads them over its workers."""
        return _call("evaluate_partition", ctx_json, partition)

    ctx = prepare()
    previous, done = ctx, []
    for step_name in STEP_NAMES:
        current = make_step(step_name)(ctx)
        if (
            step_name == PARTITIONED_STEP
        ):  # plan, then the pieces in parallel, then the step assembles
            planned = plan_partitions(ctx)
            pieces = evaluate_partition.partial(ctx_json=ctx).expand(partition=planned)
            previous >> planned
            done >> planned
            pieces >> current
            done += [planned, pieces]
            previous = pieces
        previous >> current
        if step_name not in ALWAYS_RUN:
            (
                done >> current
            )  # needs every earlier step to have succeeded (the report runs regardless)
        previous = current
        done.append(current)
    published(ctx).set_upstream(done)
