"""Audit reruns (Art. 41): recompute a past evaluation byte for byte from what was known then,
or with everything known now, and explain the difference.

A rerun reads only: the run's manifest, the content-addressed catalogue and policy it used, and
the immutable record batches. It writes only under CREDIT_HOME/audits/: it never publishes and
never touches stored runs.
"""

from __future__ import annotations

import html
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from scoring.common.catalogue import Catalogue
from scoring.common.config import content_hash
from scoring.common.errors import PipelineError
from scoring.evaluation import partitioned as part
from scoring.evaluation.evaluate import Policy
from scoring.history import policy_registry
from scoring.history.inputs import visible_inputs
from scoring.history.store import Store, artifacts, runs

MODES = ("as-known-then", "as-known-now")
COMPARED = ["score", "tier", "override", "flags", "reasons"]
FAR_FUTURE = "9999-12-31"


def _load_run(store, run_id: str) -> tuple[dict, dict]:
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
        if row is None or not row.manifest_json:
            known = (
                conn.execute(
                    sa.select(runs.c.run_id)
                    .where(runs.c.manifest_json.is_not(None))
                    .order_by(runs.c.as_of.desc(), runs.c.run_id.desc())
                    .limit(12)
                )
                .scalars()
                .all()
            )
            raise PipelineError(
                f"no scored run {run_id!r} to rerun; scored runs: "
                + (", ".join(known) + (" …" if len(known) == 12 else "") if known else "none")
            )
    return dict(row._mapping), json.loads(row.manifest_json)


def _artifact(conn, sha: str) -> dict:
    text = conn.execute(
        sa.select(artifacts.c.content_json).where(artifacts.c.sha256 == sha)
    ).scalar()
    if text is None:
        raise PipelineError(f"artifact {sha[:12]}… is missing from the store")
    doc = json.loads(text)
    if content_hash(doc) != sha:
        raise PipelineError(f"artifact {sha[:12]}… does not match its hash")
    return doc


def _policy_of_run(conn, manifest: dict, mode: str) -> Policy:
    """The policy a rerun evaluates with: the one the policy registry puts in force on the night,
    as the run knew the registry (as known then) or as it stands (now). A run that used a policy
    file directly (no approval in its manifest) reruns with that file's stored copy; a run from
    before the registry gets the policy it used and the registry entry that approved it, if any."""
    approved = manifest.get("policy_approval")
    if "policy_approval" in manifest and approved is None:
        return Policy.from_doc(_artifact(conn, manifest["policy_sha256"]))
    known_to = approved["registry_known_to"] if approved and mode == "as-known-then" else None
    pol = Policy.in_force(manifest["as_of"], policy_registry.entries(conn, known_to))
    if approved is None and pol.sha256 != manifest["policy_sha256"]:
        stored = Policy.from_doc(_artifact(conn, manifest["policy_sha256"]))
        return replace(stored, approval=None)
    if mode == "as-known-then" and pol.sha256 != manifest["policy_sha256"]:
        raise PipelineError(
            f"the policy registry as known then gives policy {pol.sha256[:12]}, not the "
            f"{manifest['policy_sha256'][:12]} the run used"
        )
    return pol


