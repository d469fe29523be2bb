"""The regulator's question: with inspections drawn by tier, how many problems does each policy
find per 100 inspections (inverse-probability weighted)?"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from scoring.calibration.auc import weighted_auc
from scoring.calibration.features import TIERS
from scoring.evaluation.evaluate import (
    Policy,
)

# --------------------------------------------------------------------------- the regulator's question


def ipw_weights(inclusion_prob) -> np.ndarray:
    """Inverse-probability weights of drawn inspections: 1 / the draw's inclusion probability in
    the tier and month it was drawn (k / N of the eligible stratum), so the inspections of a
    stratum stand for all N eligible entities. Non-random inspections (no probability) get 0."""
    p = np.asarray(inclusion_prob, dtype=np.float64)
    ok = np.isfinite(p) & (p > 0)
    return np.where(ok, 1.0 / np.where(ok, p, 1.0), 0.0)


def smoothed_probability(logit, noise_sd: float) -> np.ndarray:
    """E[sigmoid(logit + N(0, sd))] (probit approximation): the oracle's chance of a finding."""
    return expit(np.asarray(logit, dtype=np.float64) / np.sqrt(1 + np.pi * noise_sd**2 / 8))


def tiers_from_scores(
    score: np.ndarray, policy: Policy, listed: np.ndarray | None = None
) -> np.ndarray:
    tiers = policy.doc["tiers"]
    tier = np.select([score >= t["min_score"] for t in tiers], [t["tier"] for t in tiers], "D")
    return np.where(listed, "D", tier) if listed is not None else tier


def problems_per_100(tier: np.ndarray, outcome: np.ndarray, w: np.ndarray, ratios: dict) -> dict:
    """Problems found per 100 inspections if the regulator draws at ``ratios`` by these tiers:
    each tier's IPW estimate of its problem rate (outcome: 0/1 findings, or a probability),
    weighted by the inspections the ratios give it (ratio x the tier's population estimate)."""
    n_t = np.array([w[tier == t].sum() for t in TIERS])
    r_t = np.array(
        [(w * outcome)[tier == t].sum() / n if n > 0 else 0.0 for t, n in zip(TIERS, n_t)]
    )
    k_t = np.array([float(ratios[t]) for t in TIERS]) * n_t
    return {
        "per_100": float(100 * (k_t * r_t).sum() / k_t.sum()) if k_t.sum() > 0 else float("nan"),
        "inspections_share": float(k_t.sum() / n_t.sum()) if n_t.sum() > 0 else float("nan"),
    }


def weighted_hit_rates(tier: np.ndarray, y: np.ndarray, w: np.ndarray) -> dict:
    return {
        t: (
            float((w * y)[tier == t].sum() / w[tier == t].sum()) if w[tier == t].sum() > 0 else None
        )
        for t in TIERS
    }


def compare_policies(
    y,
    w,
    groups,
    risks: dict,
    tiers: dict,
    ratios: dict,
    truth_p=None,
    resamples: int = 2000,
    random_state: int = 0,
    baseline: str = "hand",
) -> dict:
    """Side by side on the same (random) inspections, IPW-weighted to the population they were
    drawn from: weighted AUC of each risk, and for each one against ``baseline`` the paired
    bootstrap (entities resampled together) 95% intervals of the AUC difference and of the
    difference in problems found per 100 inspections at ``ratios`` (from the observed findings;
    also from the truth's probabilities when given, as in a synthetic world)."""
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    names = list(risks)
    idx = {k: np.unique(np.asarray(v), return_inverse=True)[1].ravel() for k, v in risks.items()}
    nv = {k: int(v.max()) + 1 if len(v) else 0 for k, v in idx.items()}
    g = np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
    n_groups = int(g.max()) + 1 if len(g) else 0

    def stats(wb):
        out = {}
        for k in names:
            out[(k, "auc")] = weighted_auc(idx[k], nv[k], y, wb)
            if k in tiers:
                out[(k, "p100")] = problems_per_100(tiers[k], y, wb, ratios)["per_100"]
                if truth_p is not None:
                    out[(k, "p100_truth")] = problems_per_100(tiers[k], truth_p, wb, ratios)[
                        "per_100"
                    ]
        return out

    est = stats(w)
    rng = np.random.default_rng(random_state)
    boot = []
    for _ in range(resamples):
        boot.append(
            stats(np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)[g] * w)
        )

    def interval(k, metric):
        return _difference_interval(est, boot, k, baseline, metric)

    report = {
        "inspections": int(len(y)),
        "entities": n_groups,
        "weighted_problem_rate": float((w * y).sum() / w.sum()),
        "resamples": resamples,
        "resampled_by": "entity",
        "seed": random_state,
        "policies": {},
    }
    for k in names:
        r = {"auc": est[(k, "auc")]}
        if k in tiers:
            r["problems_per_100"] = est[(k, "p100")]
            r["inspections_share"] = problems_per_100(tiers[k], y, w, ratios)["inspections_share"]
            r["hit_rate_by_tier"] = weighted_hit_rates(tiers[k], y, w)
            r["tier_shares"] = {t: float(w[tiers[k] == t].sum() / w.sum()) for t in TIERS}
            if truth_p is not None:
                r["problems_per_100_truth"] = est[(k, "p100_truth")]
        if k != baseline:
            r["vs_" + baseline] = {"auc": interval(k, "auc")}
            if k in tiers and baseline in tiers:
                r["vs_" + baseline]["problems_per_100"] = interval(k, "p100")
                if truth_p is not None:
                    r["vs_" + baseline]["problems_per_100_truth"] = interval(k, "p100_truth")
        report["policies"][k] = r
    return report


def _difference_interval(est: dict, boot: list, k: str, baseline: str, metric: str) -> dict:
    """A policy's difference to the baseline in ``metric`` and its bootstrap 95% interval."""
    d = np.array([b[(k, metric)] - b[(baseline, metric)] for b in boot])
    d = d[~np.isnan(d)]
    lo, hi = np.quantile(d, [0.025, 0.975]) if len(d) else (np.nan, np.nan)
    return {
        "difference": float(est[(k, metric)] - est[(baseline, metric)]),
        "ci95": [float(lo), float(hi)],
        "share_of_resamples_above_zero": float((d > 0).mean()) if len(d) else None,
    }
