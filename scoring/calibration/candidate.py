"""A learned model turned into a candidate policy: points per catalogue item, half-lives, caps and
tier thresholds, a document the engine runs like any other."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from scoring.calibration.features import TIERS
from scoring.calibration.learner import PolicyLearner
from scoring.calibration.scores import policy_scores
from scoring.evaluation.evaluate import (
    Policy,
)
from scoring.evaluation.signals import policy_signals

# --------------------------------------------------------------------------- candidate


def _weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    """The smallest x whose weighted cumulative share reaches q (the plain quantile's lower value
    with equal weights)."""
    order = np.argsort(x, kind="stable")
    cw = np.cumsum(w[order])
    return float(x[order][min(len(x) - 1, int(np.searchsorted(cw, q * cw[-1], side="left")))])


def candidate_policy(
    learner: PolicyLearner,
    features: list[str],
    current: Policy,
    X_pop: np.ndarray,
    X_pop_current: np.ndarray,
    weights=None,
) -> Policy:
    """The learned numbers as a policy: points per item (coefficients times the current policy's
    points per logit), the learned half-lives, caps widened where the learned points would
    otherwise clip the training population (the outcomes rise with every further record, they do
    not level off, so a binding cap throws away what was learned; caps are never narrowed), and
    cut scores at the current policy's tier shares. X_pop: the training population's counts under
    the learned half-lives; X_pop_current: under the current ones."""
    doc = json.loads(json.dumps(current.doc))
    if "pending_objection" in doc.get("overrides", {}):
        # A new document says what the engine does: an objection marks, never suspends (Art. 39).
        doc["overrides"]["pending_objection"] = "count"
    if getattr(learner, "keep_current_", False):
        # The learned numbers did not beat the current policy on the validation inspections.
        doc["version_label"] = "candidate (no change: the current policy predicted better)"
        return Policy.from_doc(doc)
    signals = dict(getattr(learner, "signals", None) or {})
    for f, c in zip(features, learner.coef_):
        if f in doc["items"]:
            doc["items"][f]["points"] = int(np.round(-c * learner.points_per_logit_))
            doc["items"][f]["half_life_months"] = learner.half_lives_[f]
        elif f in signals:
            doc.setdefault("signals", {})[f] = {
                **signals[f],
                "points": int(np.round(-c * learner.points_per_logit_)),
            }
    rules = {**policy_signals(doc), **doc["items"]}
    pts = np.array([rules[f]["points"] if f in rules else 0 for f in features], dtype=np.float64)
    for d in doc["dimensions"]:
        cols = np.array([f in rules and rules[f]["dimension"] == d["id"] for f in features])
        raw = X_pop[:, cols] @ pts[cols] if cols.any() and len(X_pop) else np.zeros(1)
        d["min"] = int(min(d["min"], np.floor(raw.min())))
        d["max"] = int(max(d["max"], np.ceil(raw.max())))
    doc["version_label"] = "candidate"
    doc["policy"] = current.doc["policy"]
    cand = Policy.from_doc(doc)
    cur_score, _ = policy_scores(pd.DataFrame(X_pop_current, columns=features), features, current)
    cand_score, _ = policy_scores(pd.DataFrame(X_pop, columns=features), features, cand)
    # Shares by score among entities the severe-list override leaves alone: counting the listed
    # ones here as well would send them to D twice over and fill D with the next-lowest scores.
    listed = [
        features.index(f) for f in current.doc["overrides"]["severe_list_items"] if f in features
    ]
    free = (
        ~(X_pop_current[:, listed].sum(axis=1) > 0)
        if listed
        else np.ones(len(cur_score), dtype=bool)
    )
    if not free.any():
        free = np.ones(len(cur_score), dtype=bool)
    cur_tier = np.select(
        [cur_score[free] >= t["min_score"] for t in current.doc["tiers"]], list(TIERS), "D"
    )
    cand_score = cand_score[free]
    # Weights (inverse inclusion probabilities) make an inspected sample stand for the population.
    w = np.ones(len(cand_score)) if weights is None else np.asarray(weights, dtype=np.float64)[free]
    shares = np.cumsum([w[cur_tier == t].sum() / w.sum() for t in TIERS])
    cuts = _cut_scores(cand_score, w, shares, weighted=weights is not None)
    for t, cut in zip(doc["tiers"][:-1], cuts):
        t["min_score"] = max(1, cut)
    doc["tiers"][-1]["min_score"] = 0
    return Policy.from_doc(doc)


def _cut_scores(cand_score: np.ndarray, w: np.ndarray, shares: np.ndarray, weighted: bool) -> list:
    """The candidate's cut scores (A, B, C) that put the given cumulative shares above them."""
    cuts, prev = [], 1001
    for _t, share in zip(TIERS[:-1], shares[:-1]):
        if share <= 0:
            q = 1000
        else:
            q = int(
                np.quantile(cand_score, 1 - share)
                if not weighted
                else _weighted_quantile(cand_score, w, 1 - share)
            )
            # Many entities share a score (e.g. nothing that counts): the cut at the quantile may put
            # a whole tie above it. Take the cut (there, or just above the tie) whose share is closer.
            above = cand_score[cand_score > q]
            if len(above):
                up = int(np.ceil(above.min()))
                if abs(w[cand_score >= up].sum() / w.sum() - share) < abs(
                    w[cand_score >= q].sum() / w.sum() - share
                ):
                    q = up
        q = min(q, prev - 1)
        cuts.append(q)
        prev = q
    return cuts
