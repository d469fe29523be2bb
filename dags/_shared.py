"""What the public credit DAGs share: the asset a publication emits, default task arguments, the
fail-fast translation of deterministic errors, and the sampling form's choices read from the
agency registry. Parse-time cheap: no database, no network, nothing heavier than a YAML read."""

from __future__ import annotations

import datetime as dt
import functools
from decimal import Decimal

from airflow.sdk import Asset

from scoring.common.alerts import on_failure
from scoring.common.config import CONFIG_DIR, load_document

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
START = dt.datetime(2026, 1, 1, tzinfo=SHANGHAI)  # bounds manual and test runs only
# What sampling and calibration wait for: a night that agencies can see.
PUBLISHED = Asset(name="public_credit_published", uri="credit://public-credit/published")


def default_args(retries: int, retry_delay: dt.timedelta, timeout: dt.timedelta, **more) -> dict:
    """Every task retried (transient failures only: deterministic ones fail fast), bounded in
    time, and alerting on failure."""
    return {
        "owner": "public-credit-agency",
        "retries": retries,
        "retry_delay": retry_delay,
        "execution_timeout": timeout,
        "on_failure_callback": on_failure,
        **more,
    }


def fail_fast(fn):
    """The same input fails the same way: a PipelineError or ValueError (a failed gate, nothing to
    publish, a bad parameter, a refused plan) fails the task at once, without retries."""

    @functools.wraps(fn)
    def task_body(*args, **kwargs):
        from airflow.sdk.exceptions import AirflowFailException

        from scoring.common.errors import PipelineError

        try:
            return fn(*args, **kwargs)
        except (PipelineError, ValueError) as exc:
            raise AirflowFailException(str(exc)) from exc

    return task_body


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
