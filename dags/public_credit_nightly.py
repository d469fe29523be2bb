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

Exchange: before ingest, one mapped **pull** task per source of the provider registry (a
provider's exchange database, SFTP folder or HTTP interface) writes what it fetched into the
landing folder as an ordinary delivery; a source that fails is that provider's missing delivery
(network errors are retried with backoff first), and the freshness gate decides the night. A
source whose provider signals that a night is complete (`ready` in the registry: a batch-table
row, an SFTP marker, a status URL) waits for it first, **deferred**: the triggerer looks every
`poll_s`, no worker slot is held, and no signal by its `timeout_s` is a missing delivery. After
**publish**, **push** sends the night to every agency with a push target and records receipts.
Credentials come from Airflow Connections (the conn ids in the config), resolved in the task.

The steps are defined once in `scoring.pipeline` (the CLI `credit run` calls the same ones);
the run context of a scheduled night is made by the same function as `credit run --from/--to`'s.
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

from _exchange import PUSH_SHOWN, PullSource, airflow_conn, shown
from _shared import (
    EXCHANGE_RETRIES,
    PUBLISHED,
    SHANGHAI,
    RunAlert,
    default_args,
    exchange_task,
    fail_fast,
)
from airflow.sdk import DAG, Param, task

from scoring.steps import ALWAYS_RUN, PARTITIONED_STEP, STEP_NAMES, STEP_TIMEOUT_MINUTES

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
DEFAULT_ARGS = default_args(
    2,  # transient failures only (and a worker that died): the rest fail fast
    dt.timedelta(seconds=int(os.environ.get("CREDIT_RETRY_DELAY_SECONDS") or 60)),
    dt.timedelta(minutes=60),
    retry_exponential_backoff=2.0,  # a multiplier in Airflow 3.3: True (1.0) is a constant delay
    max_retry_delay=dt.timedelta(minutes=10),
)


@fail_fast
def _run(step: str, ctx_json: str) -> dict:
    from scoring.pipeline import RunContext, run_step

    return run_step(step, RunContext.from_json(ctx_json))


def _optional(title: str, description: str, **schema) -> Param:
    return Param(None, type=["null", "string"], title=title, description=description, **schema)


def _step(name: str):
    """A task running one step of the night (``credit run`` runs the same)."""

    trigger = "all_done" if name in ALWAYS_RUN else "all_success"
    if name == STEP_NAMES[0]:  # after the pulls, of which there may be none (skipped)
        trigger = "none_failed"

    @task(
        task_id=name,
        trigger_rule=trigger,
        execution_timeout=dt.timedelta(minutes=STEP_TIMEOUT_MINUTES.get(name, 60)),
    )
    def step(ctx_json: str | None) -> dict:
        if ctx_json is None:  # prepare failed (it alerted): there is no night to work on
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException("prepare failed: this night was never begun")
        return _run(name, ctx_json)

    return step


with DAG(
    dag_id="public_credit_nightly",
    description="Nightly public credit composite evaluation: ingest, gate, score, report, publish",
    schedule=SCHEDULE,
    start_date=START,
    catchup=GO_LIVE is not None,
    max_active_runs=1,
    dagrun_timeout=dt.timedelta(hours=4),
    on_failure_callback=[RunAlert()],
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
    @fail_fast
    def prepare(params=None, logical_date=None, dag_run=None) -> str:
        """Resolve the run context once (date, arrival cut, waivers, attempt), so every step agrees."""
        from scoring.pipeline import begin, context_for_trigger

        run_after = getattr(dag_run, "run_after", None)
        return begin(context_for_trigger(params, logical_date, run_after)).to_json()

    @task(
        task_id="published",
        trigger_rule="all_done",
        outlets=[PUBLISHED],
        retries=1,
        execution_timeout=dt.timedelta(minutes=10),
    )
    @fail_fast
    def published(ctx_json: str | None, outlet_events=None) -> dict:
        """The run's state is the night's: success only if agencies now see this night."""
        from scoring.pipeline import NotPublished, RunContext, published_night

        if ctx_json is None:
            raise NotPublished("the night was never begun: prepare failed")
        night = published_night(RunContext.from_json(ctx_json))
        outlet_events[PUBLISHED].extra = {k: night[k] for k in ("run_id", "as_of", "output_sha256")}
        return night

    @task(task_id="plan_partitions", execution_timeout=dt.timedelta(minutes=30))
    @fail_fast
    def plan_partitions(ctx_json: str) -> list[int]:
        """Fix the night's inputs and cut them into entity-hash partitions (CREDIT_PARTITIONS or by size)."""
        from scoring.pipeline import RunContext, plan_partitions

        return plan_partitions(RunContext.from_json(ctx_json))

    @task(
        task_id="evaluate_partition",
        execution_timeout=dt.timedelta(minutes=STEP_TIMEOUT_MINUTES[PARTITIONED_STEP]),
    )
    @fail_fast
    def evaluate_partition(ctx_json: str, partition: int) -> dict:
        """One partition's evaluation; mapped, so the CeleryExecutor spreads them over its workers."""
        from scoring.pipeline import RunContext, evaluate_partition

        return evaluate_partition(RunContext.from_json(ctx_json), partition)

    @task(task_id="pull_sources", retries=1, execution_timeout=dt.timedelta(minutes=5))
    @fail_fast
    def pull_sources(ctx_json: str) -> list[str]:
        """The sources this night pulls (none for a catch-up night: the latest one pulls)."""
        from scoring.exchange.night import pull_moment, pulled_sources
        from scoring.exchange.sources import load_exchange
        from scoring.pipeline import RunContext

        ctx = RunContext.from_json(ctx_json)
        if pull_moment(dt.datetime.now(dt.UTC), ctx.arrival_cut) is None:
            return []
        return [s.id for s in pulled_sources(load_exchange(ctx.as_of))]

    @task(task_id="push", execution_timeout=dt.timedelta(minutes=30), **EXCHANGE_RETRIES)
    @exchange_task
    def push(ctx_json: str) -> list[dict]:
        """The published night to every agency with a push target; failures are recorded, and
        a retry pushes only to the agencies whose push failed."""
        from airflow.sdk import get_current_context

        from scoring.exchange.night import push_all
        from scoring.history.store import Store
        from scoring.pipeline import RunContext
        from scoring.publication.publish import load_agencies

        ctx = RunContext.from_json(ctx_json)
        again = get_current_context()["ti"].try_number > 1
        store = Store.open(ctx.db_url, ctx.home)
        now = dt.datetime.now(dt.UTC)
        rows = push_all(store, load_agencies(), airflow_conn, now, ctx.run_id, again=again)
        return [shown(r, PUSH_SHOWN) for r in rows]

    ctx = prepare()
    # One task per step, named by scoring.steps (the score step assembles the partitions).
    ingest, gate, score, report, publish = (_step(name)(ctx) for name in STEP_NAMES)
    planned = plan_partitions(ctx)
    pieces = evaluate_partition.partial(ctx_json=ctx).expand(partition=planned)
    night = published(ctx)
    # One pull per source, mapped; one that declares a readiness signal waits for it deferred.
    pulled = PullSource.partial(
        task_id="pull", ctx_json=ctx, execution_timeout=dt.timedelta(minutes=30), **EXCHANGE_RETRIES
    ).expand(source_id=pull_sources(ctx))
    pushed = push(ctx)

    # Only ingest waits for the pulls (its trigger lets a night with none to make go on).
    pulled >> ingest >> gate >> planned >> pieces >> score >> report >> publish >> pushed >> night
    # A step runs only if every earlier step succeeded, not just the one before it (the report
    # runs whatever happened: a failed score must still stop the publication after it).
    ingest >> planned
    [ingest, gate, planned] >> score
    [ingest, gate, planned, pieces, score] >> publish
    # The final task alone decides the night's state: it waits for every task.
    [ingest, gate, planned, pieces, score, report, publish] >> night
