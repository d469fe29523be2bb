"""Running steps: one step under the store's run lock (its failure recorded), a night's steps in
order, nights in date order as a scheduler catching up does."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable

from scoring.common.errors import GateFailed, PipelineError
from scoring.evaluation import partitioned as part
from scoring.history.runlock import run_lock
from scoring.history.store import run_row, update_run
from scoring.pipeline.context import RunContext, as_date, scheduled
from scoring.pipeline.steps import STEPS
from scoring.pipeline.steps.common import open_store
from scoring.pipeline.steps.report import mark_report
from scoring.pipeline.summary import run_summary
from scoring.publication import nights
from scoring.steps import STEP_NAMES

log = logging.getLogger(__name__)


def begin(ctx: RunContext) -> RunContext:
    """Choose the attempt this run works in (once per run, before its first step): the night's
    unpublished attempt again, or a new one beside a published night."""
    store = open_store(ctx)
    with store.engine.connect() as conn:
        ctx.attempt = nights.next_attempt(conn, ctx.night_id)
    if ctx.attempt > 1:
        ctx.say(f"{ctx.night_id} is published: this run is built beside it as {ctx.run_id}")
    return ctx


def shown(ctx: RunContext, prefer_published: bool = True) -> RunContext:
    """The context of the night's attempt to show: the published one (unless told otherwise),
    else the latest one."""
    store = open_store(ctx)
    with store.engine.connect() as conn:
        run_id = nights.shown_attempt(conn, ctx.night_id, prefer_published)
    if run_id:
        ctx.attempt = nights.attempt_of(run_id)
    return ctx


def run_step(name: str, ctx: RunContext, wait_seconds: float = 0.0) -> dict:
    """Run one step. If it fails, the run's recorded state says so: failed (nothing new was
    published, publication being the last step), or published with the failure noted when the
    failure came after publication committed."""
    if name not in STEPS:
        raise PipelineError(f"unknown step {name!r}; steps are {', '.join(STEP_NAMES)}")
    # One run at a time per store (re-entrant: `credit run` holds it across its steps). Refused
    # here, nothing of this run's state is touched: the holder's run is not this one's to mark.
    with run_lock(open_store(ctx), ctx.run_id, wait_seconds):
        try:
            return STEPS[name](ctx)
        except GateFailed:
            raise  # the gate (or score contract) has recorded its own verdict
        except Exception as exc:
            note_failure(ctx, name, exc)
            raise


def note_failure(ctx: RunContext, step: str, exc: BaseException) -> None:
    first = str(exc).splitlines()[0][:300] if str(exc) else ""
    what = f"{step} failed: {type(exc).__name__}: {first}"
    try:
        store = open_store(ctx)
        with store.engine.begin() as conn:
            row = run_row(conn, ctx.run_id)
            if row is None:
                return
            if row["status"] == "published":
                update_run(conn, ctx.run_id, message=f"published; afterwards {what}")
            else:
                update_run(conn, ctx.run_id, status="failed", step=step, message=what)
        mark_report(store, ctx.run_id, "scored", "failed")
    except Exception:  # noqa: BLE001 - the original failure is the one to report
        log.exception("could not record the failure of %s for %s", step, ctx.run_id)


def run_night(ctx: RunContext, steps: tuple[str, ...] = STEP_NAMES) -> dict:
    """Run a night's steps in order. A failed gate stops the night (the report still runs, so the
    operator sees why); the summary says what is stored, with each step's seconds and the peak
    memory of this process and of the night's largest partition worker (GB)."""
    error = None
    # From the first step: a run of its own (beside the night if it is published); later steps
    # alone: the night's latest attempt.
    if steps and steps[0] == STEP_NAMES[0]:
        begin(ctx)
    else:
        shown(ctx, prefer_published=False)
    seconds, peaks, worker_peak = {}, {}, 0.0
    try:
        for name in steps:
            t = time.perf_counter()
            out = run_step(name, ctx)
            seconds[name] = round(time.perf_counter() - t, 3)
            # The high-water mark so far: where it rose is the step.
            peaks[name] = part.own_peak_rss_gb()
            worker_peak = max(worker_peak, (out or {}).get("largest_worker_peak_rss_gb") or 0.0)
    except GateFailed as exc:
        error = str(exc)
        if "report" in steps:
            run_step("report", ctx)
    summary = run_summary(ctx)
    summary["step_seconds"] = seconds
    summary["peak_rss_gb"] = {"process": part.own_peak_rss_gb(), "largest_worker": worker_peak}
    summary["peak_rss_gb_after_step"] = peaks
    if error:
        summary["error"] = error
    return summary


def run_nights(
    first, last, make_context: Callable[[dt.date], RunContext], steps: tuple[str, ...] = STEP_NAMES
) -> list[dict]:
    """Nights first..last in order, as a scheduler catching up does: each keyed on its own date
    and cut at its own arrival time (``scheduled``, as the nightly DAG's runs are). Stops at the
    first night that is not published: the next nights would build on a gap."""
    first, last = as_date(first), as_date(last)
    if last < first:
        raise PipelineError(f"--from {first} is after --to {last}")
    out = []
    day = first
    while day <= last:
        s = run_night(scheduled(make_context(day)), steps)
        out.append(s)
        if s["status"] != "published" and "publish" in steps:
            break
        day += dt.timedelta(days=1)
    return out
