"""Promoting a calibrated candidate: never automatic, an approver and a reason required."""

from __future__ import annotations

import json

import sqlalchemy as sa

from scoring.common.config import canonical_json
from scoring.common.errors import PipelineError
from scoring.evaluation.evaluate import (
    Policy,
)
from scoring.history.store import artifacts


def promote(store, candidate_id: str, approved_by: str, reason: str, effective_from: str) -> dict:
    """Make a candidate the policy for evaluations from a date; recorded in the policy history."""
    if not (approved_by or "").strip() or not (reason or "").strip():
        raise PipelineError("promotion refused: an approver and a reason are required")
    with store.engine.connect() as conn:
        text = conn.execute(
            sa.select(artifacts.c.content_json).where(artifacts.c.label == candidate_id)
        ).scalar()
    if text is None:
        raise PipelineError(f"no candidate {candidate_id!r}")
    doc = json.loads(text)
    pol = Policy.from_doc(doc)
    folder = store.home / "policy"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{candidate_id}.json").write_text(canonical_json(doc), encoding="utf-8")
    hist_path = folder / "history.json"
    history = json.loads(hist_path.read_text()) if hist_path.exists() else []
    entry = {
        "effective_from": effective_from,
        "policy": f"{candidate_id}.json",
        "sha256": pol.sha256,
        "approved_by": approved_by,
        "reason": reason,
    }
    history.append(entry)
    hist_path.write_text(json.dumps(history, ensure_ascii=False, indent=1))
    return entry
