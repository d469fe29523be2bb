"""The nightly pipeline, defined once: ingest → gate → score → publish → report.

Both the Airflow DAG and ``credit run`` call these steps by name. Each step is a transaction
keyed on the run id (derived from the as-of date): it replaces its own outputs, so a retry or a
rerun of the same night gives the same result and never leaves partial output behind. Steps pass
nothing but the run context; data moves through the store and the run folder.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import sqlalchemy as sa

from . import __version__
from .catalogue import DEFAULT_CATALOGUE, Catalogue, canonical_json, content_hash
from .evaluate import Policy
from .steps import STEP_NAMES

log = logging.getLogger(__name__)



MISSING_COLUMNS = "missing required columns: "


class PipelineError(Exception):
    """A step could not complete; the message is one line for the operator."""


class GateFailed(PipelineError):
    """A hard gate failed: the run stops before scoring and nothing is published."""


@dataclass
class RunContext:
    as_of: dt.date
    landing: Path
    home: Path
    db_url: str | None = None
    knowledge_cutoff: dt.date | None = None
    catalogue_path: Path = DEFAULT_CATALOGUE
    policy_path: Path | None = None        # None: the policy in force on the as-of date
    kind: str = "nightly"
    progress: Callable[[str], None] | None = field(default=None, repr=False)

    def __post_init__(self):
        self.as_of = _as_date(self.as_of)
        self.knowledge_cutoff = _as_date(self.knowledge_cutoff or self.as_of)
        self.landing = Path(self.landing).resolve()
        self.home = Path(self.home).resolve()

    @property
    def run_id(self) -> str:
        rid = f"{self.kind}-{self.as_of:%Y%m%d}"
        if self.knowledge_cutoff != self.as_of:
            rid += f"-k{self.knowledge_cutoff:%Y%m%d}"
        return rid

    def say(self, msg: str) -> None:
        log.info(msg)
        if self.progress:
            self.progress(msg)

    def to_json(self) -> str:
        """The context as a small JSON document (what an orchestrator passes between tasks)."""
        d = {k: (str(v) if v is not None else None) for k, v in asdict(self).items() if k != "progress"}
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "RunContext":
        d = json.loads(text)
        return cls(as_of=d["as_of"], landing=Path(d["landing"]), home=Path(d["home"]), db_url=d.get("db_url"),
                   knowledge_cutoff=d.get("knowledge_cutoff"),
                   catalogue_path=Path(d["catalogue_path"]),
                   policy_path=Path(d["policy_path"]) if d.get("policy_path") else None,
                   kind=d.get("kind", "nightly"))


def _as_date(v) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    return dt.date.fromisoformat(str(v))


def _open(ctx: RunContext):
    from .store import Store

    return Store.open(ctx.db_url, ctx.home)


def _configs(ctx: RunContext) -> tuple[Catalogue, Policy]:
    policy = (Policy.load(ctx.policy_path) if ctx.policy_path
              else Policy.in_force(ctx.as_of, promoted=ctx.home / "policy" / "history.json"))
    return Catalogue.load(ctx.catalogue_path), policy


def _update_run(conn, run_id: str, **values) -> None:
    from .store import runs

    conn.execute(sa.update(runs).where(runs.c.run_id == run_id).values(**values))


def _run_row(conn, run_id: str) -> dict | None:
    from .store import runs

    row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
    return dict(row._mapping) if row else None


# --------------------------------------------------------------------------- ingest

def ingest(ctx: RunContext) -> dict:
    """Read the deliveries due by the as-of date that no earlier run has stored, and stage them."""
    from . import ingest as ing
    from .store import landed_files, runs

    store = _open(ctx)
    cat, pol = _configs(ctx)
    rdir = store.run_dir(ctx.run_id)
    (rdir / "staged").mkdir(parents=True, exist_ok=True)
    with store.engine.begin() as conn:
        conn.execute(sa.delete(runs).where(runs.c.run_id == ctx.run_id))
        conn.execute(runs.insert().values(
            run_id=ctx.run_id, kind=ctx.kind, as_of=ctx.as_of, knowledge_cutoff=ctx.knowledge_cutoff,
            status="running", step="ingest", catalogue_sha256=cat.sha256, policy_sha256=pol.sha256))
        conn.execute(sa.delete(landed_files).where(landed_files.c.run_id == ctx.run_id))
        done = {r.sha256 for r in conn.execute(
            sa.select(landed_files.c.sha256).where(landed_files.c.status.in_(["stored", "rejected"]))
            .where(landed_files.c.run_id != ctx.run_id))}
        store.save_artifact(conn, "catalogue", cat.sha256, canonical_json(cat.doc), cat.doc.get("version_label", ""))
        store.save_artifact(conn, "policy", pol.sha256, canonical_json(pol.doc), pol.doc.get("version_label", ""))
    as_of = pd.Timestamp(ctx.as_of)
    files = ing.list_deliveries(ctx.landing, as_of)
    rec_frames, ent_frames, chg_frames, bad_frames, file_rows = [], [], [], [], []
    raw_index: dict[str, str] = {}  # provider's own columns per file, for quarantine rows
    (rdir / "staged" / "raw").mkdir(parents=True, exist_ok=True)
    for i, (path, delivered) in enumerate(files, start=1):
        rel = path.relative_to(ctx.landing).as_posix()
        delivered = delivered if delivered is not None else as_of
        row = {"run_id": ctx.run_id, "path": rel, "provider": path.parent.name, "delivered_on": delivered.date(),
               "sha256": "", "n_bytes": 0, "received": 0, "accepted": 0, "quarantined": 0}
        try:
            raw = ing.read_file(path, provider=path.parent.name,
                                max_cells=int(cat.gates["max_xlsx_cells"]), max_bytes=int(cat.gates["max_file_bytes"]))
        except ing.UnusableFile as exc:
            import hashlib

            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                digest = "unreadable:" + rel
            if digest in done:
                continue
            row.update(sha256=digest, status="rejected", reject_code=exc.code, message=str(exc))
            file_rows.append(row)
            ctx.say(f"[{i}/{len(files)}] {rel}: rejected — {exc}")
            continue
        if raw.sha256 in done:
            continue
        row.update(sha256=raw.sha256, n_bytes=raw.n_bytes, feed=raw.layout.feed, layout=raw.layout.id,
                   encoding=raw.encoding, file_format=raw.file_format, status="staged",
                   received=raw.received, message=(MISSING_COLUMNS + ",".join(raw.missing_required)
                                                   if raw.missing_required else None))
        file_rows.append(row)
        raw.path = rel
        if raw.missing_required:
            # A schema mismatch is a hard gate: the rows are held with the file, not staged.
            bad_frames.append(pd.DataFrame({"line_no": raw.rows["line_no"], "reason": "schema_mismatch",
                                            "raw": ing.raw_json(raw.raw), "path": rel, "provider": raw.provider}))
        elif raw.layout.feed == "register":
            ent_frames.append(ing.stage_entities(raw, delivered))
        elif raw.layout.feed == "credit_change":
            chg_frames.append(ing.stage_changes(raw, delivered))
        else:
            rec_frames.append(ing.stage_records(raw, cat, delivered))
        if len(raw.bad_rows):
            bad_frames.append(raw.bad_rows.assign(path=rel, provider=raw.provider))
        raw_index[rel] = f"{len(raw_index):05d}.parquet"
        _write_parquet(rdir / "staged" / "raw" / raw_index[rel], raw.raw)
        ctx.say(f"[{i}/{len(files)}] {rel}: {raw.layout.title}, {raw.encoding}, {raw.received:,} rows")
    (rdir / "staged" / "raw" / "index.json").write_text(json.dumps(raw_index, ensure_ascii=False, sort_keys=True))
    _write_parquet(rdir / "staged" / "stg_record.parquet", _concat(rec_frames))
    _write_parquet(rdir / "staged" / "stg_entity.parquet", _concat(ent_frames))
    _write_parquet(rdir / "staged" / "stg_change.parquet", _concat(chg_frames))
    _write_parquet(rdir / "staged" / "unparsed.parquet",
                   _concat(bad_frames, columns=["line_no", "reason", "raw", "path", "provider"]))
    with store.engine.begin() as conn:
        store.insert_frame(conn, landed_files, pd.DataFrame(file_rows))
        _update_run(conn, ctx.run_id, step="ingest")
    summary = {"run_id": ctx.run_id, "files": len(file_rows),
               "rejected": sum(1 for r in file_rows if r["status"] == "rejected"),
               "received": int(sum(r["received"] for r in file_rows))}
    ctx.say(f"ingest: {summary['files']} new files, {summary['received']:,} rows received, "
            f"{summary['rejected']} files rejected")
    return summary


def _concat(frames: list[pd.DataFrame], columns: list[str] | None = None) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=columns or [])
    return pd.concat(frames, ignore_index=True)


def _write_parquet(path: Path, frame: pd.DataFrame) -> None:
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)


def _read_parquet(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.exists() else pd.DataFrame()


# --------------------------------------------------------------------------- gate

def gate(ctx: RunContext) -> dict:
    """Validate staged rows with the GX suites, quarantine bad rows, reconcile, apply hard gates,
    and only if every hard gate passes append the accepted rows to the record history."""
    from . import quality
    from .ingest import record_key
    from .store import gate_results, landed_files, quarantine, record_batches

    store = _open(ctx)
    cat, _ = _configs(ctx)
    rdir = store.run_dir(ctx.run_id)
    stg_rec = _read_parquet(rdir / "staged" / "stg_record.parquet")
    stg_ent = _read_parquet(rdir / "staged" / "stg_entity.parquet")
    stg_chg = _read_parquet(rdir / "staged" / "stg_change.parquet")
    unparsed = _read_parquet(rdir / "staged" / "unparsed.parquet")
    as_of = ctx.as_of.isoformat()
    gx_ctx = quality.gx_context(rdir / "gx")

    with store.engine.connect() as conn:
        prior_batches_rec = [b for b in store.visible_batches(conn, "records", ctx.knowledge_cutoff) if b["run_id"] != ctx.run_id]
        prior_batches_ent = [b for b in store.visible_batches(conn, "entities", ctx.knowledge_cutoff) if b["run_id"] != ctx.run_id]
        prior_batches_chg = [b for b in store.visible_batches(conn, "changes", ctx.knowledge_cutoff) if b["run_id"] != ctx.run_id]
        files = pd.read_sql(sa.select(landed_files).where(landed_files.c.run_id == ctx.run_id), conn)
        history = pd.read_sql(sa.select(landed_files.c.provider, landed_files.c.feed, landed_files.c.delivered_on,
                                        landed_files.c.received, landed_files.c.status), conn)
    stored_ent = store.read_batches(prior_batches_ent)
    stored_rec = store.read_batches(prior_batches_rec, columns=["record_key", "item_code", "decision_date"])
    stored_keys = set(stored_rec["record_key"]) if len(stored_rec) else set()
    stored_chg = store.read_batches(prior_batches_chg, columns=["change_key"])

    # Register first: records are checked against registration dates.
    if len(stg_ent):
        stg_ent["seen_before"] = False
        ctx.say(f"gate: validating {len(stg_ent):,} register rows (suite stg_entity)")
        v_ent = quality.validate_table(gx_ctx, "stg_entity", stg_ent, cat, as_of, ctx.run_id, with_docs=True)
        ent_reasons = v_ent.reasons
    else:
        v_ent, ent_reasons = None, pd.Series([], dtype="string")
    acc_ent = stg_ent[ent_reasons == ""] if len(stg_ent) else stg_ent
    reg = pd.concat([stored_ent[["uscc", "registered_date"]] if len(stored_ent) else pd.DataFrame(columns=["uscc", "registered_date"]),
                     acc_ent[["uscc", "registered_date"]] if len(acc_ent) else pd.DataFrame(columns=["uscc", "registered_date"])],
                    ignore_index=True).drop_duplicates("uscc", keep="last")
    if len(stg_rec):
        stg_rec["record_key"] = record_key(stg_rec)
        stg_rec["seen_before"] = stg_rec["record_key"].isin(stored_keys)
        reg_map = reg.set_index("uscc")["registered_date"] if len(reg) else pd.Series(dtype="datetime64[s]")
        stg_rec["registered_date"] = pd.to_datetime(stg_rec["uscc"].map(reg_map)).astype("datetime64[s]")
        ctx.say(f"gate: validating {len(stg_rec):,} record rows (suite stg_record)")
        v_rec = quality.validate_table(gx_ctx, "stg_record", stg_rec, cat, as_of, ctx.run_id, with_docs=True)
        rec_reasons = v_rec.reasons
    else:
        v_rec, rec_reasons = None, pd.Series([], dtype="string")

    # Changes refer to records already accepted (earlier or in this run).
    if len(stg_chg):
        known = pd.concat([stored_rec[["record_key", "item_code", "decision_date"]] if len(stored_rec) else None,
                           stg_rec.loc[rec_reasons == "", ["record_key", "item_code", "decision_date"]]
                           if len(stg_rec) else None]).drop_duplicates("record_key", keep="last")
        stg_chg = annotate_changes(stg_chg, known, cat, set(stored_chg["change_key"]) if len(stored_chg) else set())
        ctx.say(f"gate: validating {len(stg_chg):,} change rows (suite stg_change)")
        v_chg = quality.validate_table(gx_ctx, "stg_change", stg_chg, cat, as_of, ctx.run_id, with_docs=True)
        chg_reasons = v_chg.reasons
    else:
        v_chg, chg_reasons = None, pd.Series([], dtype="string")

    q_parts = []
    for stg, reasons in ((stg_rec, rec_reasons), (stg_ent, ent_reasons), (stg_chg, chg_reasons)):
        if len(stg):
            bad = stg[reasons != ""]
            q_parts.append(pd.DataFrame({"path": bad["source_file"], "line_no": bad["line_no"],
                                         "provider": bad["provider"], "reasons": reasons[reasons != ""],
                                         "raw_json": _raw_values(rdir, bad)}))
    if len(unparsed):
        q_parts.append(pd.DataFrame({"path": unparsed["path"], "line_no": unparsed["line_no"],
                                     "provider": unparsed["provider"], "reasons": unparsed["reason"],
                                     "raw_json": unparsed["raw"]}))
    quar = _concat(q_parts, columns=["path", "line_no", "provider", "reasons", "raw_json"])
    quar = quar.sort_values(["path", "line_no"], ignore_index=True).assign(run_id=ctx.run_id)

    # Reconciliation per file: received = accepted + quarantined.
    acc_counts = pd.concat([stg.loc[reasons == "", "source_file"] if len(stg) else pd.Series(dtype=str)
                            for stg, reasons in ((stg_rec, rec_reasons), (stg_ent, ent_reasons),
                                                 (stg_chg, chg_reasons))]).value_counts()
    q_counts = quar["path"].value_counts()
    files["accepted"] = files["path"].map(acc_counts).fillna(0).astype(int)
    files["quarantined"] = files["path"].map(q_counts).fillna(0).astype(int)
    gates: list = []
    for f in files.itertuples():
        if f.status == "rejected":
            continue
        balanced = f.received == f.accepted + f.quarantined
        gates.append(quality.GateResult("reconciliation", f.path, True, balanced,
                                        observed=f"{f.received}={f.accepted}+{f.quarantined}",
                                        threshold="received = accepted + quarantined",
                                        message="" if balanced else "rows unaccounted for"))
        note = f.message if isinstance(f.message, str) else ""
        missing = note.removeprefix(MISSING_COLUMNS) if note.startswith(MISSING_COLUMNS) else ""
        gates.append(quality.gate_schema(f.path, [m for m in missing.split(",") if m]))
        gates.append(quality.gate_quarantine_share(f.path, f.received, f.quarantined,
                                                   float(cat.gates["max_quarantine_share"]),
                                                   int(cat.gates.get("min_rows_for_share_gate", 0))))
        hist = history[(history["provider"] == f.provider) & (history["feed"] == f.feed) &
                       (history["status"] == "stored")].sort_values("delivered_on")
        gates.append(quality.gate_row_count(f.path, int(f.received), hist["received"].tolist(), cat.gates))
    delivered = pd.concat([history[history["status"] == "stored"][["provider", "feed", "delivered_on"]],
                           files[files["status"] != "rejected"][["provider", "feed", "delivered_on"]]])
    gates += quality.gate_feeds_present(cat, delivered, ctx.as_of)
    for v, table in ((v_ent, "stg_entity"), (v_rec, "stg_record"), (v_chg, "stg_change")):
        if v is not None:
            gates.append(quality.GateResult("expectations_ran", table, True, v.success,
                                            message="" if v.success else "an expectation raised an error"))
    failed = [g for g in gates if g.hard and not g.passed]

    with store.engine.begin() as conn:
        conn.execute(sa.delete(quarantine).where(quarantine.c.run_id == ctx.run_id))
        conn.execute(sa.delete(gate_results).where(gate_results.c.run_id == ctx.run_id))
        conn.execute(sa.delete(record_batches).where(record_batches.c.run_id == ctx.run_id))
        store.insert_frame(conn, quarantine, quar)
        store.insert_frame(conn, gate_results, pd.DataFrame([g.as_row(ctx.run_id) for g in gates]))
        for f in files.itertuples():
            status = f.status if f.status == "rejected" else ("held" if failed else "stored")
            conn.execute(sa.update(landed_files)
                         .where((landed_files.c.run_id == ctx.run_id) & (landed_files.c.path == f.path))
                         .values(accepted=int(f.accepted), quarantined=int(f.quarantined), status=status))
        docs = {name: v.docs_index for name, v in (("stg_record", v_rec), ("stg_entity", v_ent), ("stg_change", v_chg))
                if v is not None}
        if failed:
            msg = "; ".join(f"{g.gate} {g.scope}: {g.message or g.observed}" for g in failed[:5])
            _update_run(conn, ctx.run_id, status="gate_failed", step="gate", message=msg)
        else:
            keep_rec = stg_rec[rec_reasons == ""].drop(columns=["seen_before", "registered_date", "bad_values"]) \
                if len(stg_rec) else stg_rec
            keep_ent = acc_ent.drop(columns=["seen_before", "bad_values"]) if len(acc_ent) else acc_ent
            keep_chg = stg_chg[chg_reasons == ""][CHANGE_COLUMNS] if len(stg_chg) else stg_chg
            batches = []
            for table, frame in (("records", keep_rec), ("entities", keep_ent), ("changes", keep_chg)):
                if len(frame):
                    frame = frame.rename(columns={"delivered_on": "known_from"})
                    batches.append(store.write_batch(ctx.run_id, table, frame, ctx.knowledge_cutoff))
            store.insert_frame(conn, record_batches, pd.DataFrame(batches))
            _update_run(conn, ctx.run_id, step="gate", status="running", message=None)
    (rdir / "data_docs.json").write_text(json.dumps(docs, indent=1))
    summary = {"run_id": ctx.run_id, "received": int(files["received"].sum()),
               "accepted": int(files["accepted"].sum()), "quarantined": int(files["quarantined"].sum()),
               "hard_gates_failed": [f"{g.gate}:{g.scope}" for g in failed]}
    ctx.say(f"gate: {summary['accepted']:,} accepted, {summary['quarantined']:,} quarantined, "
            f"{len(failed)} hard gates failed")
    if failed:
        raise GateFailed(f"run {ctx.run_id} stopped by hard gates: " +
                         "; ".join(f"{g.gate} {g.scope} ({g.message or g.observed})" for g in failed[:5]))
    return summary


CHANGE_COLUMNS = ["source_file", "line_no", "provider", "delivered_on", "op", "doc_number", "subject_code",
                  "item_code", "effective_date", "result", "new_decision_date", "new_publicity_end_date",
                  "record_key", "change_key"]


def annotate_changes(stg_chg: pd.DataFrame, known: pd.DataFrame, cat: Catalogue, stored_change_keys: set) -> pd.DataFrame:
    """Add what the stg_change contract checks: does the record exist, may it be repaired, and
    from when (the minimum publicity period under the rules in force on the repair date)."""
    c = stg_chg.copy()
    ref = known.set_index("record_key")
    c["record_known"] = c["record_key"].isin(ref.index)
    item = c["record_key"].map(ref["item_code"])
    decided = pd.to_datetime(c["record_key"].map(ref["decision_date"]))
    repairable = item.map({i["code"]: bool(i.get("repairable")) for i in cat.items}).fillna(True)
    c["repair_allowed"] = (c["op"] != "repair").fillna(True) | repairable.astype(bool)
    severity = item.map({i["code"]: i["severity"] for i in cat.items})
    rule_id = cat.rule_id_on(c["effective_date"].fillna(pd.Timestamp("1970-01-01")))
    rules = cat.rule_frame().set_index(["rule_id", "severity"])["min_months"]
    months = pd.Series([rules.get((r, s), 0) if isinstance(s, str) else 0 for r, s in zip(rule_id, severity)],
                       index=c.index)
    earliest = pd.Series(pd.NaT, index=c.index, dtype="datetime64[s]")
    is_repair = (c["op"] == "repair").fillna(False).to_numpy()
    for m in sorted(months[is_repair].unique()):
        sel = is_repair & (months == m).to_numpy()
        earliest[sel] = decided[sel] + pd.DateOffset(months=int(m))
    c["repair_earliest_date"] = earliest
    c["change_key"] = (c["record_key"].fillna("") + "|" + c["op"].fillna("") + "|"
                       + c["effective_date"].dt.strftime("%Y-%m-%d").fillna("")).astype("string")
    c["seen_before"] = c["change_key"].isin(stored_change_keys)
    return c


def _raw_values(rdir: Path, rows: pd.DataFrame) -> pd.Series:
    """The provider's own values (header → value) for these staged rows, read back per file."""
    from .ingest import raw_json

    index = json.loads((rdir / "staged" / "raw" / "index.json").read_text())
    out = pd.Series(pd.NA, index=rows.index, dtype="string")
    for path, part in rows.groupby("source_file", sort=True):
        raw = pd.read_parquet(rdir / "staged" / "raw" / index[path])
        raw = raw[raw["line_no"].isin(part["line_no"])]
        by_line = pd.Series(raw_json(raw).to_numpy(), index=raw["line_no"].to_numpy())
        out[part.index] = part["line_no"].map(by_line).to_numpy()
    return out


