"""Gate decisions: staged rows through their GX suites, quarantine assembled with reasons,
reconciliation per file (received = accepted + quarantined + excluded) and the batch gates that decide
whether a night may go on. Pure functions over frames; the pipeline reads and writes around them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scoring.common.catalogue import Catalogue
from scoring.common.frames import concat_frames
from scoring.common.law import SIMPLIFIED, SIMPLIFIED_REASON
from scoring.intake.deliveries import MISSING_COLUMNS
from scoring.intake.ingest import record_content_hash, record_key
from scoring.intake.staging_changes import STG_CHANGE_COLUMNS
from scoring.quality import validate as quality
from scoring.quality.changes import annotate_changes
from scoring.quality.chunks import DEFAULT_CHUNK_ROWS, validate_in_chunks
from scoring.quality.freshness import gate_feeds_present
from scoring.quality.quarantine import staged_quarantine, unparsed_quarantine
from scoring.quality.resends import count_excluded, split_earlier_resends, split_resends
from scoring.quality.validate import GateResult

QUARANTINE_COLUMNS = ["path", "line_no", "provider", "reasons", "raw_json"]
# The staged change columns, with the key a change is known by in place of its staging notes.
CHANGE_COLUMNS = [c for c in STG_CHANGE_COLUMNS if c != "bad_values"] + ["change_key"]


@dataclass
class StagedVerdicts:
    """Staged tables with one reason string per row ("" = accepted) and the suites' results."""

    records: pd.DataFrame
    entities: pd.DataFrame
    changes: pd.DataFrame
    reasons: dict[str, pd.Series] = field(default_factory=dict)
    validations: dict[str, quality.Verdicts] = field(default_factory=dict)
    # Rows that are not public credit information at all (simplified procedure, Art. 18): neither
    # accepted nor quarantined, kept with their reason and counted.
    excluded: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["source_file", "provider", "reason"])
    )

    def tables(self):
        return (("records", self.records), ("entities", self.entities), ("changes", self.changes))

    def accepted(self, table: str) -> pd.DataFrame:
        frame = dict(self.tables())[table]
        return frame[self.reasons[table] == ""] if len(frame) else frame


