"""Changing the policy: refuse a bad policy file, and show what a new policy would change before
anyone approves it (`credit policy diff`; its views in diff_views.py). Promoting it
(`credit policy promote`) is scoring.calibration.promotion.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from scoring.common.catalogue import Catalogue
from scoring.common.config import canonical_json, load_document
from scoring.common.errors import PipelineError
from scoring.evaluation.evaluate import CANONICAL_COLUMNS, Policy, evaluate_inputs
from scoring.evaluation.migration import TIERS, compare
from scoring.history.inputs import load_inputs
from scoring.history.store import runs, sampling_plans
from scoring.publication.publish import DEFAULT_AGENCIES, in_scope, load_agencies
from scoring.reporting.reference import REFERENCE, load_reference
from scoring.sampling.doublerandom import tier_count

REQUIRED_DIMENSIONS = tuple(
    c.removeprefix("dim_") for c in CANONICAL_COLUMNS if c.startswith("dim_")
)
DIFF_SCHEMA = "policy_diff/1"


class PolicyRefused(PipelineError):
    """A policy file or promotion that must not go ahead; the message is one line naming why."""


# --------------------------------------------------------------------------- checks


def check_policy(
    doc,
    catalogue: Catalogue,
    effective_from: str | None = None,
    published_nights: list[str] | tuple = (),
) -> Policy:
    """The policy if it can be promoted, else PolicyRefused naming the first problem."""
    if not isinstance(doc, dict):
        raise PolicyRefused("policy refused: the file is not a mapping of policy fields")
    for key in ("scale", "dimensions", "items", "tiers", "overrides", "reasons"):
        if key not in doc:
            raise PolicyRefused(f"policy refused: the '{key}' section is missing")
    dims = [d.get("id") for d in doc["dimensions"]]
    missing = [d for d in REQUIRED_DIMENSIONS if d not in dims]
    if missing:
        raise PolicyRefused(
            f"policy refused: dimension {missing[0]} is missing (every policy has "
            f"{', '.join(REQUIRED_DIMENSIONS)})"
        )
    extra = [d for d in dims if d not in REQUIRED_DIMENSIONS]
    if extra:
        raise PolicyRefused(
            f"policy refused: dimension {extra[0]} is not one of {', '.join(REQUIRED_DIMENSIONS)}"
        )
    for code, spec in sorted(doc["items"].items()):
        if spec.get("dimension") not in dims:
            raise PolicyRefused(
                f"policy refused: item {code} feeds unknown dimension {spec.get('dimension')}"
            )
    tiers = doc["tiers"]
    names = [t.get("tier") for t in tiers]
    if names != list(TIERS):
        raise PolicyRefused(
            f"policy refused: tiers must be listed A, B, C, D once each (got {', '.join(map(str, names))})"
        )
    cuts = [t.get("min_score") for t in tiers]
    for (a, ca), (b, cb) in zip(zip(names, cuts), zip(names[1:], cuts[1:])):
        if ca == cb:
            raise PolicyRefused(
                f"policy refused: cut scores overlap: {a} and {b} both start at {ca}"
            )
        if ca < cb:
            raise PolicyRefused(
                f"policy refused: cut scores are not in order: {b} starts at {cb}, above {a} at {ca}"
            )
    on = dt.date.fromisoformat(effective_from) if effective_from else None
    known = set(catalogue.item_codes)
    referenced = list(doc["items"]) + list(doc["overrides"].get("severe_list_items", []))
    for cap in doc["overrides"].get("tier_caps", []) or []:
        referenced += list(cap.get("items", []))
        if cap.get("max_tier") not in TIERS:
            raise PolicyRefused(
                f"policy refused: tier cap {cap.get('id')} has no tier A-D as its max_tier"
            )
    for code in referenced:
        if code not in known:
            where = f" in force on {on}" if on else ""
            raise PolicyRefused(
                f"policy refused: item {code} is not in the catalogue{where} "
                f"(version {catalogue.doc.get('version_label', catalogue.sha256[:12])})"
            )
    if on is not None and published_nights:
        last = max(published_nights)
        if on <= dt.date.fromisoformat(str(last)):
            raise PolicyRefused(
                f"policy refused: effective date {on} is on or before night {last}, already "
                f"published under the policy then in force (choose a date after {last})"
            )
    try:
        return Policy.from_doc(doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise PolicyRefused(f"policy refused: {exc}") from exc


def published_nights(store) -> list[str]:
    with store.engine.connect() as conn:
        return sorted(
            str(r)
            for r in conn.execute(
                sa.select(runs.c.as_of).where(runs.c.status == "published")
            ).scalars()
        )


# --------------------------------------------------------------------------- the diff


def _ratios_in_use(
    store, agency_ids: list[str], default: dict[str, float]
) -> dict[str, tuple[dict, str]]:
    """Each agency's ratios from its latest drawn plan, else the documented default."""
    out = {a: ({t: float(default[t]) for t in TIERS}, "default") for a in agency_ids}
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                sampling_plans.c.agency_id,
                sampling_plans.c.as_of,
                sampling_plans.c.plan_id,
                sampling_plans.c.record_json,
            ).order_by(sampling_plans.c.as_of, sampling_plans.c.plan_id)
        ).all()
    for (
        r
    ) in rows:  # later plans overwrite earlier ones; an abandoned (re-drawn) plan does not count
        record = json.loads(r.record_json)
        ratios = (record.get("ingredients") or {}).get("ratios")
        if r.agency_id in out and ratios and not record.get("abandoned"):
            out[r.agency_id] = ({t: float(ratios.get(t, 0.0)) for t in TIERS}, f"plan {r.plan_id}")
    return out