# --------------------------------------------------------------------------- score

def load_inputs(store, conn, knowledge_cutoff, batch_ids: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """Entities and records as known at the cutoff (or exactly the listed batches)."""
    batches = store.visible_batches(conn, "entities", knowledge_cutoff) + \
        store.visible_batches(conn, "records", knowledge_cutoff) + \
        store.visible_batches(conn, "changes", knowledge_cutoff)
    if batch_ids is not None:
        batches = [b for b in batches if b["batch_id"] in set(batch_ids)]
    ent = store.read_batches([b for b in batches if b["table_name"] == "entities"])
    rec = store.read_batches([b for b in batches if b["table_name"] == "records"])
    chg = store.read_batches([b for b in batches if b["table_name"] == "changes"])
    if len(ent):
        ent = ent.drop_duplicates("uscc", keep="last").sort_values("uscc", ignore_index=True)
    if len(rec):
        rec = rec.drop_duplicates("record_key", keep="last").sort_values("record_key", ignore_index=True)
    return ent, rec, chg, batches


def score(ctx: RunContext) -> dict:
    """Score every active entity as of the as-of date with what was known at the cutoff."""
    from . import evaluate, quality
    from .store import entity_results, runs, sha256_file

    t0 = time.perf_counter()
    store = _open(ctx)
    cat, pol = _configs(ctx)
    rdir = store.run_dir(ctx.run_id)
    with store.engine.connect() as conn:
        row = _run_row(conn, ctx.run_id)
        if row is None or row["status"] in ("gate_failed", "failed"):
            raise PipelineError(f"run {ctx.run_id} has not passed its gates; nothing to score")
        ent, rec, chg, batches = load_inputs(store, conn, ctx.knowledge_cutoff)
    if ent.empty:
        raise PipelineError(f"run {ctx.run_id}: no registered entities known by {ctx.knowledge_cutoff}")
    ctx.say(f"score: {len(ent):,} registered entities, {len(rec):,} records known by {ctx.knowledge_cutoff}")
    results = evaluate.evaluate_inputs(ent, rec, chg, cat, pol, ctx.as_of)
    t_score = time.perf_counter() - t0
    v = quality.validate_table(quality.gx_context(rdir / "gx"), "entity_score", results, cat,
                               ctx.as_of.isoformat(), ctx.run_id, with_docs=True)
    bad = int((v.reasons != "").sum())
    if bad or not v.success:
        with store.engine.begin() as conn:
            _update_run(conn, ctx.run_id, status="failed", step="score",
                        message=f"entity_score contract broken by {bad} rows")
        raise GateFailed(f"run {ctx.run_id}: the entity_score contract is broken by {bad} rows; nothing published")
    out_sha = evaluate.output_sha256(results)
    input_sha = content_hash([[b["batch_id"], b["sha256"]] for b in batches])
    tiers = evaluate.tier_counts(results)
    _write_parquet(rdir / "entity_score.parquet", results)
    _write_parquet(rdir / "active_entities.parquet", evaluate.active_entities(ent, ctx.as_of)[["uscc", "eval_class"]])
    (rdir / "entity_score.csv").write_bytes(evaluate.canonical_bytes(results))
    from .store import gate_results

    with store.engine.connect() as conn:
        g = pd.read_sql(sa.select(gate_results.c.gate, gate_results.c.passed, gate_results.c.hard)
                        .where(gate_results.c.run_id == ctx.run_id), conn)
    gates = {"checked": int(len(g)), "hard_failed": int((~g["passed"].astype(bool) & g["hard"].astype(bool)).sum()),
             "by_gate": {k: int(v) for k, v in g.groupby("gate").size().sort_index().items()}}
    manifest = build_manifest(ctx, cat, pol, batches, input_sha, out_sha, tiers, len(results),
                              {"score_seconds": round(t_score, 3)}, gates,
                              {"entity_score.parquet": sha256_file(rdir / "entity_score.parquet")})
    with store.engine.begin() as conn:
        # The manifest names these versions by hash: store them (content-addressed, never overwritten).
        store.save_artifact(conn, "catalogue", cat.sha256, canonical_json(cat.doc), cat.doc.get("version_label", ""))
        store.save_artifact(conn, "policy", pol.sha256, canonical_json(pol.doc), pol.doc.get("version_label", ""))
        conn.execute(sa.delete(entity_results).where(entity_results.c.run_id == ctx.run_id))
        store.insert_frame(conn, entity_results, results.assign(run_id=ctx.run_id))
        conn.execute(sa.update(runs).where(runs.c.run_id == ctx.run_id).values(
            status="scored", step="score", input_sha256=input_sha, output_sha256=out_sha,
            catalogue_sha256=cat.sha256, policy_sha256=pol.sha256,
            entities_scored=len(results), tiers_json=json.dumps(tiers), manifest_json=canonical_json(manifest)))
    (rdir / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True))
    ctx.say(f"score: {len(results):,} entities scored in {t_score:.1f}s; tiers {tiers}")
    return {"run_id": ctx.run_id, "entities_scored": len(results), "tiers": tiers, "output_sha256": out_sha}


