"""The trigger of the nightly's readiness waits: a pull whose source declares a readiness signal
(``ready`` in the provider registry) defers to it, so the wait runs in the triggerer and holds
no worker slot. It lives in the plugins folder because every Airflow component, the triggerer
included, has that folder on its path (the DAGs folder is only read by the DAG processor).

Every ``poll_s`` seconds it looks once (``scoring.exchange.ready.check_ready``, a blocking
function, in a thread) until the provider says ready, a final error (auth, a missing table or
path) ends the wait at once, or the deadline passes: the event says which, and the task records
the pull or the missing delivery. A look that fails on the network is only a look: it counts as
not ready yet. The connection's secret never leaves the thread that uses it (nothing of it is in
the trigger's serialized arguments, nothing in the event)."""

from __future__ import annotations

import asyncio
import datetime as dt

from airflow.triggers.base import BaseTrigger, TriggerEvent

CLASSPATH = "exchange_ready.ReadinessTrigger"


def airflow_conn(conn_id: str):
    """The Airflow Connection as the library's parameters (a lookup that fails: no_connection)."""
    from airflow.sdk import BaseHook

    from scoring.exchange.secrets import conn_from_airflow

    return conn_from_airflow(conn_id, BaseHook.get_connection)


def _library():
    from scoring.exchange.ready import check_ready, wait_reason
    from scoring.exchange.sources import Ready

    return check_ready, wait_reason, Ready


class ReadinessTrigger(BaseTrigger):
    """Waits for one source's readiness signal for one night, until ``deadline`` (UTC, ISO)."""

    def __init__(
        self,
        source_id: str,
        conn_id: str,
        ready: dict,
        as_of: str,
        started: str,
        deadline: str,
        timeout_s: float = 30.0,
    ):
        super().__init__()
        self.source_id, self.conn_id, self.ready = source_id, conn_id, dict(ready)
        self.as_of, self.started, self.deadline = as_of, started, deadline
        self.timeout_s = float(timeout_s)

    def serialize(self) -> tuple[str, dict]:
        return CLASSPATH, {
            "source_id": self.source_id,
            "conn_id": self.conn_id,
            "ready": self.ready,
            "as_of": self.as_of,
            "started": self.started,
            "deadline": self.deadline,
            "timeout_s": self.timeout_s,
        }

    def _event(self, status: str, message: str, polls: int, code: str | None = None):
        waited = dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(self.started)
        return TriggerEvent(
            {
                "status": status,
                "code": code,
                "message": message,
                "polls": polls,
                "waited_s": round(waited.total_seconds(), 1),
            }
        )

    async def run(self):
        # The library (SQLAlchemy, the layouts) is imported in a thread: never block the loop
        # every other trigger of the triggerer runs on.
        check_ready, wait_reason, Ready = await asyncio.to_thread(_library)
        from scoring.exchange.secrets import ExchangeError, redact, retried

        ready, day = Ready(**self.ready), dt.date.fromisoformat(self.as_of)
        deadline = dt.datetime.fromisoformat(self.deadline)
        what = f"source {self.source_id}"
        try:
            conn = await asyncio.to_thread(airflow_conn, self.conn_id)
        except ExchangeError as exc:
            yield self._event("failed", f"{what}: {exc}", 0, exc.code)
            return
        polls = 0
        while True:
            polls += 1
            try:
                ok, seen = await asyncio.to_thread(
                    check_ready, ready, conn, day, what, self.timeout_s
                )
            except ExchangeError as exc:
                if not retried(exc.code):  # it will say the same on every look
                    yield self._event("failed", redact(str(exc), conn), polls, exc.code)
                    return
                ok, seen = False, redact(str(exc), conn)
            if ok:
                yield self._event("ready", seen, polls)
                return
            now = dt.datetime.now(dt.UTC)
            if now >= deadline:
                waited = (now - dt.datetime.fromisoformat(self.started)).total_seconds()
                reason = wait_reason(self.source_id, ready, day, waited, seen)
                yield self._event("not_ready", reason, polls, "not_ready")
                return
            self.log.info("%s: not ready (%s); next look in %gs", what, seen, ready.poll_s)
            await asyncio.sleep(min(ready.poll_s, (deadline - now).total_seconds()))
