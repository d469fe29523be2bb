"""publish: deliver a scored run to every agency's outbox, in one transaction with the night's
replacement of an earlier attempt (scoring.publication); the last step."""

from __future__ import annotations

from scoring.common.errors import PipelineError
from scoring.exchange.pull import commit_watermarks
from scoring.history.store import run_row
from scoring.pipeline.context import RunContext
from scoring.pipeline.steps.common import open_store
from scoring.pipeline.steps.report import mark_report
from scoring.publication import publish as pub


def publish(ctx: RunContext) -> dict:
    store = open_store(ctx)
    with store.engine.connect() as conn:
        row = run_row(conn, ctx.run_id)
    if row is not None and row["status"] == "published":
        ctx.say(f"publish: {ctx.run_id} is published already; nothing to do")
        return {"run_id": ctx.run_id, "published": [], "already_published": True}
    if row is None or row["status"] != "scored":
        raise PipelineError(
            f"run {ctx.run_id} is not scored (status {row and row['status']}); nothing published"
        )
    out = pub.publish_run(store, ctx.run_id, progress=ctx.say)
    mark_report(store, ctx.run_id, "scored", "published")
    with store.engine.begin() as conn:
        # The pulls this night read are settled: their sources' watermarks move now (a pull
        # also settles them first, should this process die in between).
        commit_watermarks(conn)
    return out
