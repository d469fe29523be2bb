"""The run manifest: every hash an auditor needs to rerun a night (catalogue, policy, input
batches, output), with the code and dependency versions and the night's gate outcomes."""

from __future__ import annotations

import subprocess
from importlib import metadata as md
from pathlib import Path

from scoring import __version__


def code_commit() -> str | None:
    """The git commit of the code that ran, when it runs from a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def build_manifest(
    ctx,
    cat,
    pol,
    batches,
    input_sha,
    out_sha,
    tiers,
    n,
    timings,
    gates=None,
    result_files=None,
    waivers=None,
    intake=None,
) -> dict:
    deps = {}
    for name in ("pandas", "numpy", "pyarrow", "great-expectations", "scikit-learn", "sqlalchemy"):
        try:
            deps[name] = md.version(name)
        except md.PackageNotFoundError:
            deps[name] = None
    return {
        "run_id": ctx.run_id,
        "kind": ctx.kind,
        "as_of": ctx.as_of.isoformat(),
        "knowledge_cutoff": ctx.knowledge_cutoff.isoformat(),
        "catalogue_sha256": cat.sha256,
        "policy_sha256": pol.sha256,
        # The policy registry entry that put this policy in force (None: a --policy file), and how
        # far the run knew the registry: a rerun as known then sees the same approvals.
        "policy_approval": getattr(pol, "approval", None),
        # The feed layouts and the provider registry the night's deliveries were read with.
        "layouts_sha256": (intake or {}).get("layouts_sha256"),
        "providers_sha256": (intake or {}).get("providers_sha256"),
        # The pulls whose deliveries the night read, with the registry version each pulled with.
        "pulled_with": (intake or {}).get("pulled_with") or [],
        "model_sha256": None,
        "code_version": __version__,
        "code_commit": code_commit(),
        "dependencies": deps,
        "gates": gates or {},
        # Operator waivers of failed hard gates for this run only (who, why, what they covered).
        "waivers": list(waivers or []),
        "input_batches": [
            {"batch_id": b["batch_id"], "sha256": b["sha256"], "rows": b["rows"]} for b in batches
        ],
        "input_sha256": input_sha,
        "output_sha256": out_sha,
        "output_schema": "entity_score/1",
        "entities_scored": n,
        "tiers": tiers,
        "timings": timings,
        "result_files": result_files or {},
    }
