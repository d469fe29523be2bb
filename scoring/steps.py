"""The names of the nightly pipeline's steps, in order.

Kept free of heavy imports so an Airflow DAG file can read it at parse time; scoring.pipeline
binds each name to its function.
"""
STEP_NAMES = ("ingest", "gate", "score", "publish", "report")
# Steps that still run after an earlier step failed (the operator needs the report most then).
ALWAYS_RUN = ("report",)
