"""report: the run's HTML report and provider report (before publication: the operator needs it
most when the night stops), its status line kept in step with what happened next."""

from __future__ import annotations

from scoring.history.store import Store
from scoring.pipeline.context import RunContext
from scoring.pipeline.steps.common import open_store
from scoring.reporting import report as rep


def report(ctx: RunContext) -> dict:
    store = open_store(ctx)
    path = rep.write_run_report(store, ctx.run_id, ctx.landing)
    ctx.say(f"report: {path}")
    return {"run_id": ctx.run_id, "report": str(path)}


def mark_report(store: Store, run_id: str, old: str, new: str) -> None:
    """The report is written before publication; its status line follows what happened next."""
    path = store.run_folder(run_id).report
    if path.exists():
        text = path.read_text(encoding="utf-8")
        path.write_text(
            text.replace(rep.STATUS_MARK.format(status=old), rep.STATUS_MARK.format(status=new)),
            encoding="utf-8",
        )
