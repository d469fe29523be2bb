"""The record history: the bitemporal store (runs, files, quarantine, gates, results, record
batches as content-addressed Parquet, artifacts, publications) and point-in-time inputs.

Every SQL statement the pipeline, the CLI and the console run is a function here: ``runs``,
``files``, ``gates``, ``results``, ``reads``, ``nights`` (the operators' overview), over the tables
of ``tables``; ``store`` is the Store (with ``batches``: the Parquet lake, ``bulk``: COPY and bulk
inserts); ``folders`` names a store's folders and every artifact of a run (``RunFolder``).

May import: scoring.common.
"""
