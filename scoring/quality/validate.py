"""Quality gates: GX suites turn into row verdicts (accepted or quarantined with reasons), and
batch gates decide whether the run may go on.

Row verdicts come from the map expectations' unexpected indexes; every staged row ends either
accepted or quarantined, and every received line is accounted for (unparseable lines are
quarantined by the reader). Hard gates stop the run before anything is stored or published.
"""

from __future__ import annotations

import datetime as dt
import importlib
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from scoring.common.catalogue import Catalogue


@dataclass
class GateResult:
    gate: str
    scope: str
    hard: bool
    passed: bool
    observed: str = ""
    threshold: str = ""
    message: str = ""
    waiver: str = ""  # set when an operator waived this failed gate for this run

    def as_row(self, run_id: str) -> dict:
        return {"run_id": run_id, **self.__dict__}


@dataclass
class Verdicts:
    """Per staged row: reasons (empty = accepted), plus the validation summary for reports."""

    reasons: pd.Series  # index aligned with the staged frame; "" = accepted
    summary: list[dict] = field(default_factory=list)
    docs_index: str | None = None
    success: bool = True
    docs_pending: list = field(default_factory=list)  # stored results whose pages wait


def _suite_module(table: str):
    return importlib.import_module(f"expectations.{table}")


def build_suite(table: str, catalogue: Catalogue, as_of: str):
    """The suite named after ``table`` for the catalogue and as-of date."""
    return _suite_module(table).build_suite(catalogue, as_of)


def gx_context(docs_root: Path | None):
    """A GX context: file-backed (with Data Docs) when a folder is given, else ephemeral."""
    import great_expectations as gx  # lazy: GX takes seconds to import and only gating needs it
    from great_expectations.data_context.types.base import ProgressBarsConfig

    import expectations.custom  # noqa: F401  (registers the custom expectations)

    if docs_root is None:
        ctx = gx.get_context(mode="ephemeral")
    else:
        docs_root.mkdir(parents=True, exist_ok=True)
        ctx = gx.get_context(mode="file", project_root_dir=str(docs_root))
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return ctx


@contextmanager
def _batch_fingerprint(on: bool):
    """GX fingerprints every batch under 1 GB by hashing it whole (seconds for a partition of a
    night's results); only Data Docs shows the fingerprint, so validations without docs skip it."""
    if on:
        yield
        return
    from great_expectations.execution_engine import pandas_execution_engine as engine

    old, engine.HASH_THRESHOLD = engine.HASH_THRESHOLD, 0
    try:
        yield
    finally:
        engine.HASH_THRESHOLD = old


def validate_table(
    ctx,
    table: str,
    frame: pd.DataFrame,
    catalogue: Catalogue,
    as_of: str,
    run_name: str,
    with_docs: bool,
    docs_now: bool = True,
    suite=None,
) -> Verdicts:
    """Validate a staged frame against the suite named after its table. ``docs_now=False``:
    the result is stored for Data Docs, rendered later by ``build_docs`` with its identifier
    (``Verdicts.docs_pending``): a table in many chunks renders its pages once, not per chunk.
    ``suite``: the table's suite as ``build_suite`` made it for ``as_of`` (a chunked table's
    runs share one)."""
    suite = suite if suite is not None else build_suite(table, catalogue, as_of)
    # GX hashes the whole batch; hand it only the columns its expectations read.
    used = _suite_columns(suite)
    frame = frame[[c for c in frame.columns if c in used]].reset_index(drop=True)
    reasons = pd.Series("", index=frame.index, dtype="object")
    if frame.empty:
        return Verdicts(reasons=reasons.astype("string"))
    key, vr = _run_checkpoint(ctx, table, suite, frame, as_of, run_name, (with_docs, docs_now))
    codes, summary, ok = _read_results(vr, len(frame))
    return Verdicts(
        reasons=pd.Series(codes, index=frame.index).astype("string"),
        summary=summary,
        docs_index=docs_index(ctx) if with_docs and docs_now else None,
        success=ok,
        docs_pending=[key] if with_docs and not docs_now else [],
    )