def _code_commit() -> str | None:
    """The git commit of the code that ran, when it runs from a checkout."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def build_manifest(ctx, cat, pol, batches, input_sha, out_sha, tiers, n, timings, gates=None,
                   result_files=None) -> dict:
    from importlib import metadata as md

    deps = {}
    for name in ("pandas", "numpy", "pyarrow", "great-expectations", "scikit-learn", "sqlalchemy"):
        try:
            deps[name] = md.version(name)
        except md.PackageNotFoundError:
            deps[name] = None
    return {
        "run_id": ctx.run_id, "kind": ctx.kind, "as_of": ctx.as_of.isoformat(),
        "knowledge_cutoff": ctx.knowledge_cutoff.isoformat(),
        "catalogue_sha256": cat.sha256, "policy_sha256": pol.sha256, "model_sha256": None,
        "code_version": __version__, "code_commit": _code_commit(), "dependencies": deps,
        "gates": gates or {},
        "input_batches": [{"batch_id": b["batch_id"], "sha256": b["sha256"], "rows": b["rows"]} for b in batches],
        "input_sha256": input_sha, "output_sha256": out_sha, "output_schema": "entity_score/1",
        "entities_scored": n, "tiers": tiers, "timings": timings, "result_files": result_files or {},
    }


# --------------------------------------------------------------------------- publish, report

def publish(ctx: RunContext) -> dict:
    from . import publish as pub

    store = _open(ctx)
    with store.engine.connect() as conn:
        row = _run_row(conn, ctx.run_id)
    if row is None or row["status"] not in ("scored", "published"):
        raise PipelineError(f"run {ctx.run_id} is not scored (status {row and row['status']}); nothing published")
    out = pub.publish_run(store, ctx.run_id, progress=ctx.say)
    return out


def report(ctx: RunContext) -> dict:
    from . import report as rep

    store = _open(ctx)
    path = rep.write_run_report(store, ctx.run_id, ctx.landing)
    ctx.say(f"report: {path}")
    return {"run_id": ctx.run_id, "report": str(path)}


STEPS: dict[str, Callable[[RunContext], dict]] = {
    "ingest": ingest, "gate": gate, "score": score, "publish": publish, "report": report,
}
assert tuple(STEPS) == STEP_NAMES


def run_step(name: str, ctx: RunContext) -> dict:
    if name not in STEPS:
        raise PipelineError(f"unknown step {name!r}; steps are {', '.join(STEP_NAMES)}")
    return STEPS[name](ctx)


def run_summary(ctx: RunContext) -> dict:
    """What ``credit run --json`` prints: the run's state as stored."""
    from .store import publications

    store = _open(ctx)
    with store.engine.connect() as conn:
        row = _run_row(conn, ctx.run_id) or {}
        pubs = conn.execute(sa.select(publications.c.agency_id, publications.c.path)
                            .where(publications.c.run_id == ctx.run_id)
                            .order_by(publications.c.agency_id, publications.c.path)).all()
    tiers = json.loads(row["tiers_json"]) if row.get("tiers_json") else {t: 0 for t in "ABCD"}
    rdir = store.run_dir(ctx.run_id)
    return {
        "run_id": ctx.run_id, "status": row.get("status", "missing"), "as_of": ctx.as_of.isoformat(),
        "knowledge_cutoff": ctx.knowledge_cutoff.isoformat(),
        "entities_scored": int(row.get("entities_scored") or 0), "tiers": tiers,
        "output_sha256": row.get("output_sha256"), "message": row.get("message"),
        "published": [str(store.home / "outbox" / p.path) for p in pubs],
        "report": str(rdir / "report.html"), "db_url": _redact(store.url),
    }


def _redact(url: str) -> str:
    u = sa.engine.make_url(url)
    return u.render_as_string(hide_password=True)


def context_from_env(as_of, **overrides) -> RunContext:
    """Defaults for orchestrators: CREDIT_HOME, CREDIT_LANDING, CREDIT_DB_URL."""
    from .store import default_home

    home = Path(overrides.pop("home", None) or default_home())
    landing = overrides.pop("landing", None) or os.environ.get("CREDIT_LANDING") or home / "landing"
    db_url = overrides.pop("db_url", None) or os.environ.get("CREDIT_DB_URL")
    return RunContext(as_of=as_of, landing=Path(landing), home=home, db_url=db_url, **overrides)
