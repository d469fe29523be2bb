"""The steps of a night, one module each, bound to the names of scoring.steps.STEP_NAMES: each
reads its inputs, calls its stage and writes its outputs."""

from __future__ import annotations

from collections.abc import Callable

from scoring.pipeline.context import RunContext
from scoring.pipeline.steps.gate import gate
from scoring.pipeline.steps.ingest import close_interrupted_runs, ingest
from scoring.pipeline.steps.publish import publish
from scoring.pipeline.steps.report import mark_report, report
from scoring.pipeline.steps.score import evaluate_partition, plan_partitions, score
from scoring.steps import STEP_NAMES

STEPS: dict[str, Callable[[RunContext], dict]] = {
    "ingest": ingest,
    "gate": gate,
    "score": score,
    "report": report,
    "publish": publish,
}
assert tuple(STEPS) == STEP_NAMES

__all__ = [
    "STEPS",
    "close_interrupted_runs",
    "evaluate_partition",
    "gate",
    "ingest",
    "mark_report",
    "plan_partitions",
    "publish",
    "report",
    "score",
]
