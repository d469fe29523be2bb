"""Run report section for a policy's first month in force: the migration from the previous policy on
this night's own inputs, and the tier shares beside the published reference."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from scoring.common.catalogue import Catalogue
from scoring.evaluation.evaluate import Policy, evaluate_inputs
from scoring.evaluation.migration import TIERS, compare
from scoring.history import policy_registry
from scoring.history.folders import RunFolder
from scoring.history.inputs import load_inputs
from scoring.reporting.migration_plot import plot_matrix
from scoring.reporting.reference import citation_html, load_reference

WINDOW_DAYS = 31  # how long after a policy change the run report shows the migration
PREVIOUS_POLICY_FILE = RunFolder.PREVIOUS_POLICY


def previous_policy(as_of, policy_sha256: str | None, registry: list[dict]):
    """(entry in force, previous entry, previous Policy) when ``as_of`` is in the first month of the
    policy a run used; None otherwise (no earlier policy, or the run used another policy: a --policy
    file). ``registry``: the policy registry's entries as the run knew them."""
    as_of = pd.Timestamp(str(as_of))
    day = str(as_of.date())
    in_force = sorted(
        (e for e in registry if e["effective_from"] <= day),
        key=lambda e: (e["effective_from"], e["entry_id"]),
    )
    if len(in_force) < 2 or in_force[-1]["sha256"] != policy_sha256:
        return None
    cur, prev = in_force[-1], in_force[-2]
    if (as_of - pd.Timestamp(cur["effective_from"])).days > WINDOW_DAYS:
        return None
    return cur, prev, Policy.from_doc(prev["document"])


def run_registry(store, run: dict) -> list[dict]:
    """The policy registry as a run knew it (its manifest says how far; all of it for a run from
    before the registry)."""
    manifest = json.loads(run["manifest_json"]) if run.get("manifest_json") else {}
    known_to = (manifest.get("policy_approval") or {}).get("registry_known_to")
    with store.engine.connect() as conn:
        return policy_registry.entries(conn, known_to)


def policy_change_section(store, run: dict, results: pd.DataFrame, folder: Path) -> str:
    """HTML for the report, or '' when the run is not in the first month of a policy from the history."""
    as_of = pd.Timestamp(str(run["as_of"]))
    found = previous_policy(as_of, run.get("policy_sha256"), run_registry(store, run))
    if found is None:
        return ""
    cur, prev, old_policy = found
    manifest = json.loads(run["manifest_json"])
    cat = Catalogue.in_force(as_of)
    if cat.sha256 != manifest.get("catalogue_sha256"):
        return ""
    scored = (
        Path(folder) / PREVIOUS_POLICY_FILE
    )  # evaluated beside the night's own, partition by partition
    if scored.exists():
        old = pd.read_parquet(scored)
    else:
        with store.engine.connect() as conn:
            ent, rec, chg, _ = load_inputs(
                store,
                conn,
                manifest["knowledge_cutoff"],
                batch_ids=[b["batch_id"] for b in manifest["input_batches"]],
            )
        old = evaluate_inputs(ent, rec, chg, cat, old_policy, as_of)
    m = compare(old, results)
    m.update(
        as_of=str(as_of.date()),
        old={"file": prev["policy"], "label": old_policy.doc.get("version_label", "")},
        new={
            "file": cur["policy"],
            "label": cur["document"].get("version_label", ""),
        },
    )
    png = Path(folder) / "policy_migration.png"
    plot_matrix(m, png)
    ref = load_reference()["reference"]
    rows = "".join(
        f"<tr><td>{t}</td><td>{m['old_shares'][t]:.1%}</td><td>{m['new_shares'][t]:.1%}</td>"
        f"<td>{ref['shares'][t]:.1%}</td></tr>"
        for t in TIERS
    )
    note = f"{html.escape(ref['label'])} — {citation_html(ref)}"
    approved = html.escape(f"{cur.get('approved_by', '')}: {cur.get('reason', '')}")
    return (
        f"<h2>政策变更 Policy change: {html.escape(prev['policy'])} → {html.escape(cur['policy'])} "
        f"(in force from {cur['effective_from']})</h2>"
        f"<p>Approved by {approved}. The same inputs under the previous policy and under this night's: "
        f"{m['up']:,} entities in a better tier, {m['down']:,} in a worse one, {m['movers_2plus']:,} "
        f"move two tiers or more (<code>credit policy diff</code> lists them with reasons).</p>"
        f"<img alt='migration matrix' src='data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}'>"
        f"<table border=1 cellspacing=0 cellpadding=3><tr><th>tier</th><th>previous policy</th><th>this night</th>"
        f"<th>reference</th></tr>{rows}</table><p>Reference: {note}.</p>"
    )