def docs_index(ctx) -> str | None:
    sites = ctx.get_docs_sites_urls()
    return sites[0]["site_url"] if sites else None


def build_docs(ctx, pending: list) -> str | None:
    """Data Docs pages of the stored results ``pending`` (and the site's index), rendered once;
    the index's address."""
    if not pending:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ctx.build_data_docs(resource_identifiers=list(pending))
    return docs_index(ctx)


def _run_checkpoint(ctx, table: str, suite, frame: pd.DataFrame, as_of, run_name, docs):
    """Run the table's checkpoint (asset, batch, suite and definition made or updated) on
    ``frame``; (identifier, result) of its one validation. ``docs``: (with Data Docs, rendered
    now)."""
    with_docs, docs_now = docs
    import great_expectations as gx  # lazy: GX takes seconds to import and only gating needs it
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.core.run_identifier import RunIdentifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GX's own deprecation chatter is not ours to fix
        ds = ctx.data_sources.add_or_update_pandas("pipeline")
        try:
            asset = ds.get_asset(table)
        except LookupError:
            asset = ds.add_dataframe_asset(table)
        try:
            bd = asset.get_batch_definition("whole")
        except (LookupError, KeyError):
            bd = asset.add_batch_definition_whole_dataframe("whole")
        suite = ctx.suites.add_or_update(suite)
        vd = ctx.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=table, data=bd, suite=suite)
        )
        actions = [UpdateDataDocsAction(name="update_data_docs")] if with_docs and docs_now else []
        cp = ctx.checkpoints.add_or_update(
            gx.Checkpoint(
                name=f"{table}_checkpoint",
                validation_definitions=[vd],
                actions=actions,
                result_format={"result_format": "COMPLETE"},
            )
        )
        run_time = dt.datetime.fromisoformat(as_of).replace(tzinfo=dt.UTC)
        with _batch_fingerprint(with_docs):
            res = cp.run(
                batch_parameters={"dataframe": frame},
                run_id=RunIdentifier(run_name=run_name, run_time=run_time),
            )
    return next(iter(res.run_results.items()))


def _read_results(vr, n_rows: int) -> tuple[np.ndarray, list[dict], bool]:
    """Per row the comma-joined reasons (sorted) of the expectations it fails, a summary line per
    expectation, and False when an expectation raised instead of validating."""
    summary, ok = [], True
    hits: dict[str, list[np.ndarray]] = {}
    for r in vr.results:
        cfg = r.expectation_config
        reason = (cfg.meta or {}).get("reason", cfg.type)
        exc = r.exception_info or {}
        raised = bool(exc.get("raised_exception")) if isinstance(exc, dict) else False
        if raised:
            ok = False
            summary.append(
                {
                    "expectation": cfg.type,
                    "reason": reason,
                    "success": False,
                    "unexpected": None,
                    "error": exc.get("exception_message"),
                }
            )
            continue
        idx = r.result.get("unexpected_index_list") or []
        if idx:
            hits.setdefault(reason, []).append(np.asarray(idx, dtype=np.int64))
        summary.append(
            {
                "expectation": cfg.type,
                "reason": reason,
                "success": bool(r.success),
                "unexpected": int(r.result.get("unexpected_count") or 0),
                "error": None,
            }
        )
    codes = np.full(n_rows, "", dtype=object)
    for reason in sorted(hits):
        rows = np.unique(np.concatenate(hits[reason]))
        codes[rows] = np.where(codes[rows] == "", reason, codes[rows] + "," + reason)
    return codes, summary, ok


def _suite_columns(suite) -> set[str]:
    cols: set[str] = set()
    for e in suite.expectations:
        kw = e.configuration.kwargs
        if kw.get("column"):
            cols.add(kw["column"])
        cols.update(kw.get("column_list") or [])
    return cols
