"""The nightly's exchange tasks' bodies: the pull of one source (an operator, because a source
that declares a readiness signal waits for it deferred: the wait runs in the triggerer, see
plugins/exchange_ready.py, and holds no worker slot; TaskFlow tasks cannot defer) and the
resolution of Airflow Connections. Parse-time cheap: everything heavy is imported in the task."""

from __future__ import annotations

import datetime as dt

from _shared import exchange_task
from airflow.sdk import BaseOperator

PULL_SHOWN = ("source_id", "status", "rows", "message", "code")
PUSH_SHOWN = ("agency_id", "status", "rows", "message", "code")


def airflow_conn(conn_id: str):
    """An Airflow Connection as the resolved parameters the library takes (secret included,
    never logged: the library redacts it from every message)."""
    from airflow.sdk import BaseHook

    from scoring.exchange.secrets import conn_from_airflow

    return conn_from_airflow(conn_id, BaseHook.get_connection)


def shown(row: dict, keys: tuple[str, ...]) -> dict:
    return {k: None if row.get(k) is None else str(row[k]) for k in keys}


def _night(ctx_json: str):
    from scoring.exchange.night import pull_moment
    from scoring.history.store import Store
    from scoring.pipeline import RunContext

    ctx = RunContext.from_json(ctx_json)
    now = dt.datetime.now(dt.UTC)
    # A pull by the night's own run arrives by its cut (scoring.exchange.night.pull_moment).
    at = pull_moment(now, ctx.arrival_cut) or ctx.arrival_cut
    return ctx, Store.open(ctx.db_url, ctx.home), at, now


@exchange_task
def pull_now(ctx_json: str, source_id: str) -> dict:
    """One source into the landing folder; its own failure is recorded (exchange_rule). A
    source's schedule window is checked against the wall clock: outside it, skipped."""
    from scoring.exchange.night import pull_one

    ctx, store, at, now = _night(ctx_json)
    row = pull_one(store, ctx.landing, source_id, airflow_conn, ctx.as_of, at, now=now)
    return shown(row, PULL_SHOWN)


@exchange_task
def never_ready(ctx_json: str, source_id: str, code: str, message: str) -> dict:
    """The provider never said the night was complete (or its signal cannot be read): the
    source is recorded as failed, its provider's missing delivery; the night goes on."""
    from scoring.exchange.night import record_missing

    ctx, store, at, _ = _night(ctx_json)
    row = record_missing(store, ctx.landing, source_id, ctx.as_of, at, code, message)
    return shown(row, PULL_SHOWN)


def readiness_wait(ctx_json: str, source_id: str) -> dict | None:
    """The trigger's arguments if this pull must first wait for the provider's signal (the
    source declares ``ready`` and its window holds now), else None."""
    from scoring.exchange.night import outside_window
    from scoring.exchange.sources import load_exchange
    from scoring.pipeline import RunContext

    ctx = RunContext.from_json(ctx_json)
    source = load_exchange(ctx.as_of).source(source_id)
    now = dt.datetime.now(dt.UTC)
    if source.ready is None or outside_window(source, ctx.as_of, now) is not None:
        return None
    return {
        "source_id": source.id,
        "conn_id": source.conn_id,
        "ready": source.ready.as_dict(),
        "as_of": ctx.as_of.isoformat(),
        "started": now.isoformat(),
        "deadline": (now + dt.timedelta(seconds=source.ready.timeout_s)).isoformat(),
        "timeout_s": source.timeout_s,
    }


class PullSource(BaseOperator):
    """Pull one source of the provider registry into the landing folder, after waiting (deferred,
    in the triggerer) for its readiness signal if it declares one. Shown deferred (purple) in
    the grid while it waits; the trigger's looks are in the task's log."""

    template_fields = ("ctx_json", "source_id")
    ui_color = "#e8f0fe"

    def __init__(self, *, ctx_json, source_id, **kwargs):
        super().__init__(**kwargs)
        self.ctx_json, self.source_id = ctx_json, source_id

    def execute(self, context):
        wait = readiness_wait(self.ctx_json, self.source_id)
        if wait is None:
            return pull_now(self.ctx_json, self.source_id)
        from exchange_ready import ReadinessTrigger  # the plugins folder: on every component's path

        self.log.info(
            "source %s: waiting for the provider's %s signal for %s (until %s, a look every %gs)",
            self.source_id,
            wait["ready"]["kind"],
            wait["as_of"],
            wait["deadline"],
            wait["ready"]["poll_s"],
        )
        self.defer(trigger=ReadinessTrigger(**wait), method_name="resume")

    def resume(self, context, event=None):
        event = event or {}
        if event.get("status") == "ready":
            self.log.info(
                "source %s: ready after %ss (%s look(s)): %s",
                self.source_id,
                event.get("waited_s"),
                event.get("polls"),
                event.get("message"),
            )
            return pull_now(self.ctx_json, self.source_id)
        self.log.warning("source %s: %s", self.source_id, event.get("message"))
        code = event.get("code") or "not_ready"
        return never_ready(self.ctx_json, self.source_id, code, str(event.get("message")))
