"""Promoting a policy: an approved file or calibration candidate recorded in the store's policy
registry (scoring.history.policy_registry) from a date, with the approver, the reason and the diff
it was approved on; nothing else is written. Evaluations before the date keep the policy then in
force, so published nights and their audit reruns never change.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import sqlalchemy as sa
import yaml

from scoring.calibration.policy_change import (
    PolicyRefused,
    check_policy,
    diff_is_intact,
    published_nights,
)
from scoring.common.catalogue import Catalogue
from scoring.common.config import load_document
from scoring.evaluation.evaluate import Policy
from scoring.history import policy_registry
from scoring.history.store import artifacts


def promote_file(
    store,
    policy_path,
    approved_by: str,
    reason: str,
    effective_from: str,
    diff_path,
    recorded_at: dt.datetime,
) -> dict:
    """Record an approved policy file in the policy registry, effective from a date."""
    on = _promotion_date(approved_by, reason, effective_from)
    policy_path = Path(policy_path)
    try:
        doc = load_document(policy_path)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        why = str(exc).splitlines()[0].removeprefix(f"{policy_path}: ")
        raise PolicyRefused(f"policy refused: cannot read {policy_path}: {why}") from exc
    pol = check_policy(doc, Catalogue.in_force(on), on.isoformat(), published_nights(store))
    diff = _approved_diff(diff_path, pol)
    reference = {
        "id": diff["diff_id"],
        "as_of": diff["as_of"],
        "file": Path(diff_path).name,
        "old_sha256": diff["old"]["sha256"],
        "body": diff,
    }
    entry = {"origin": "file", "policy": policy_path.name, "document": doc, "diff": reference}
    return record_promotion(store, entry, on, approved_by, reason, recorded_at)


def _promotion_date(approved_by: str, reason: str, effective_from) -> dt.date:
    if not (approved_by or "").strip() or not (reason or "").strip():
        raise PolicyRefused("promotion refused: an approver and a reason are required")
    try:
        return dt.date.fromisoformat(str(effective_from))
    except ValueError as exc:
        raise PolicyRefused(
            f"promotion refused: effective date {effective_from!r} is not YYYY-MM-DD"
        ) from exc


def _approved_diff(diff_path, pol: Policy) -> dict:
    """The diff a file was approved on, checked to be intact and made for this very policy."""
    if not diff_path:
        raise PolicyRefused(
            "promotion refused: name the diff it was approved on (--diff, from credit policy diff)"
        )
    try:
        diff = json.loads(Path(diff_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PolicyRefused(f"promotion refused: cannot read the diff {diff_path}") from exc
    if not diff_is_intact(diff):
        raise PolicyRefused(
            f"promotion refused: the diff {diff_path} was changed after it was made (its id does not match)"
        )
    if diff["new"]["sha256"] != pol.sha256:
        raise PolicyRefused(
            f"promotion refused: the diff {diff['diff_id'][:16]} was made for policy "
            f"{diff['new']['sha256'][:12]}, not this file ({pol.sha256[:12]})"
        )
    return diff


def record_promotion(
    store, entry: dict, on: dt.date, approved_by: str, reason: str, recorded_at: dt.datetime
) -> dict:
    """Append an approval (a file's or a candidate's) to the store's policy registry: after the
    latest entry's date and after every published night, or refused with one line."""
    on = _promotion_date(approved_by, reason, on)
    nights = published_nights(store)
    if nights and on <= dt.date.fromisoformat(max(nights)):
        last = max(nights)
        raise PolicyRefused(
            f"policy refused: effective date {on} is on or before night {last}, already "
            f"published under the policy then in force (choose a date after {last})"
        )
    with store.engine.begin() as conn:
        registry = policy_registry.entries(conn)
        latest = max(e["effective_from"] for e in registry)
        if on.isoformat() <= latest:
            raise PolicyRefused(
                f"promotion refused: effective date {on} is not after the latest policy in the "
                f"registry ({latest})"
            )
        new = policy_registry.record(
            conn,
            dict(entry, effective_from=on.isoformat(), approved_by=approved_by, reason=reason),
            recorded_at,
        )
        # The registry must give this policy from its date (else nothing is recorded).
        if Policy.in_force(on.isoformat(), [*registry, new]).sha256 != new["sha256"]:
            raise PolicyRefused(
                "promotion refused: the registry does not resolve to this policy on its date"
            )
    return new


def policy_history(store) -> list[dict]:
    """The policy registry, in the order recorded (documents left out: they are the hash)."""
    with store.engine.connect() as conn:
        out = []
        for e in policy_registry.entries(conn):
            diff = e.pop("diff") or {}
            e.pop("document")
            out.append(dict(e, diff_id=diff.get("id"), diff_as_of=diff.get("as_of")))
        return out


def promote_candidate(
    store,
    candidate_id: str,
    approved_by: str,
    reason: str,
    effective_from: str,
    recorded_at: dt.datetime,
) -> dict:
    """Make a candidate the policy for evaluations from a date: recorded in the policy registry."""
    with store.engine.connect() as conn:
        text = conn.execute(
            sa.select(artifacts.c.content_json).where(artifacts.c.label == candidate_id)
        ).scalar()
    if text is None:
        raise PolicyRefused(f"promotion refused: no candidate {candidate_id!r} in this store")
    doc = json.loads(text)
    try:
        Policy.from_doc(doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise PolicyRefused(f"policy refused: candidate {candidate_id}: {exc}") from exc
    entry = {"origin": "candidate", "policy": candidate_id, "document": doc, "diff": None}
    return record_promotion(store, entry, effective_from, approved_by, reason, recorded_at)
