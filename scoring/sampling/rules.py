"""The registry's sampling rules (config/agencies.yaml, config/inspectors.yaml) and the checks a
plan must pass before anything is drawn. Every refusal is one line that names what is wrong.

- Ratio bounds per agency and tier are law (Art. 48; local rules such as Lindian's): effective-
  dated sets, each naming its source; a plan uses the set in force on its period's first day.
- Capacity: inspections a department can carry out per period (month), shared by all its plans.
- The inspector register: each inspector belongs to exactly one department and one unit.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

import pandas as pd

from scoring.common.config import CONFIG_DIR, load_document
from scoring.common.errors import PipelineError

AGENCIES = CONFIG_DIR / "agencies.yaml"
INSPECTORS = CONFIG_DIR / "inspectors.yaml"
TIERS = ("A", "B", "C", "D")
CONFLICT_REASONS = ("kin", "former_employer", "prior_case", "same_street_office")


class SamplingRefused(PipelineError):
    """A plan or register that breaks a sampling rule: nothing is committed or drawn."""


def registry(path=AGENCIES) -> dict:
    return load_document(path)


def parse_ratios(value) -> dict[str, str]:
    """Ratios for all four tiers as exact decimal strings, from {"A": 0.03, ...} or "A=0.03,B=0.1,...".
    A ratio that is not a number, outside 0..1, an unknown or a missing tier: refused."""
    if isinstance(value, str):
        pairs = []
        for part in value.split(","):
            if part.strip():
                tier, sep, v = part.partition("=")
                if not sep:
                    raise SamplingRefused(
                        f"bad ratio {part.strip()!r}: write TIER=RATIO, e.g. A=0.03,B=0.1,C=0.4,D=0.8"
                    )
                pairs.append((tier.strip().upper(), v.strip()))
    else:
        pairs = [(str(t).strip().upper(), v) for t, v in dict(value or {}).items()]
    out: dict[str, str] = {}
    for tier, v in pairs:
        if tier not in TIERS:
            raise SamplingRefused(f"unknown tier {tier!r} in the ratios (tiers are A, B, C, D)")
        if tier in out:  # "A=0.9,A=0.03" must not quietly mean the last one
            raise SamplingRefused(f"tier {tier} is given twice in the ratios: give each once")
        if isinstance(v, bool):
            raise SamplingRefused(f"ratio for tier {tier} is not a number: {v!r}")
        try:
            d = Decimal(str(v).strip())
        except InvalidOperation:
            raise SamplingRefused(f"ratio for tier {tier} is not a number: {v!r}") from None
        if not d.is_finite() or not 0 <= d <= 1:
            raise SamplingRefused(f"ratio for tier {tier} is {v!r}, outside 0..1")
        out[tier] = format(d.normalize() + 0, "f")  # + 0: "-0" and "-0.0" are "0"
    missing = [t for t in TIERS if t not in out]
    if missing:
        raise SamplingRefused(
            f"tier {', '.join(missing)} missing from the ratios: a plan sets all of A, B, C, D"
        )
    return {t: out[t] for t in TIERS}


TASK_NAME = re.compile(r"[\w.-]{1,64}")  # a file-name part: no separators, newlines or spaces
PERIOD = re.compile(r"(20[0-9]{2})-(0[1-9]|1[0-2])")  # a calendar month of this century


def check_task(task) -> str:
    """A plan's task name, which names its files: letters, digits, '_', '.', '-' only, not only
    dots, at most 64 characters."""
    if not isinstance(task, str) or not TASK_NAME.fullmatch(task) or not task.strip("."):
        raise SamplingRefused(
            f"bad task name {str(task)[:40]!r}: use letters, digits, '_', '.', '-' (at most 64)"
        )
    return task


def period_days(period: str) -> tuple[dt.date, dt.date]:
    """First and last day of a period 'YYYY-MM'."""
    if not isinstance(period, str) or not PERIOD.fullmatch(period):
        raise SamplingRefused(f"bad period {str(period)[:20]!r}: use YYYY-MM (2000-01..2099-12)")
    try:
        first = dt.date.fromisoformat(f"{period}-01")
    except (TypeError, ValueError):
        raise SamplingRefused(f"bad period {period!r}: use YYYY-MM") from None
    nxt = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, nxt - dt.timedelta(days=1)


def agency_ids(reg: dict) -> list[str]:
    return [a["id"] for a in reg["agencies"]]


def check_agency(agency_id: str, reg: dict) -> dict:
    found = {a["id"]: a for a in reg["agencies"]}
    if agency_id not in found:
        raise SamplingRefused(f"unknown department {agency_id!r} (see `credit agencies`)")
    return found[agency_id]


def bounds_for(agency_id: str, day: dt.date, reg: dict) -> dict:
    """The bound set in force on ``day`` for the agency (its own sets, else the default ones)."""
    sets = reg["sampling_bounds"].get(agency_id) or reg["sampling_bounds"]["default"]
    valid = [s for s in sets if dt.date.fromisoformat(str(s["from"])) <= day]
    if not valid:
        raise SamplingRefused(f"no ratio bounds in force for {agency_id} on {day}")
    s = max(valid, key=lambda s: str(s["from"]))
    return {
        "from": str(s["from"]),
        "source": s["source"],
        "tiers": {t: [format(Decimal(str(x)).normalize(), "f") for x in s[t]] for t in TIERS},
    }


def check_ratios(agency_id: str, period: str, ratios: dict[str, str], reg: dict) -> dict:
    """Refuse ratios outside the bounds in force for the period; returns the bound set used."""
    bounds = bounds_for(agency_id, period_days(period)[0], reg)
    for t in TIERS:
        lo, hi = (Decimal(x) for x in bounds["tiers"][t])
        if not lo <= Decimal(ratios[t]) <= hi:
            raise SamplingRefused(
                f"tier {t} ratio {ratios[t]} is outside the bound {lo}–{hi} for {agency_id} "
                f"({bounds['source']}, in force from {bounds['from']})"
            )
    return bounds


def capacity_for(agency_id: str, reg: dict) -> int:
    caps = reg.get("inspection_capacity", {})
    return int(caps.get(agency_id, caps.get("default", 0)))


def load_register(path=INSPECTORS, agency_id: str | None = None) -> pd.DataFrame:
    """The inspector register (执法检查人员名录库): one row per inspector with unit and conflicts
    (a tuple of (uscc, reason)). An inspector listed in two departments, without a unit, or with a
    conflict reason outside the known ones is refused."""
    rows = load_document(path)["inspectors"]
    seen: dict[str, str] = {}
    out = []
    for r in rows:
        iid, agency = str(r["inspector_id"]), str(r["agency_id"])
        if iid in seen and seen[iid] != agency:
            raise SamplingRefused(
                f"inspector {iid} is in two departments ({seen[iid]}, {agency}) in the register"
            )
        if iid in seen:
            raise SamplingRefused(f"inspector {iid} is listed twice in the register")
        seen[iid] = agency
        if not r.get("unit"):
            raise SamplingRefused(f"inspector {iid} has no unit in the register")
        conflicts = []
        for c in r.get("conflicts") or []:
            if c.get("reason") not in CONFLICT_REASONS:
                raise SamplingRefused(
                    f"inspector {iid}: conflict reason {c.get('reason')!r} is not one of "
                    f"{', '.join(CONFLICT_REASONS)}"
                )
            conflicts.append((str(c["uscc"]), c["reason"]))
        out.append(
            {
                "inspector_id": iid,
                "agency_id": agency,
                "unit": str(r["unit"]),
                "conflicts": tuple(sorted(conflicts)),
            }
        )
    frame = pd.DataFrame(out, columns=["inspector_id", "agency_id", "unit", "conflicts"])
    return (
        frame
        if agency_id is None
        else frame[frame["agency_id"] == agency_id].reset_index(drop=True)
    )
