"""A policy's scores and tiers computed from point-in-time features, and the measures of how well
they separate inspections that found problems (KS, PSI, hit rates by tier)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from scoring.calibration.features import TIERS
from scoring.evaluation.evaluate import (
    Policy,
)
from scoring.evaluation.signals import policy_signals

# --------------------------------------------------------------------------- policy scores from features


def policy_scores(
    X: pd.DataFrame, features: list[str], policy: Policy
) -> tuple[np.ndarray, np.ndarray]:
    """Score and tier for feature rows under a policy (same arithmetic as the engine)."""
    # Items and signals alike: points per unit of the column, summed per dimension, then capped.
    rules = {**{k: v for k, v in policy_signals(policy.doc).items()}, **policy.doc["items"]}
    total = np.zeros(len(X))
    for d in policy.doc["dimensions"]:
        cols = [f for f in features if f in rules and rules[f]["dimension"] == d["id"]]
        raw = (
            X[cols].to_numpy() @ np.array([float(rules[f]["points"]) for f in cols])
            if cols
            else np.zeros(len(X))
        )
        total += np.clip(raw, d["min"], d["max"])
    score = np.floor(np.clip(policy.doc["scale"]["base"] + total, 0, 1000) + 0.5)
    tiers = policy.doc["tiers"]
    tier = np.select([score >= t["min_score"] for t in tiers], [t["tier"] for t in tiers], "D")
    for cap in (
        policy.doc["overrides"].get("tier_caps") or []
    ):  # as the engine: at best the cap's tier
        capped = [f for f in features if f in cap["items"]]
        if capped:
            hit = X[capped].to_numpy().sum(axis=1) > 0
            tier = np.where(hit & (tier < cap["max_tier"]), cap["max_tier"], tier)
    listed = [f for f in features if f in policy.doc["overrides"]["severe_list_items"]]
    if listed:
        tier = np.where(X[listed].to_numpy().sum(axis=1) > 0, "D", tier)
    return score, tier


def ks_statistic(y: np.ndarray, risk: np.ndarray) -> float:
    order = np.argsort(-risk, kind="stable")
    y = y[order]
    tpr = np.cumsum(y) / max(1, y.sum())
    fpr = np.cumsum(1 - y) / max(1, (1 - y).sum())
    return float(np.max(np.abs(tpr - fpr)))


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.clip(expected / max(1, expected.sum()), 1e-6, None)
    a = np.clip(actual / max(1, actual.sum()), 1e-6, None)
    return float(np.sum((a - e) * np.log(a / e)))


def evaluate_policy(X, features, y, policy) -> dict:
    score, tier = policy_scores(X, features, policy)
    hit = {t: (float(y[tier == t].mean()) if (tier == t).any() else None) for t in TIERS}
    return {
        "auc": float(roc_auc_score(y, -score)) if len(set(y)) > 1 else None,
        "ks": ks_statistic(y, -score),
        "hit_rate_by_tier": hit,
        "lift_d_over_a": (hit["D"] / hit["A"]) if hit["A"] and hit["D"] is not None else None,
        "tier_counts": {t: int((tier == t).sum()) for t in TIERS},
    }


def calibration_table(p: np.ndarray, y: np.ndarray, w: np.ndarray) -> pd.DataFrame:
    """Weighted predicted vs observed problem rates by decile of the model's probability."""
    deciles = pd.qcut(p, 10, duplicates="drop", labels=False)
    calib = pd.DataFrame({"p": p * w, "y": y * w, "w": w, "bin": deciles}).groupby("bin").sum()
    return pd.DataFrame({"predicted": calib["p"] / calib["w"], "observed": calib["y"] / calib["w"]})
