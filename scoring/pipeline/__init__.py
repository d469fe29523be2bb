"""The nightly pipeline, wired once: ingest → gate → score → report → publish (the order of
scoring.steps.STEP_NAMES; publication last, so nothing changes what agencies see until every check
and the report have passed).

Both the Airflow DAG and ``credit run`` call these steps by name. Each step (``steps/``, one module
each) reads its inputs, calls the pure functions of its stage, writes its outputs and records its
state; the logic lives in the stages (scoring/intake, quality, evaluation, publication, reporting,
audit), the SQL in scoring.history, and the file names of a run in ``history.folders.RunFolder``.
Each step is a transaction keyed on the run id (derived from the as-of date): it replaces its own
outputs, so a retry or a rerun of the same night gives the same result and never leaves partial
output behind. Steps pass nothing but the run context (``context``); data moves through the store
and the run folder. ``runner`` runs a step, a night, nights; ``summary`` shows a run as stored.

A run is a transaction as agencies see it: ``begin`` picks the attempt a run works in. A night that
never published is redone in place; a published night is rebuilt beside it as a new attempt
(``nightly-YYYYMMDD-r2``), which replaces it only in the transaction that publishes it
(scoring.publication.nights). A failed re-run leaves the published night exactly as it was.
"""

from __future__ import annotations

from scoring.common.errors import GateFailed, NotPublished, PipelineError
from scoring.pipeline.context import (
    RunContext,
    context_for_trigger,
    context_from_env,
    scheduled,
)
from scoring.pipeline.runner import begin, run_night, run_nights, run_step, shown
from scoring.pipeline.steps import (
    STEPS,
    close_interrupted_runs,
    evaluate_partition,
    gate,
    ingest,
    plan_partitions,
    publish,
    report,
    score,
)
from scoring.pipeline.summary import night_facts, published_night, run_summary
from scoring.steps import STEP_NAMES

__all__ = [
    "GateFailed",
    "NotPublished",
    "PipelineError",
    "RunContext",
    "STEP_NAMES",
    "STEPS",
    "begin",
    "close_interrupted_runs",
    "context_for_trigger",
    "context_from_env",
    "evaluate_partition",
    "gate",
    "ingest",
    "plan_partitions",
    "publish",
    "night_facts",
    "published_night",
    "report",
    "run_night",
    "run_nights",
    "run_step",
    "run_summary",
    "scheduled",
    "score",
    "shown",
]
