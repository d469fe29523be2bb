"""Tier migration between two evaluations of the same entities (two policies on one night's inputs):
the matrix an approver looks at before a policy change, and the entities that move furthest."""

from __future__ import annotations

import pandas as pd

TIERS = ("A", "B", "C", "D")


def compare(old_res: pd.DataFrame, new_res: pd.DataFrame) -> dict:
    """Migration matrix (rows: old tier, columns: new tier), shares, and entities moving >= 2 tiers."""
    o = old_res.set_index("uscc")
    n = new_res.set_index("uscc").loc[o.index]
    ot, nt = o["tier"].astype(str), n["tier"].astype(str)
    matrix = pd.crosstab(ot, nt).reindex(index=list(TIERS), columns=list(TIERS), fill_value=0)
    total = int(len(o))
    step = nt.map(TIERS.index) - ot.map(TIERS.index)
    far = step.abs() >= 2
    movers = pd.DataFrame(
        {
            "uscc": o.index[far],
            "name": o.loc[far, "name"].astype(str).to_numpy(),
            "old_tier": ot[far].to_numpy(),
            "new_tier": nt[far].to_numpy(),
            "old_score": o.loc[far, "score"].astype(int).to_numpy(),
            "new_score": n.loc[far, "score"].astype(int).to_numpy(),
            "new_override": n.loc[far, "override"].astype(str).to_numpy(),
            "old_reasons": o.loc[far, "reasons"].astype(str).to_numpy(),
            "new_reasons": n.loc[far, "reasons"].astype(str).to_numpy(),
        }
    )
    movers = movers.sort_values(["old_tier", "new_tier", "uscc"], kind="stable", ignore_index=True)
    share = lambda s: {t: round(float((s == t).sum()) / total, 6) if total else 0.0 for t in TIERS}  # noqa: E731
    return {
        "entities": total,
        "matrix": {a: {b: int(matrix.loc[a, b]) for b in TIERS} for a in TIERS},
        "matrix_share": {
            a: {b: round(int(matrix.loc[a, b]) / total, 6) if total else 0.0 for b in TIERS}
            for a in TIERS
        },
        "old_counts": {t: int((ot == t).sum()) for t in TIERS},
        "new_counts": {t: int((nt == t).sum()) for t in TIERS},
        "old_shares": share(ot),
        "new_shares": share(nt),
        "up": int((step < 0).sum()),
        "down": int((step > 0).sum()),
        "same": int((step == 0).sum()),
        "movers_2plus": int(far.sum()),
        "movers": movers.to_dict("records"),
    }
