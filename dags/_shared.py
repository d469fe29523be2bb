"""What the public credit DAGs share: the asset a publication emits, default task arguments, the
fail-fast translation of deterministic errors, and the sampling form's choices read from the
agency registry. Parse-time cheap: no database, no network, nothing heavier than a YAML read."""

from __future__ import annotations

import datetime as dt
import functools
from decimal import Decimal

from airflow.sdk import Asset, BaseNotifier

from scoring.common import alerts
from scoring.common.config import CONFIG_DIR, load_document

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
START = dt.datetime(2026, 1, 1, tzinfo=SHANGHAI)  # bounds manual and test runs only
# What sampling and calibration wait for: a night that agencies can see.
PUBLISHED = Asset(name="public_credit_published", uri="credit://public-credit/published")


class NightAlert(BaseNotifier):
    """One alert per failed night, from the step that failed (its final try): night, run_id,
    step, reason_code, message, report_url, to CREDIT_ALERT_WEBHOOK and the log. The last task's
    failure because an earlier step failed is that step's alert already, not another."""

    def notify(self, context):
        exc = context.get("exception")
        if exc is not None and alerts.is_consequence(exc):
            return
        night = None
        try:  # the night's run context, when prepare made one
            from scoring.pipeline import RunContext, night_facts

            ctx_json = context["ti"].xcom_pull(task_ids="prepare")
            night = night_facts(RunContext.from_json(ctx_json)) if ctx_json else None
        except Exception as err:  # an alert must go out whatever its details cost
            alerts.log.warning("alert without the night's run context: %s", err)
        alerts.notify(alerts.night_event(context, night))


class RunAlert(BaseNotifier):
    """A DAG run that failed with no task failing (a run timeout): a task failure alerted already."""

    def notify(self, context):
        if context.get("reason") != "task_failure":
            alerts.notify(alerts.night_event(context, None))


def default_args(retries: int, retry_delay: dt.timedelta, timeout: dt.timedelta, **more) -> dict:
    """Every task retried (transient failures only: the rest fail fast), bounded in time, and
    alerting once on its final failure."""
    return {
        "owner": "public-credit-agency",
        "retries": retries,
        "retry_delay": retry_delay,
        "execution_timeout": timeout,
        "on_failure_callback": [NightAlert()],
        **more,
    }


def fail_fast(fn):
    """The same input fails the same way: a configuration, data or code error (a failed gate, a
    wrong database user, a bad parameter, a bug) fails the task at once, in one line, without
    retries. Only a transient one (a database that did not answer, a disk, the network) retries."""

    @functools.wraps(fn)
    def task_body(*args, **kwargs):
        from airflow.sdk.exceptions import AirflowFailException

        from scoring.common.errors import TRANSIENT, one_line, reason_code

        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if type(exc).__module__.startswith("airflow") or reason_code(exc) == TRANSIENT:
                raise  # the orchestrator's own signals (skip, timeout) and what may pass
            raise AirflowFailException(one_line(exc)) from exc

    return task_body


class ExchangeRetry(ConnectionError):
    """A source or agency that did not answer (the network, a timeout): worth another try."""


def exchange_rule(rows: list[dict], try_number: int, max_tries: int) -> list[dict]:
    """One rule for the pulls and the push. Each row is one source or agency, already recorded,
    with the code of its failure (None if it worked). Auth, schema and path errors are final at
    once: recorded, and the night goes on (a failed source is its provider's missing delivery, a
    failed push is on the report and carried by the next night's). A network error or a timeout
    is retried with backoff while tries remain, and recorded as it is on the last."""
    from scoring.exchange.secrets import retried

    again = [r for r in rows if retried(r.get("code"))]
    if again and try_number <= max_tries:
        raise ExchangeRetry("; ".join(str(r.get("message", "")) for r in again))
    return rows


def exchange_task(fn):
    """A pull or push task body (returns its recorded rows) under the exchange rule, inside
    ``fail_fast``: a failure of the pipeline itself (its registry, its store) fails as any step's."""

    @functools.wraps(fn)
    def body(*args, **kwargs):
        from airflow.sdk import get_current_context

        out = fn(*args, **kwargs)
        ti = get_current_context()["ti"]
        rows = exchange_rule(out if isinstance(out, list) else [out], ti.try_number, ti.max_tries)
        return rows if isinstance(out, list) else rows[0]

    wrapped = fail_fast(body)
    wrapped.exchange_rule = exchange_rule  # what the DAG tests look for on pull and push
    return wrapped


# The exchange tasks' retries: network errors only (exchange_rule), with backoff up to this.
EXCHANGE_RETRIES = dict(
    retries=3,
    retry_delay=dt.timedelta(seconds=30),
    retry_exponential_backoff=2.0,  # a multiplier in Airflow 3.3: True (1.0) is a constant delay
    max_retry_delay=dt.timedelta(minutes=10),
)


def _number(x) -> str:
    return format(Decimal(str(x)).normalize(), "f")


def _latest(sets: list[dict]) -> dict:
    return max(sets, key=lambda s: str(s["from"]))


def sampling_form(path=None) -> tuple[list[str], dict[str, str], str]:
    """(agency ids, each tier's ratio bounds as the form shows them, their source) from the
    registry (config/agencies.yaml): the latest default set, with agencies' own sets where they
    differ. The commit checks the set in force for the plan's period."""
    reg = load_document(path or CONFIG_DIR / "agencies.yaml")
    sets = reg["sampling_bounds"]
    default = _latest(sets["default"])
    shown = {}
    for tier in "ABCD":
        text = "–".join(_number(x) for x in default[tier])
        own = [
            f"{agency} {'–'.join(_number(x) for x in _latest(s)[tier])}"
            for agency, s in sorted(sets.items())
            if agency != "default" and _latest(s)[tier] != default[tier]
        ]
        shown[tier] = text + (f" ({'; '.join(own)})" if own else "")
    return [a["id"] for a in reg["agencies"]], shown, default["source"]