def rerun(
    run_id: str,
    mode: str = "as-known-then",
    db_url: str | None = None,
    home: Path | None = None,
    progress=None,
) -> dict:

    if mode not in MODES:
        raise PipelineError(f"mode must be one of {', '.join(MODES)}")
    say = progress or (lambda m: None)
    store = Store.open(db_url, home)
    run, manifest = _load_run(store, run_id)
    t0 = time.perf_counter()
    with store.engine.connect() as conn:
        cat = Catalogue.from_doc(_artifact(conn, manifest["catalogue_sha256"]))
        pol = _policy_of_run(conn, manifest, mode)
        batches = _input_batches(store, conn, manifest, mode)
    folder = store.home / "audits" / run_id / mode
    # The same partitioned evaluation as the night (any partition count gives the same bytes).
    store.verify_batches(batches)
    plan = part.make_plan(
        batches, part.auto_partitions(batches), manifest["as_of"], cat.sha256, pol.sha256
    )
    work = folder / "partitions"
    shutil.rmtree(work, ignore_errors=True)
    say(f"rerun {run_id} ({mode}): {len(batches)} batches in {plan['partitions']} partition(s)")
    workers = 1 if part.in_one_process(plan) else None  # as the night: piece after piece here
    worker_peak = part.evaluate_partitions(
        store, plan, cat, pol, work, f"rerun-{run_id}", workers=workers, say=say
    )
    folder.mkdir(parents=True, exist_ok=True)
    out_sha = part.canonical_sha256(plan, work, folder / "entity_score.csv")
    identical = out_sha == manifest["output_sha256"]
    # Same canonical bytes: no entity can differ, and the province's rows need not be assembled.
    results = None if identical else part.assemble(plan, work, "entity_score")
    shutil.rmtree(work, ignore_errors=True)
    seconds = time.perf_counter() - t0
    input_sha = content_hash([[b["batch_id"], b["sha256"]] for b in batches])
    if identical:
        empty = pd.DataFrame(columns=["uscc"] + COMPARED)
        diff = diff_results(empty, empty)
    else:
        with store.engine.connect() as conn:
            diff = diff_results(store.read_run_results(conn, run_id, manifest), results)
    out = {
        "run_id": run_id,
        "mode": mode,
        "as_of": manifest["as_of"],
        "knowledge_cutoff": manifest["knowledge_cutoff"] if mode == "as-known-then" else "now",
        "identical": identical,
        "output_sha256": out_sha,
        "partitions": plan["partitions"],
        "original_output_sha256": manifest["output_sha256"],
        "input_sha256": input_sha,
        "original_input_sha256": manifest["input_sha256"],
        "changed_entities": sorted(diff["uscc"].unique().tolist()),
        "rerun_seconds": round(seconds, 3),
        "original_score_seconds": manifest.get("timings", {}).get("score_seconds"),
        "peak_rss_gb": {"process": part.own_peak_rss_gb(), "largest_worker": worker_peak},
        # The run's operator waivers, as its manifest recorded them: the rerun stands on the same decision.
        "waivers": manifest.get("waivers", []),
        # Which approval put the policy in force (registry entry, approver, date, diff).
        "policy_sha256": pol.sha256,
        "policy_approval": pol.approval,
    }
    if mode == "as-known-then" and not identical:
        out["input_changed"] = out["input_sha256"] != out["original_input_sha256"]
    causes = (
        _causes(store, diff, batches, manifest)
        if mode == "as-known-now" and len(diff)
        else pd.DataFrame()
    )
    (folder / "rerun.json").write_text(
        json.dumps(out, ensure_ascii=False, indent=1, sort_keys=True)
    )
    diff.to_csv(folder / "diff.csv", index=False, encoding="utf-8-sig")
    causes.to_csv(folder / "causes.csv", index=False, encoding="utf-8-sig")
    out["report"] = str(write_auditor_report(folder, run, manifest, out, diff, causes))
    return out


def _input_batches(store, conn, manifest: dict, mode: str) -> list[dict]:
    """The batches the rerun reads: the night's own (all of them still stored), or all known now."""
    if mode != "as-known-then":
        return visible_inputs(store, conn, FAR_FUTURE)
    ids = [b["batch_id"] for b in manifest["input_batches"]]
    batches = visible_inputs(store, conn, manifest["knowledge_cutoff"], batch_ids=ids)
    missing = sorted(set(ids) - {b["batch_id"] for b in batches})
    if missing:
        raise PipelineError(f"input batches missing from the store: {', '.join(missing[:3])}")
    return batches


def _causes(store, diff: pd.DataFrame, batches: list[dict], manifest: dict) -> pd.DataFrame:
    """The records learned since the night that made the changed entities differ."""
    original_ids = {b["batch_id"] for b in manifest["input_batches"]}
    orig = [b for b in batches if b["batch_id"] in original_ids and b["table_name"] == "records"]
    had = set(store.read_batches(orig, columns=["record_key"])["record_key"]) if orig else set()
    changed = sorted(set(diff["uscc"]))
    rec = store.read_batches(
        [b for b in batches if b["table_name"] == "records"],
        where_in=("uscc", changed),
        verified=True,
    )
    if len(rec):
        rec = rec.drop_duplicates("record_key", keep="last").sort_values(
            "record_key", ignore_index=True
        )
    chg = store.read_batches([b for b in batches if b["table_name"] == "changes"], verified=True)
    return explain_causes(diff, rec, chg, original_ids, manifest["as_of"], had)


def diff_results(stored: pd.DataFrame, now: pd.DataFrame) -> pd.DataFrame:
    """Entities whose score, tier, override, flags or reasons differ (or appear/disappear)."""
    cols = ["uscc"] + COMPARED
    a = stored[cols].astype({c: str for c in COMPARED})
    b = now[cols].astype({c: str for c in COMPARED})
    m = a.merge(b, on="uscc", how="outer", suffixes=("_then", "_now"), indicator=True)
    changed = m["_merge"] != "both"
    for c in COMPARED:
        changed |= m[f"{c}_then"].fillna("") != m[f"{c}_now"].fillna("")
    d = m[changed].drop(columns="_merge").sort_values("uscc", ignore_index=True)
    return d


