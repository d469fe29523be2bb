"""The published enterprise credit-risk classification that a policy's tier shares are set beside
(`credit policy diff`, the run report of a policy's first month), with its citation.

The figures live in config/policy/reference.yaml as the publication printed them (counts or
percentages); shares are derived here so the two can never disagree.
"""

from __future__ import annotations

import html
from pathlib import Path

from scoring.common.config import CONFIG_DIR, load_document
from scoring.common.errors import PipelineError

REFERENCE = CONFIG_DIR / "policy" / "reference.yaml"
TIERS = ("A", "B", "C", "D")


def _shares(entry: dict, where: str) -> dict[str, float]:
    """Fractions of classified entities from the printed counts (or percentages)."""
    printed = entry.get("counts") or entry.get("percent")
    if not printed:
        raise PipelineError(
            f"{where}: give the figures as printed, 'counts' or 'percent' for A, B, C and D"
        )
    if not isinstance(printed, dict) or set(printed) != set(TIERS):
        raise PipelineError(f"{where}: the figures must cover exactly A, B, C and D")
    total = sum(float(printed[t]) for t in TIERS)
    if total <= 0 or min(float(printed[t]) for t in TIERS) < 0:
        raise PipelineError(f"{where}: the figures must be non-negative and not all zero")
    return {t: round(float(printed[t]) / total, 6) for t in TIERS}


def citation(entry: dict) -> str:
    """One line naming the publication, or saying plainly that there is none."""
    src = entry.get("source") or {}
    if not entry.get("verified") or not src.get("url"):
        return "UNVERIFIED: the publication behind these figures was not found"
    parts = [src.get("publisher"), src.get("title"), src.get("date"), src.get("url")]
    return ", ".join(str(p) for p in parts if p)


def citation_html(entry: dict) -> str:
    """The citation with its address as a link (for the diff page and the run report)."""
    text = html.escape(entry.get("citation") or citation(entry))
    src = entry.get("source")
    url = src.get("url") if isinstance(src, dict) and entry.get("verified") else None
    return (
        text.replace(html.escape(url), f"<a href='{html.escape(url)}'>{html.escape(url)}</a>")
        if url
        else text
    )


def _entry(raw: dict, where: str) -> dict:
    return {
        "label": raw["label"],
        "verified": bool(raw.get("verified")),
        "source": raw.get("source"),
        "printed": dict(raw.get("counts") or raw.get("percent") or {}),
        "printed_as": "counts" if raw.get("counts") else "percent",
        "shares": _shares(raw, where),
        "citation": citation(raw),
    }


def load_reference(path: Path | str = REFERENCE) -> dict:
    """{'reference': the entry policies are compared with, 'also_published': others, 'default_ratios'}."""
    doc = load_document(path)
    return {
        "reference": _entry(doc["reference"], f"{path}: reference"),
        "also_published": [
            _entry(e, f"{path}: also_published[{i}]")
            for i, e in enumerate(doc.get("also_published") or [])
        ],
        "default_ratios": doc["default_ratios"],
    }
