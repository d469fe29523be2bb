"""The record history: the bitemporal store (runs, files, quarantine, gates, results, record
batches as content-addressed Parquet, artifacts, publications) and point-in-time inputs.

May import: scoring.common.
"""