def lookup_keys(stg_rec: pd.DataFrame, stg_chg: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The stored rows a night's gate needs: records (and their changes) by the keys its record and
    change rows name, registrations by the USCCs its records name. Sorted, so reads are repeatable."""
    keys = set()
    if len(stg_rec):
        keys |= set(record_key(stg_rec).dropna())
    if len(stg_chg) and "record_key" in stg_chg:
        keys |= set(stg_chg["record_key"].dropna())
    usccs = set(stg_rec["uscc"].dropna()) if len(stg_rec) and "uscc" in stg_rec else set()
    return sorted(keys), sorted(usccs)


def validate_staged(
    gx_ctx,
    stg_rec: pd.DataFrame,
    stg_ent: pd.DataFrame,
    stg_chg: pd.DataFrame,
    stored_ent: pd.DataFrame,
    stored_rec: pd.DataFrame,
    stored_changes: pd.DataFrame,
    cat: Catalogue,
    as_of: str,
    run_id: str,
    say: Callable[[str], None] = lambda _m: None,
    corrections: set | frozenset = frozenset(),
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    with_docs: bool = True,
    earlier: dict | None = None,
) -> StagedVerdicts:
    """Run each staged table through its suite, in dependency order: the register first (records
    are checked against registration dates), then records, then changes (which refer to records
    accepted earlier or in this run). Rows of a correction delivery (a file name sent again with
    new content, `corrections`) supersede the earlier ones by key: they are not duplicates. Each
    suite runs over chunks of at most `chunk_rows` rows (scoring.quality.chunks), with the same
    verdicts as one run over the whole table. `earlier`: the keys the night's earlier files hold
    when each file is committed by a run of its own (a backfill): records (record_key,
    content_sha) and entities (uscc), judged as rows earlier in the same table."""
    stg_rec, stg_ent, stg_chg = stg_rec.copy(), stg_ent.copy(), stg_chg.copy()
    out = StagedVerdicts(stg_rec, stg_ent, stg_chg)
    if len(stored_rec):  # the latest stored version of each record
        stored_rec = stored_rec.drop_duplicates("record_key", keep="last")
    if len(stg_ent):
        stg_ent["seen_before"] = stg_ent["uscc"].isin(earlier["entities"]) if earlier else False
    run = (gx_ctx, cat, as_of, run_id, say, chunk_rows, with_docs)
    _validate(out, "entities", "stg_entity", "register", stg_ent, run)
    if len(stg_rec):
        simple = (
            (stg_rec["grade"] == SIMPLIFIED).fillna(False).to_numpy(dtype=bool)
            if "grade" in stg_rec
            else np.zeros(len(stg_rec), dtype=bool)
        )
        out.excluded = stg_rec[simple].assign(reason=SIMPLIFIED_REASON).reset_index(drop=True)
        stg_rec = stg_rec[~simple].reset_index(drop=True)
    if len(stg_rec):
        stg_rec = mark_seen_before(stg_rec, stored_rec, corrections)
        stg_rec, resent = split_resends(stg_rec)
        if earlier:
            stg_rec, again = split_earlier_resends(stg_rec, earlier["records"])
            resent = concat_frames([resent, again])
        if len(resent):
            out.excluded = concat_frames([out.excluded, resent])
        stg_rec["registered_date"] = registered_dates(
            stg_rec["uscc"], [stored_ent, out.accepted("entities")]
        )
    _validate(out, "records", "stg_record", "record", stg_rec, run)
    if len(stg_chg):
        ref_cols = [
            "record_key",
            "item_code",
            "decision_date",
            "grade",
            "provider",
            "penalty_category",
        ]
        # Changes with no record stored or staged tonight: every one refers to nothing known.
        known = concat_frames(
            [
                stored_rec.reindex(columns=ref_cols),
                stg_rec.reindex(columns=ref_cols)[out.reasons["records"] == ""]
                if len(stg_rec)
                else stg_rec.reindex(columns=ref_cols),
            ],
            columns=ref_cols,
        ).drop_duplicates("record_key", keep="last")
        stg_chg = annotate_changes(stg_chg, known, cat, stored_changes)
        stg_chg["seen_before"] = stg_chg["seen_before"] & ~stg_chg["source_file"].isin(corrections)
    _validate(out, "changes", "stg_change", "change", stg_chg, run)
    out.records, out.entities, out.changes = stg_rec, stg_ent, stg_chg
    return out


def _validate(out: StagedVerdicts, table, suite, what, frame, run: tuple):
    """One staged table through its suite, in chunks (nothing to validate: no reasons). `run`:
    (GX context, catalogue, as-of, run id, say, rows per chunk, with Data Docs)."""
    gx_ctx, cat, as_of, run_id, say, chunk_rows, with_docs = run
    if not len(frame):
        out.reasons[table] = pd.Series([], dtype="string")
        return
    say(f"gate: validating {len(frame):,} {what} rows (suite {suite})")
    out.validations[table] = validate_in_chunks(
        gx_ctx, suite, frame, cat, as_of, run_id, with_docs, chunk_rows
    )
    out.reasons[table] = out.validations[table].reasons


def mark_seen_before(stg_rec: pd.DataFrame, stored_rec: pd.DataFrame, corrections) -> pd.DataFrame:
    """Keys and content hashes, and whether each row was seen before: the same record saying the
    same thing (a resend). A re-delivery that changes it (item, grade, dates, a listing's removal)
    is a new version from its knowledge date."""
    stg_rec["record_key"] = record_key(stg_rec)
    stg_rec["content_sha"] = record_content_hash(stg_rec)
    stg_rec["seen_before"] = False
    if len(stored_rec):
        # As Python integers: a key not stored reindexes to NaN, which would turn 64-bit hashes
        # into floats and make two versions differing in their low bits compare equal.
        same = (
            stored_rec.set_index("record_key")["content_sha"].astype(object)
            if "content_sha" in stored_rec
            else pd.Series(np.nan, index=stored_rec["record_key"])
        )
        prior = pd.Series(
            same.reindex(stg_rec["record_key"].to_numpy()).to_numpy(), index=stg_rec.index
        )
        # (batches stored before content hashes existed: a resend is judged by its key alone)
        stg_rec["seen_before"] = (
            stg_rec["record_key"].isin(same.index)
            & (prior.isna() | (prior == stg_rec["content_sha"]))
        ).astype(bool)
    stg_rec["seen_before"] &= ~stg_rec["source_file"].isin(corrections)
    return stg_rec


def registered_dates(
    usccs: pd.Series, registers: list[pd.DataFrame], lookup: pd.Series | None = None
) -> pd.Series:
    """Each USCC's registration date (``datetime64[s]``, NaT where unknown) from the registers
    given, later ones winning, and ``lookup`` (a ``register_lookup``) over them all. Any of them
    may be empty, lack the columns, or hold dates of any type or none that parse (a damaged
    register file): what does not parse is unknown, never an error. A record whose entity has no
    known date is judged by the suite, not here."""
    parts = [p for p in (register_frame(reg) for reg in registers) if p is not None]
    out = pd.Series(pd.NaT, index=usccs.index, dtype="datetime64[s]")
    if parts:
        reg = register_lookup(pd.concat(parts, ignore_index=True))
        found = reg.reindex(usccs.astype("string").to_numpy())
        out = pd.Series(found.to_numpy(dtype="datetime64[s]"), index=usccs.index)
    if lookup is not None and len(lookup):
        pos = lookup.index.get_indexer(usccs.astype("string").to_numpy())
        hit = pos >= 0
        out = out.copy()
        out.iloc[np.flatnonzero(hit)] = lookup.to_numpy(dtype="datetime64[s]")[pos[hit]]
    return out


def register_lookup(reg: pd.DataFrame | None) -> pd.Series | None:
    """A register as USCC → registration date, later rows winning: made once for a night's
    register, the hash table of its index serves every chunk that asks (rebuilt per chunk over
    the 3M-entity register it cost seconds each)."""
    part = register_frame(reg)
    if part is None:
        return None
    part = part.dropna(subset=["uscc"]).drop_duplicates("uscc", keep="last")
    # Python strings in the index: its hash table then takes the chunks' USCCs as they are.
    usccs = pd.Index(part["uscc"].to_numpy(dtype=object), dtype=object, name="uscc")
    return pd.Series(part["registered_date"].to_numpy(), index=usccs, name="registered_date")


def register_frame(reg: pd.DataFrame | None) -> pd.DataFrame | None:
    """A register's (uscc as string, registered_date as ``datetime64[s]``, NaT where it does not
    parse); None when it holds no rows or lacks the columns. Giving its own output back is a no-op,
    so a night's registers can be reduced to this as they arrive."""
    if reg is None or not len(reg) or not {"uscc", "registered_date"} <= set(reg.columns):
        return None
    dates = reg["registered_date"]
    if isinstance(dates.dtype, pd.DatetimeTZDtype):
        dates = dates.dt.tz_localize(None)
    elif not pd.api.types.is_datetime64_any_dtype(dates):
        dates = pd.to_datetime(dates.astype("string"), errors="coerce", format="mixed")
    return pd.DataFrame(
        {
            "uscc": reg["uscc"].astype("string").to_numpy(),
            "registered_date": dates.astype("datetime64[s]").to_numpy(),
        }
    )


def build_quarantine(
    verdicts: StagedVerdicts,
    unparsed: pd.DataFrame,
    raw_values: Callable[[pd.DataFrame], pd.Series],
    run_id: str,
) -> pd.DataFrame:
    """One row per rejected line: where it came from, why, and the provider's own values."""
    parts = []
    for table, stg in verdicts.tables():
        reasons = verdicts.reasons[table]
        if len(stg):
            bad = (reasons != "").to_numpy(dtype=bool)
            parts.append(staged_quarantine(stg[bad], reasons[bad].to_numpy(), raw_values))
    if len(unparsed):
        parts.append(unparsed_quarantine(unparsed))
    quar = concat_frames(parts, columns=QUARANTINE_COLUMNS)
    return quar.sort_values(["path", "line_no"], ignore_index=True).assign(run_id=run_id)


def reconcile_files(
    files: pd.DataFrame, verdicts: StagedVerdicts, quar: pd.DataFrame
) -> pd.DataFrame:
    """The night's files with accepted, quarantined and simplified-procedure (excluded) counts per file."""
    acc_counts = pd.concat(
        [
            stg.loc[verdicts.reasons[t] == "", "source_file"] if len(stg) else pd.Series(dtype=str)
            for t, stg in (
                ("records", verdicts.records),
                ("entities", verdicts.entities),
                ("changes", verdicts.changes),
            )
        ]
    ).value_counts()
    q_counts = quar["path"].value_counts()
    files = count_excluded(files, verdicts.excluded)
    files["accepted"] = files["path"].map(acc_counts).fillna(0).astype(int)
    files["quarantined"] = files["path"].map(q_counts).fillna(0).astype(int)
    return files


HISTORY_COLUMNS = ["path", "provider", "feed", "delivered_on", "status", "received"]


def _count(value) -> int:
    """A row count from a files row: missing, NaN or not a number counts as 0."""
    try:
        n = float(value)
    except (TypeError, ValueError):
        return 0
    return int(n) if np.isfinite(n) else 0


def decide_gates(
    files: pd.DataFrame, history: pd.DataFrame, verdicts: StagedVerdicts, cat: Catalogue, as_of
) -> list[GateResult]:
    """Every gate of the night, per file and per feed; the hard ones that fail stop the run. Any
    input may be empty or hold a file whose every row was refused: the gates then decide (a share
    of 100 %, a feed not delivered), they never fail to."""
    history = (
        history.reindex(columns=sorted(set(history.columns) | set(HISTORY_COLUMNS)))
        if history is not None
        else pd.DataFrame(columns=HISTORY_COLUMNS)
    )
    files = files.reindex(
        columns=sorted(set(files.columns) | {"path", "status"} | set(HISTORY_COLUMNS))
    )
    gates: list[GateResult] = []
    for f in files.itertuples():
        if f.status == "rejected":
            continue
        gates += _file_gates(f, history, cat)
    delivered = pd.concat(
        [
            history[history["status"].isin(["stored", "same_content"])][
                ["provider", "feed", "delivered_on"]
            ],
            files[files["status"] != "rejected"][["provider", "feed", "delivered_on"]],
        ]
    )
    gates += gate_feeds_present(cat, delivered, as_of)
    for table, suite in (
        ("entities", "stg_entity"),
        ("records", "stg_record"),
        ("changes", "stg_change"),
    ):
        v = verdicts.validations.get(table)
        if v is not None:
            gates.append(
                GateResult(
                    "expectations_ran",
                    suite,
                    True,
                    v.success,
                    message="" if v.success else "an expectation raised an error",
                )
            )
    return gates


def _file_gates(f, history: pd.DataFrame, cat: Catalogue) -> list[GateResult]:
    """One file's gates: reconciliation, schema, quarantine share, row count."""
    received, accepted, quarantined = (
        _count(getattr(f, c, 0)) for c in ("received", "accepted", "quarantined")
    )
    excluded = _count(getattr(f, "excluded", 0))  # repeats of an earlier delivery
    simplified = _count(getattr(f, "simplified", 0))  # not public credit information (Art. 18)
    withdrawn = _count(getattr(f, "withdrawn", 0))  # a snapshot's withdrawals, staged beside
    balanced = received + withdrawn == accepted + quarantined + excluded + simplified
    gates = [
        GateResult(
            "reconciliation",
            f.path,
            True,
            balanced,
            observed=f"{received}+{withdrawn}={accepted}+{quarantined}+{excluded}+{simplified}",
            threshold="received + withdrawn = accepted + quarantined + excluded + simplified",
            message="" if balanced else "rows unaccounted for",
        )
    ]
    if simplified:  # counted and reported, never a bad row
        gates.append(
            GateResult(
                "excluded_simplified_procedure",
                f.path,
                False,
                True,
                observed=str(simplified),
                threshold="not public credit information",
                message=SIMPLIFIED_REASON,
            )
        )
    if f.status == "same_content":
        return gates  # a repeat of a delivery already judged: nothing else to gate
    note = f.message if isinstance(getattr(f, "message", None), str) else ""
    missing = note.removeprefix(MISSING_COLUMNS) if note.startswith(MISSING_COLUMNS) else ""
    gates.append(gate_schema(f.path, [m for m in missing.split(",") if m]))
    gates.append(
        gate_quarantine_share(
            f.path,
            received - excluded + _count(getattr(f, "unchanged", 0)) - simplified,  # all it sent
            quarantined,
            float(cat.gates["max_quarantine_share"]),
            int(cat.gates.get("min_rows_for_share_gate", 0)),
        )
    )
    stored = history[history["status"] == "stored"]
    if note.startswith("correction of"):
        # A correction is judged against the file it replaces, not against the feed's daily size
        # (a corrected history load is as large as the load).
        hist = stored[stored["path"] == f.path].sort_values("delivered_on")
        counts = [_count(v) for v in hist["received"]][-1:]
        gates.append(gate_row_count(f.path, received, counts, cat.gates, min_history=1))
    else:
        hist = stored[(stored["provider"] == f.provider) & (stored["feed"] == f.feed)].sort_values(
            "delivered_on"
        )
        gates.append(
            gate_row_count(f.path, received, [_count(v) for v in hist["received"]], cat.gates)
        )
    return gates


def hard_failures(gates: list[GateResult]) -> list[GateResult]:
    return [g for g in gates if g.hard and not g.passed]


def accepted_tables(verdicts: StagedVerdicts) -> dict[str, pd.DataFrame]:
    """What goes into the record history: accepted rows without the gate's working columns."""
    rec, ent, chg = (verdicts.accepted(t) for t in ("records", "entities", "changes"))
    exc = verdicts.excluded
    return {
        "records": rec.drop(columns=["seen_before", "registered_date", "bad_values"])
        if len(rec)
        else rec,
        "entities": ent.drop(columns=["seen_before", "bad_values"]) if len(ent) else ent,
        "changes": chg[CHANGE_COLUMNS] if len(chg) else chg,
        "exclusions": exc.drop(columns=[c for c in ("bad_values",) if c in exc]),
    }


def gate_summary(gates: pd.DataFrame) -> dict:
    """Gate outcomes as the manifest records them."""
    return {
        "checked": int(len(gates)),
        "hard_failed": int((~gates["passed"].astype(bool) & gates["hard"].astype(bool)).sum()),
        "by_gate": {k: int(v) for k, v in gates.groupby("gate").size().sort_index().items()},
    }


def gate_schema(path: str, missing_required: list[str]) -> GateResult:
    return GateResult(
        "schema",
        path,
        True,
        not missing_required,
        observed=",".join(missing_required) or "ok",
        threshold="all required columns",
        message=f"missing required columns: {', '.join(missing_required)}"
        if missing_required
        else "",
    )


def gate_quarantine_share(
    path: str, received: int, quarantined: int, max_share: float, min_rows: int = 0
) -> GateResult:
    share = quarantined / received if received else 0.0
    if received < min_rows:
        return GateResult(
            "quarantine_share",
            path,
            True,
            True,
            observed=f"{share:.4f}",
            threshold=f"not judged below {min_rows} rows",
        )
    return GateResult(
        "quarantine_share",
        path,
        True,
        share <= max_share,
        observed=f"{share:.4f}",
        threshold=f"<= {max_share}",
        message=(
            f"{quarantined} of {received} rows quarantined ({share:.1%})"
            if share > max_share
            else ""
        ),
    )


def gate_row_count(
    scope: str, rows: int, history: list[int], cfg: dict, min_history: int = 3
) -> GateResult:
    hist = [h for h in history if h > 0][-int(cfg["row_count_history_runs"]) :]
    if len(hist) < min_history or rows < int(cfg["min_rows_for_count_gate"]):
        return GateResult(
            "row_count", scope, True, True, observed=str(rows), threshold="too little history"
        )
    med = float(np.median(hist))
    ratio = float(cfg["row_count_max_ratio"])
    ok = med / ratio <= rows <= med * ratio
    return GateResult(
        "row_count",
        scope,
        True,
        ok,
        observed=str(rows),
        threshold=f"{med / ratio:.0f}..{med * ratio:.0f}",
        message="" if ok else f"{rows} rows against a recent median of {med:.0f}",
    )
