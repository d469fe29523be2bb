"""How a policy diff is shown: the terminal table, the HTML page with the migration matrix as a
picture, and the files a promotion names (diff.json)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from scoring.evaluation.migration import TIERS
from scoring.reporting.migration_plot import plot_matrix
from scoring.reporting.reference import citation, citation_html


def write_diff(diff: dict, folder: Path) -> dict[str, Path]:
    """diff.json, the migration matrix as a picture and an HTML page, under folder/<diff_id[:16]>/."""
    d = Path(folder) / diff["diff_id"][:16]
    d.mkdir(parents=True, exist_ok=True)
    paths = {"json": d / "diff.json", "png": d / "migration_matrix.png", "html": d / "diff.html"}
    paths["json"].write_text(
        json.dumps(diff, ensure_ascii=False, indent=1, sort_keys=True), encoding="utf-8"
    )
    plot_matrix(diff, paths["png"])
    paths["html"].write_text(diff_html(diff, paths["png"]), encoding="utf-8")
    return paths


def _table(rows: list[list], head: list[str]) -> str:
    th = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table border=1 cellspacing=0 cellpadding=3><tr>{th}</tr>{body}</table>"


def _citation(entry: dict) -> str:
    # A diff kept from before reference.yaml carried its citation (the approved v2 diff) has none.
    return entry.get("citation") or citation(entry)


def diff_html(diff: dict, png: Path) -> str:
    img = base64.b64encode(Path(png).read_bytes()).decode()
    ref = diff["reference"]
    others = diff.get("also_published", [])
    shares = _shares_table(diff, ref, others)
    cited = "".join(
        f"<li>{html.escape(e['label'])}: {citation_html(e)}</li>" for e in [ref] + others
    )
    load = _load_table(diff)
    movers = _movers_table(diff)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>policy diff {diff['diff_id'][:16]}</title>"
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}td,th{font-size:13px}</style></head><body>"
        f"<h1>Policy change: {html.escape(diff['old']['file'])} → {html.escape(diff['new']['file'])}</h1>"
        f"<p>As of {diff['as_of']}, on the same inputs ({diff['entities']:,} active entities, catalogue "
        f"{html.escape(diff['catalogue']['label'])}). Diff id <code>{diff['diff_id']}</code> — a promotion names it."
        f"<br>old policy sha256 <code>{diff['old']['sha256']}</code><br>new policy sha256 <code>{diff['new']['sha256']}</code></p>"
        f"<h2>Tier migration</h2><img alt='migration matrix' src='data:image/png;base64,{img}'>"
        f"<p>{diff['up']:,} entities move to a better tier, {diff['down']:,} to a worse one, "
        f"{diff['same']:,} stay; {diff['movers_2plus']:,} move two tiers or more.</p>"
        f"<h2>Tier shares against the published reference</h2>{shares}<p>Sources:</p><ul>{cited}</ul>"
        f"<h2>Next month's inspection load by department</h2><p>{html.escape(diff['inspection_load_note'])}</p>{load}"
        f"<h2>Entities moving two tiers or more ({diff['movers_2plus']:,}"
        f"{', first 500 shown' if diff['movers_2plus'] > 500 else ''})</h2>{movers}</body></html>"
    )


def diff_text(diff: dict) -> str:
    """The terminal table."""
    ref = diff["reference"]
    lines = [
        f"policy diff {diff['old']['file']} -> {diff['new']['file']} as of {diff['as_of']} "
        f"({diff['entities']:,} entities); diff id {diff['diff_id']}",
        "",
        "migration (rows: old tier, columns: new tier; count and share of all entities)",
        "old\\new " + "".join(f"{t:>16}" for t in TIERS),
    ]
    for a in TIERS:
        lines.append(
            f"{a:<8}"
            + "".join(
                f"{diff['matrix'][a][b]:>8,} {diff['matrix_share'][a][b]:>6.1%}" for b in TIERS
            )
        )
    lines += ["", f"tier shares       {'old':>7} {'new':>7} {'ref':>7} {'new-ref':>8}"]
    for t in TIERS:
        lines.append(
            f"  {t:<15} {diff['old_shares'][t]:>7.1%} {diff['new_shares'][t]:>7.1%} "
            f"{float(ref['shares'][t]):>7.1%} {diff['new_minus_reference'][t]:>+8.1%}"
        )
    lines.append(f"  ref = {ref['label']}")
    lines.append(f"        {_citation(ref)}")
    for o in diff.get("also_published", []):
        lines.append(
            f"  also published: {o['label']}: "
            + " / ".join(f"{t} {float(o['shares'][t]):.1%}" for t in TIERS)
        )
        lines.append(f"        {o['citation']}")
    lines += [
        "",
        f"next month's inspections by department ({diff['inspection_load_note']})",
        f"  {'agency':<15}{'entities':>9}{'old':>7}{'new':>7}{'change':>8}  ratios from",
    ]
    for r in diff["inspection_load"]:
        lines.append(
            f"  {r['agency_id']:<15}{r['entities']:>9,}{r['inspections_old']:>7,}{r['inspections_new']:>7,}"
            f"{r['change']:>+8,}  {r['ratios_from']}"
        )
    lines += ["", f"entities moving two tiers or more: {diff['movers_2plus']:,}"]
    for m in diff["movers"][:10]:
        lines.append(
            f"  {m['uscc']} {m['old_tier']}->{m['new_tier']} ({m['old_score']}->{m['new_score']}): "
            f"{m['new_reasons']}"
        )
    if diff["movers_2plus"] > 10:
        lines.append(f"  ... {diff['movers_2plus'] - 10:,} more in the JSON / HTML")
    return "\n".join(lines)


def _shares_table(diff: dict, ref: dict, others: list) -> str:
    return _table(
        [
            [
                t,
                f"{diff['old_shares'][t]:.1%}",
                f"{diff['new_shares'][t]:.1%}",
                f"{float(ref['shares'][t]):.1%}",
                f"{diff['new_minus_reference'][t]:+.1%}",
            ]
            + [f"{float(o['shares'][t]):.1%}" for o in others]
            for t in TIERS
        ],
        ["tier", "old", "new", "reference", "new - reference"] + [o["label"] for o in others],
    )


def _load_table(diff: dict) -> str:
    return _table(
        [
            [
                r["agency_id"],
                r["agency"],
                r["entities"],
                " ".join(f"{t}={r['ratios'][t]:g}" for t in TIERS),
                r["ratios_from"],
                r["inspections_old"],
                r["inspections_new"],
                f"{r['change']:+d}",
            ]
            for r in diff["inspection_load"]
        ],
        [
            "agency",
            "name",
            "entities",
            "ratios",
            "ratios from",
            "inspections (old)",
            "inspections (new)",
            "change",
        ],
    )


def _movers_table(diff: dict) -> str:
    return _table(
        [
            [
                m["uscc"],
                m["name"],
                m["old_tier"],
                m["new_tier"],
                m["old_score"],
                m["new_score"],
                m["new_override"],
                m["new_reasons"],
                m["old_reasons"],
            ]
            for m in diff["movers"][:500]
        ],
        [
            "USCC",
            "name",
            "old",
            "new",
            "old score",
            "new score",
            "override (new)",
            "reasons (new)",
            "reasons (old)",
        ],
    )