def inspection_load(
    old: pd.DataFrame, new: pd.DataFrame, agencies: list[dict], ratios: dict[str, tuple[dict, str]]
) -> list[dict]:
    """Inspections per department for one round at its ratios: under the old and the new tiers."""
    rows = []
    for ag in agencies:
        mask = in_scope(new, ag).to_numpy()
        r, source = ratios[ag["id"]]
        n_old = old.loc[mask, "tier"].astype(str).value_counts()
        n_new = new.loc[mask, "tier"].astype(str).value_counts()
        load_old = sum(tier_count(r[t], int(n_old.get(t, 0))) for t in TIERS)
        load_new = sum(tier_count(r[t], int(n_new.get(t, 0))) for t in TIERS)
        rows.append(
            {
                "agency_id": ag["id"],
                "agency": ag["name"],
                "entities": int(mask.sum()),
                "ratios": r,
                "ratios_from": source,
                "old_by_tier": {t: int(n_old.get(t, 0)) for t in TIERS},
                "new_by_tier": {t: int(n_new.get(t, 0)) for t in TIERS},
                "inspections_old": int(load_old),
                "inspections_new": int(load_new),
                "change": int(load_new - load_old),
            }
        )
    return rows


def policy_diff(
    store,
    old_path,
    new_path,
    as_of: str,
    reference=REFERENCE,
    agencies_path=None,
    catalogue: Catalogue | None = None,
) -> dict:
    """Both policies on the same inputs (everything known by the as-of date), side by side."""
    day = dt.date.fromisoformat(str(as_of))
    old_doc, new_doc = load_document(old_path), load_document(new_path)
    cat, chosen = catalogue, "given"
    if cat is None:
        # The catalogue in force on the date, or (for a policy that scores items added since) the newest.
        cat, chosen = Catalogue.in_force(day), f"in force on {day}"
        needed = set(old_doc.get("items", {})) | set(new_doc.get("items", {}))
        if not needed <= set(cat.item_codes):
            cat, chosen = (
                Catalogue.latest(),
                f"newest version (the one in force on {day} lacks items of these policies)",
            )
    old = check_policy(old_doc, cat)
    new = check_policy(new_doc, cat)
    with store.engine.connect() as conn:
        ent, rec, chg, batches = load_inputs(store, conn, day.isoformat())
    if not len(ent):
        raise PipelineError(
            f"no entities known by {day}: run a night first (credit run --as-of {day})"
        )
    r_old = evaluate_inputs(ent, rec, chg, cat, old, day)
    r_new = evaluate_inputs(ent, rec, chg, cat, new, day)
    out = {
        "schema": DIFF_SCHEMA,
        "as_of": day.isoformat(),
        "old": {
            "file": Path(old_path).name,
            "sha256": old.sha256,
            "label": old.doc.get("version_label", ""),
        },
        "new": {
            "file": Path(new_path).name,
            "sha256": new.sha256,
            "label": new.doc.get("version_label", ""),
        },
        "catalogue": {
            "sha256": cat.sha256,
            "label": cat.doc.get("version_label", ""),
            "chosen": chosen,
        },
        "input_batches": sorted(str(b["batch_id"]) for b in batches),
    }
    out.update(compare(r_old, r_new))
    ref = load_reference(reference)
    out["reference"] = ref["reference"]
    out["also_published"] = [
        {k: e[k] for k in ("label", "shares", "citation")} for e in ref["also_published"]
    ]
    out["new_minus_reference"] = {
        t: round(out["new_shares"][t] - ref["reference"]["shares"][t], 6) for t in TIERS
    }
    agencies = load_agencies(agencies_path or DEFAULT_AGENCIES)
    ratios = _ratios_in_use(store, [a["id"] for a in agencies], ref["default_ratios"])
    out["inspection_load"] = inspection_load(r_old, r_new, agencies, ratios)
    out["inspection_load_note"] = (
        "one round (next month's plan) at each department's current ratios: its latest "
        "drawn plan, else the default; k = floor(ratio x N + 0.5) per tier, before the "
        "90-day exclusion and frequency caps"
    )
    out["diff_id"] = hashlib.sha256(canonical_json(out).encode("utf-8")).hexdigest()
    return out


def diff_is_intact(diff: dict) -> bool:
    body = {k: v for k, v in diff.items() if k != "diff_id"}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest() == diff.get("diff_id")