def explain_causes(
    diff: pd.DataFrame,
    rec: pd.DataFrame,
    chg: pd.DataFrame,
    original_ids: set,
    as_of,
    had: set = frozenset(),
) -> pd.DataFrame:
    """Records and changes learned after the original run that touch each changed entity (``had``:
    the record keys the original run knew, so a new version of one is a re-delivery)."""
    changed = set(diff["uscc"])
    parts = []
    if len(rec):
        late = rec[~rec["batch_id"].isin(original_ids) & rec["uscc"].isin(changed)]
        late = late[pd.to_datetime(late["decision_date"]) <= pd.Timestamp(as_of)]
        # A new version of a record already known (a provider's correction, a listing's removal)
        # is a re-delivery, not a late one.
        cause = np.where(late["record_key"].isin(had), "redelivery", "late_delivery")
        parts.append(
            pd.DataFrame(
                {
                    "uscc": late["uscc"],
                    "cause": cause,
                    "record_key": late["record_key"],
                    "item_code": late["item_code"],
                    "effective_date": late["decision_date"],
                    "known_from": late["known_from"],
                    "source": late["source_file"] + ":" + late["line_no"].astype(str),
                }
            )
        )
    if len(chg):
        new = chg[~chg["batch_id"].isin(original_ids) & chg["subject_code"].isin(changed)]
        parts.append(
            pd.DataFrame(
                {
                    "uscc": new["subject_code"],
                    "cause": new["op"].map(
                        {
                            "correct": "correction",
                            "revoke": "revocation",
                            "objection_filed": "objection_filed",
                            "objection": "objection",
                            "objection_closed": "objection_closed",
                            "repair": "repair",
                        }
                    ),
                    "record_key": new["record_key"],
                    "item_code": new["item_code"],
                    "effective_date": new["effective_date"],
                    "known_from": new["known_from"],
                    "source": new["source_file"] + ":" + new["line_no"].astype(str),
                }
            )
        )
    if not parts:
        return pd.DataFrame(
            columns=[
                "uscc",
                "cause",
                "record_key",
                "item_code",
                "effective_date",
                "known_from",
                "source",
            ]
        )
    return pd.concat(parts, ignore_index=True).sort_values(
        ["uscc", "known_from", "record_key"], ignore_index=True
    )


def write_auditor_report(
    folder: Path, run: dict, manifest: dict, out: dict, diff: pd.DataFrame, causes: pd.DataFrame
) -> Path:
    verdict = (
        "<p class='ok'>IDENTICAL — the rerun reproduces the original output byte for byte.</p>"
        if out["identical"]
        else f"<p class='fail'>DIFFERENT — {len(out['changed_entities'])} entities differ.</p>"
    )
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(json.dumps(v, ensure_ascii=False))}</td></tr>"
        for k, v in sorted(manifest.items())
        if k != "input_batches"
    )
    parts = [
        "<html><head><meta charset='utf-8'><title>审计复算 Audit rerun</title><style>"
        "body{font-family:'Noto Sans CJK SC',sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:3px 6px;"
        "font-size:12px;text-align:left}table{border-collapse:collapse}.ok{color:#070;font-weight:bold}"
        ".fail{color:#b00;font-weight:bold}</style></head><body>",
        f"<h1>审计复算 Audit rerun — {html.escape(out['run_id'])} ({html.escape(out['mode'])})</h1>",
        verdict,
        f"<p>output_sha256 now <code>{out['output_sha256']}</code>, original "
        f"<code>{out['original_output_sha256']}</code>; rerun {out['rerun_seconds']} s "
        f"(original scoring {out['original_score_seconds']} s)</p>",
        "".join(
            f"<p class='fail'>The original run was published under an operator waiver: gate "
            f"{html.escape(w['gate'])} scope {html.escape(w['scope'])}, approved by "
            f"{html.escape(w['approver'])} — {html.escape(w['reason'])} (covered: "
            f"{html.escape(', '.join(w.get('covered', [])) or 'nothing')})</p>"
            for w in manifest.get("waivers", [])
        ),
        "<h2>Run manifest</h2><table>" + rows + "</table>",
        f"<p>{len(manifest['input_batches'])} input batches, each verified against its sha256.</p>",
        "<h2>差异 Differences</h2>" + (diff.to_html(index=False) if len(diff) else "<p>none</p>"),
        "<h2>原因 Causes (records and changes learned after the original run)</h2>"
        + (causes.to_html(index=False) if len(causes) else "<p>none</p>"),
        "<p>Drill down: <code>credit explain USCC --run "
        + html.escape(out["run_id"])
        + "</code></p>",
        "</body></html>",
    ]
    path = folder / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def rerun_summary(
    run_id: str, mode: str = "as-known-then", db_url: str | None = None, home: Path | None = None
) -> dict:
    """A rerun, as the audit DAG's task log shows it: identical or not, and how many entities
    changed."""
    out = rerun(run_id, mode, db_url=db_url, home=home)
    return {
        k: out[k] for k in ("run_id", "mode", "identical", "output_sha256", "partitions", "report")
    } | {"changed_entities": len(out["changed_entities"])}
