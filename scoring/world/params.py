"""The world-parameter file of the synthetic province (config/world/*.yaml): loading and checks.

A bad file is refused with one line naming the file and the first problem, before anything is
generated: an unknown signal, a negative rate, ratios outside the agency's bounds.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from scoring.world._deps import (
    CONFIG_DIR,
    Catalogue,
    bounds_for,
    content_hash,
    load_document,
    registry,
)

WORLD_DIR = CONFIG_DIR / "world"
DEFAULT_WORLD = WORLD_DIR / "default.yaml"
MIRROR_WORLD = WORLD_DIR / "mirror.yaml"
TIERS = ("A", "B", "C", "D")
# Catalogue items a world may generate directly; inspections are made by the draw, not a rate.
RECORD_ITEMS = (
    "PENALTY_GENERAL",
    "PENALTY_SEVERE",
    "FALSIFICATION",
    "REFUSE_TO_PERFORM",
    "COMMITMENT_BREACH",
    "COURT_JUDGMENT",
    "TAX_ARREARS",
    "SOCIAL_INSURANCE_ARREARS",
    "HOUSING_FUND_ARREARS",
    "UTILITY_ARREARS",
    "DISHONEST_DEBTOR",
    "SEVERE_DISHONESTY_LIST",
    "LICENCE",
    "COMMITMENT",
    "COMMENDATION",
    "VOLUNTEER_CHARITY",
)
RECORD_KEYS = {"rate", "compliance", "distress", "size"}
OUTCOME_KEYS = {
    "latent": {
        "model",
        "intercept",
        "compliance",
        "distress",
        "young",
        "representative_change",
        "noise_sd",
    },
    "hand_policy": {"model", "intercept", "per_100_points", "noise_sd"},
}


def world_path(name_or_path: str | Path) -> Path:
    """'default' and 'mirror' name the shipped worlds; anything else is a path."""
    return {"default": DEFAULT_WORLD, "mirror": MIRROR_WORLD}.get(
        str(name_or_path), Path(name_or_path)
    )


class WorldParamsError(ValueError):
    """A world-parameter file that cannot be used (one line: file and problem)."""


@dataclass(frozen=True)
class WorldParams:
    doc: dict
    path: str
    sha256: str

    @property
    def name(self) -> str:
        return self.doc["world"]

    def __getitem__(self, key):
        return self.doc[key]


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if k == "outcome" or not (isinstance(v, dict) and isinstance(out.get(k), dict)):
            out[k] = copy.deepcopy(v)  # an outcome model is replaced whole, never mixed
        else:
            out[k] = _merge(out[k], v)
    return out


def load_world(path: Path | str = DEFAULT_WORLD, bounds: dict | None = None) -> WorldParams:
    """The world document (following ``extends``), checked. Raises WorldParamsError."""
    path = Path(path)
    try:
        doc = load_document(path)
        if "extends" in doc:
            parent = load_world(path.parent / doc["extends"], bounds).doc
            doc = _merge(parent, {k: v for k, v in doc.items() if k != "extends"})
    except WorldParamsError:
        raise
    except (OSError, ValueError, TypeError) as exc:
        raise WorldParamsError(f"world file {path}: {exc}".splitlines()[0]) from None
    problem = check_world(doc, bounds)
    if problem:
        raise WorldParamsError(f"world file {path}: {problem}")
    return WorldParams(doc=doc, path=str(path), sha256=content_hash(doc))


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_world(doc: dict, bounds: dict | None = None) -> str | None:
    """The first problem with a world document, or None."""
    for key in ("world", "window", "latent", "outcome", "records", "inspections"):
        if key not in doc:
            return f"missing section {key!r}"
    return (
        _check_records(doc["records"])
        or _check_outcome(doc["outcome"])
        or _check_latent(doc["latent"])
        or _check_inspections(doc, bounds)
    )


def _check_records(records: dict) -> str | None:
    codes = set(Catalogue.load().item_codes)
    for item, spec in records.items():
        if item not in codes or item not in RECORD_ITEMS:
            return f"unknown signal {item!r} in records (allowed: catalogue items {', '.join(RECORD_ITEMS)})"
        if not isinstance(spec, dict) or "rate" not in spec:
            return f"records.{item}: needs a rate"
        extra = set(spec) - RECORD_KEYS
        if extra:
            return f"unknown signal {sorted(extra)[0]!r} in records.{item} (allowed: {', '.join(sorted(RECORD_KEYS))})"
        if not all(_number(v) for v in spec.values()):
            return f"records.{item}: values must be numbers"
        if spec["rate"] < 0:
            return f"records.{item}.rate is negative ({spec['rate']})"
    return None


def _check_outcome(out) -> str | None:
    model = out.get("model") if isinstance(out, dict) else None
    if model not in OUTCOME_KEYS:
        return f"outcome.model must be one of {', '.join(OUTCOME_KEYS)}, not {model!r}"
    extra = set(out) - OUTCOME_KEYS[model]
    if extra:
        return (
            f"unknown signal {sorted(extra)[0]!r} in outcome (allowed for {model}: "
            f"{', '.join(sorted(OUTCOME_KEYS[model] - {'model'}))})"
        )
    missing = OUTCOME_KEYS[model] - set(out)
    if missing:
        return f"outcome: missing {sorted(missing)[0]!r}"
    if out["noise_sd"] < 0:
        return f"outcome.noise_sd is negative ({out['noise_sd']})"
    return None


def _check_latent(lat: dict) -> str | None:
    checks = [
        ("latent.stable_share", lat.get("stable_share"), 0, 1),
        ("latent.drift_persistence_per_month", lat.get("drift_persistence_per_month"), 0, 1),
        ("latent.size_sd", lat.get("size_sd"), 0, None),
        ("latent.young_months", lat.get("young_months"), 0, None),
        ("latent.distress.onset_per_year", lat.get("distress", {}).get("onset_per_year"), 0, None),
        (
            "latent.distress.mean_duration_months",
            lat.get("distress", {}).get("mean_duration_months"),
            1,
            None,
        ),
        (
            "latent.representative_change.per_year",
            lat.get("representative_change", {}).get("per_year"),
            0,
            None,
        ),
        (
            "latent.representative_change.effect_months",
            lat.get("representative_change", {}).get("effect_months"),
            0,
            None,
        ),
    ]
    for name, v, lo, hi in checks:
        if not _number(v):
            return f"{name} must be a number"
        if v < lo:
            return f"{name} is {'negative' if lo == 0 else 'below ' + str(lo)} ({v})"
        if hi is not None and v > hi:
            return f"{name} is above {hi} ({v})"
    return None


def _check_inspections(doc: dict, bounds: dict | None) -> str | None:
    ins = doc["inspections"]
    ratios = ins.get("ratios_per_year") or {}
    if set(ratios) != set(TIERS):
        return f"inspections.ratios_per_year needs exactly the tiers {', '.join(TIERS)}"
    if bounds is None:
        # The bounds in force for the drawing agency at the window's start (config/agencies.yaml).
        import datetime as dt

        agency = ins.get("agency", "hlj-samr")
        if agency not in [a["id"] for a in registry()["agencies"]]:
            return f"inspections.agency {agency!r} is not a registered agency"
        start = dt.date.fromisoformat(str(doc["window"]["start"]))
        bounds = {
            t: [float(x) for x in v]
            for t, v in bounds_for(agency, start, registry())["tiers"].items()
        }
    for t in TIERS:
        r = ratios[t]
        if not _number(r):
            return f"inspections.ratios_per_year.{t} must be a number"
        lo, hi = bounds[t]
        if not lo <= r <= hi:
            return (
                f"inspections.ratios_per_year.{t} = {r} is outside the agency bounds [{lo}, {hi}]"
            )
    comp = ins.get("complaint_driven") or {}
    if not _number(comp.get("per_year")) or comp["per_year"] < 0:
        return "inspections.complaint_driven.per_year must be a number >= 0"
    return None
