"""Quality: the GX suites run over staged tables (row verdicts with reasons), the change feed's
context, and the batch gates (schema, reconciliation, quarantine share, row count, freshness).

May import: scoring.common, scoring.history, scoring.intake.
"""
