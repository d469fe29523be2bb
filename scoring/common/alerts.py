"""Failure alerts: one log line always, and a JSON POST to the operator's hook when one is set.

``CREDIT_ALERT_WEBHOOK`` (a URL: a chat robot, a mail gateway) receives the event as JSON; a hook
that is down is logged, never raised, so an alert can't fail the thing it reports on. The
orchestrator calls ``on_failure(context)`` with its own context mapping (duck-typed: this module
knows nothing of Airflow) and imports nothing heavy, so DAG files may import it at parse time.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request

log = logging.getLogger("credit.alerts")
WEBHOOK_ENV = "CREDIT_ALERT_WEBHOOK"


def _get(obj, name: str):
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def event_from_context(context) -> dict:
    """The facts an operator needs, from an orchestrator's callback context."""
    ti = _get(context, "ti") or _get(context, "task_instance")
    run = _get(context, "dag_run")
    dag = _get(context, "dag")
    exc = _get(context, "exception")
    return {
        "event": "failure",
        "dag_id": _get(dag, "dag_id") or _get(run, "dag_id") or _get(ti, "dag_id"),
        "run_id": _get(run, "run_id") or _get(ti, "run_id"),
        "task_id": _get(ti, "task_id"),
        "try_number": _get(ti, "try_number"),
        "logical_date": str(_get(run, "logical_date") or _get(context, "logical_date") or "")
        or None,
        "reason": (str(exc) if exc is not None else _get(context, "reason")) or None,
    }


def notify(event: dict, webhook: str | None = None, timeout: float = 10.0) -> bool:
    """Log the event; POST it to the webhook if there is one. True when a hook accepted it."""
    text = json.dumps(event, ensure_ascii=False, sort_keys=True, default=str)
    log.error("CREDIT ALERT %s", text)
    url = webhook if webhook is not None else os.environ.get(WEBHOOK_ENV, "")
    if not url:
        return False
    req = urllib.request.Request(
        url,
        data=text.encode("utf-8"),
        method="POST",
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except OSError as exc:  # URLError, timeouts, refused connections
        log.error("alert hook %s did not take the alert: %s", url, exc)
        return False


def on_failure(context) -> None:
    """Failure callback for tasks and DAG runs."""
    notify(event_from_context(context))


def _root(exc):
    """The library's own error behind an orchestrator's wrapper (raise ... from exc)."""
    while (
        exc is not None
        and exc.__cause__ is not None
        and not type(exc).__module__.startswith("scoring")
    ):
        exc = exc.__cause__
    return exc


def is_consequence(exc) -> bool:
    """A night that did not publish because an earlier step failed: that step has alerted."""
    from scoring.common.errors import NotPublished

    return isinstance(_root(exc), NotPublished)


def night_event(context, night: dict | None) -> dict:
    """One alert for a failed night: which night and run, the step that failed, the kind of
    failure (configuration, data, code, transient), one line, and where the night's report is.
    ``night``: {night, run_id, report_url} of the night's run (None when it was never begun)."""
    from scoring.common.errors import one_line, reason_code

    ti = _get(context, "ti") or _get(context, "task_instance")
    run = _get(context, "dag_run")
    exc = _root(_get(context, "exception"))
    night = night or {}
    params = _get(context, "params") or {}
    return {
        "event": "night_failed",
        "night": night.get("night") or params.get("as_of"),
        "run_id": night.get("run_id"),
        "dag_id": _get(run, "dag_id") or _get(ti, "dag_id"),
        "dag_run_id": _get(run, "run_id") or _get(ti, "run_id"),
        "step": _get(ti, "task_id"),
        "try_number": _get(ti, "try_number"),
        "reason_code": reason_code(exc) if exc is not None else "orchestration",
        "message": one_line(exc)
        if exc is not None
        else (str(_get(context, "reason") or "") or None),
        "report_url": night.get("report_url"),
    }
