"""How sure is "better": the paired, weighted AUC difference between a candidate and the current
policy on the same inspections."""

from __future__ import annotations

import numpy as np

# --------------------------------------------------------------------------- how sure is "better"


def weighted_auc(value_idx: np.ndarray, n_values: int, y: np.ndarray, w: np.ndarray) -> float:
    """AUC with row weights; value_idx ranks the rows' risks (equal risks share an index: ties count half)."""
    pos = np.bincount(value_idx, weights=w * y, minlength=n_values)
    neg = np.bincount(value_idx, weights=w * (1 - y), minlength=n_values)
    below = np.cumsum(neg) - neg
    denom = pos.sum() * neg.sum()
    return float(np.dot(pos, below + 0.5 * neg) / denom) if denom > 0 else float("nan")


def paired_auc_difference(
    y, risk_a, risk_b, groups, resamples: int = 2000, random_state: int = 0, sample_weight=None
) -> dict:
    """AUC(a) - AUC(b) on the same inspections, with a 95% percentile interval from a paired
    bootstrap that resamples entities (an entity's inspections move together; both policies are
    scored on the same draw). Seeded: same inputs, same interval. sample_weight (inverse inclusion
    probabilities) makes it the AUC on the population the inspections were drawn from."""
    y = np.asarray(y, dtype=np.float64)
    sw = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    ia = np.unique(np.asarray(risk_a), return_inverse=True)[1].ravel()
    ib = np.unique(np.asarray(risk_b), return_inverse=True)[1].ravel()
    na, nb = int(ia.max()) + 1 if len(ia) else 0, int(ib.max()) + 1 if len(ib) else 0
    g = np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
    est = weighted_auc(ia, na, y, sw) - weighted_auc(ib, nb, y, sw)
    rng = np.random.default_rng(random_state)
    n_groups = int(g.max()) + 1 if len(g) else 0
    diffs = np.empty(resamples)
    for b in range(resamples):
        w = (
            np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)[g].astype(
                np.float64
            )
            * sw
        )
        diffs[b] = weighted_auc(ia, na, y, w) - weighted_auc(ib, nb, y, w)
    diffs = diffs[~np.isnan(diffs)]
    lo, hi = np.quantile(diffs, [0.025, 0.975]) if len(diffs) else (np.nan, np.nan)
    return {
        "auc_difference": float(est),
        "ci95": [float(lo), float(hi)],
        "share_of_resamples_above_zero": float((diffs > 0).mean()) if len(diffs) else None,
        "resamples": int(resamples),
        "resampled_by": "entity",
        "seed": random_state,
    }
