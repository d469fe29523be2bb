"""The names of the nightly pipeline's steps, in order.

Kept free of heavy imports so an Airflow DAG file can read it at parse time; scoring.pipeline
binds each name to its function.
"""

# Publication is the last step: the report and every check that can fail run before anything
# changes what agencies see (a failure after publishing leaves the run published, failure noted).
STEP_NAMES = ("ingest", "gate", "score", "report", "publish")
# Steps that still run after an earlier step failed (the operator needs the report most then).
ALWAYS_RUN = ("report",)
# Longest a step may take before the orchestrator stops it (minutes; the 3M-entity bench needs < 2).
STEP_TIMEOUT_MINUTES = {"ingest": 60, "gate": 90, "score": 60, "publish": 60, "report": 30}
# The step whose evaluation is cut into entity-hash partitions: an orchestrator may first plan them
# and evaluate them in parallel (the DAG maps them over its workers); the step assembles them.
PARTITIONED_STEP = "score"
