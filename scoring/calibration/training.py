"""One training-set path: inspections weighted by their inverse inclusion probability, the
candidate signals whose data exists, and the learner fitted on them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from scoring.calibration.auc import weighted_auc
from scoring.calibration.candidate import candidate_policy
from scoring.calibration.compare import ipw_weights, weighted_hit_rates
from scoring.calibration.features import (
    TIERS,
    decayed_counts,
    point_in_time_records,
    policy_half_lives,
)
from scoring.calibration.learner import PolicyLearner
from scoring.calibration.scores import ks_statistic, policy_scores
from scoring.common.catalogue import Catalogue
from scoring.common.config import candidate_signals
from scoring.common.errors import PipelineError
from scoring.evaluation.evaluate import (
    Policy,
    day_numbers,
)
from scoring.evaluation.signals import signal_values

# --------------------------------------------------------------------------- one training-set path

# Facts the hand policies ignore, offered to the learner (config/candidate_signals.yaml).
CANDIDATE_SIGNALS = candidate_signals()


def available_signals(registered: bool, rep_changes: bool, signals: dict | None = None) -> dict:
    """The candidate signals whose data exists: registration-age bands need registration dates,
    representative changes need the register's change history (not delivered in production yet)."""
    signals = CANDIDATE_SIGNALS if signals is None else signals
    return {
        k: v
        for k, v in signals.items()
        if not (v["kind"] == "registration_age" and not registered)
        and not (v["kind"] == "legal_rep_changes" and not rep_changes)
    }


def row_signal_values(
    signals: dict,
    rows: pd.DataFrame,
    pairs: pd.DataFrame,
    registered: pd.Series | None,
    rep_changes: pd.DataFrame | None,
) -> np.ndarray:
    """Signal values of each inspection row on the day before it (as the features: nothing on or
    after the inspection day). registered: registration date by USCC; rep_changes: (uscc,
    change_date) of legal-representative changes in the register."""
    as_day = day_numbers(rows, "decision_date") - 1
    reg = None
    if registered is not None:
        reg_dates = pd.to_datetime(registered.reindex(rows["uscc"].to_numpy()).to_numpy())
        reg = day_numbers(pd.DataFrame({"d": reg_dates}), "d")
    rep = None
    if rep_changes is not None:
        m = pd.DataFrame(
            {"row": np.arange(len(rows)), "uscc": rows["uscc"].to_numpy(), "as_day": as_day}
        ).merge(
            rep_changes.assign(change_day=day_numbers(rep_changes, "change_date"))[
                ["uscc", "change_day"]
            ],
            on="uscc",
        )
        m = m[m["change_day"].to_numpy() <= m["as_day"].to_numpy()]
        rep = pd.DataFrame(
            {
                "row": m["row"].to_numpy(np.int64),
                "age_days": (m["as_day"] - m["change_day"]).to_numpy(),
            }
        )
    return signal_values(
        signals, as_day, reg if reg is not None else np.zeros(len(rows), np.int64), pairs, rep
    )


def ipw_training_set(
    inspections: pd.DataFrame,
    records: pd.DataFrame,
    changes: pd.DataFrame,
    catalogue: Catalogue,
    current: Policy,
    train_share: float = 0.7,
    registered: pd.Series | None = None,
    rep_changes: pd.DataFrame | None = None,
    signals: dict | None = None,
) -> dict:
    """The training and test sets of the calibration loop, one path for `credit calibrate`, its DAG
    and the world experiment. inspections: the inspection records (uscc, decision_date, item_code,
    record_key) with ``inclusion_prob``, the draw's probability of including that entity (NaN for
    inspections that were not drawn at random: complaint-driven, targeted, or of an unknown plan).
    Only random inspections are learned from and tested on, each weighted 1 / inclusion_prob so it
    stands for the eligible entities of its tier and month; the split is by date (earlier
    ``train_share`` of the random inspections to learn, the later ones to test)."""
    ins = inspections.sort_values(["decision_date", "record_key"], kind="stable", ignore_index=True)
    rows, pairs, features = point_in_time_records(ins, records, changes, catalogue, current)
    signals = available_signals(registered is not None, rep_changes is not None, signals)
    features = features + list(signals)
    S = (
        row_signal_values(signals, rows, pairs, registered, rep_changes)
        if signals
        else np.zeros((len(rows), 0))
    )
    days = day_numbers(rows, "decision_date")
    w = ipw_weights(ins["inclusion_prob"].to_numpy(np.float64))
    random = w > 0
    if random.sum() < 2:
        raise PipelineError(
            f"{int(random.sum())} randomly drawn inspections with a known inclusion probability: "
            "nothing to learn from without biasing towards how inspections were chosen"
        )
    split_day = int(np.quantile(days[random], train_share))
    tr = np.flatnonzero(random & (days <= split_day))
    te = np.flatnonzero(random & (days > split_day))

    def part(idx):
        p = pairs[np.isin(pairs["row"].to_numpy(), idx)]
        return p.assign(row=np.searchsorted(idx, p["row"].to_numpy()))

    nature = {i["code"]: i["nature"] for i in catalogue.items}
    y = rows["label"].to_numpy()
    return {
        "inspections": ins,
        "rows": rows,
        "pairs": pairs,
        "features": features,
        "signals": signals,
        "signs": [1 if (f in signals or nature.get(f) == "negative") else -1 for f in features],
        "days": days,
        "y": y,
        "w": w,
        "random": random,
        "split_day": split_day,
        "train": tr,
        "test": te,
        "train_pairs": part(tr),
        "test_pairs": part(te),
        "train_signals": S[tr],
        "test_signals": S[te],
    }


def learn_candidate(
    ts: dict, current: Policy, random_state: int = 0
) -> tuple[PolicyLearner, Policy]:
    """The learner fitted with inverse-probability weights on the training period, and its
    candidate policy (cut scores at the current policy's weighted tier shares)."""
    tr = ts["train"]
    learner = PolicyLearner(
        current=current,
        features=ts["features"],
        signs=ts["signs"],
        random_state=random_state,
        signals=ts["signals"] or None,
    )
    learner.fit(
        ts["train_pairs"],
        ts["y"][tr],
        ts["days"][tr],
        sample_weight=ts["w"][tr],
        signal_values=ts["train_signals"] if ts["signals"] else None,
    )
    X_tr = learner.transform(
        ts["train_pairs"], len(tr), ts["train_signals"] if ts["signals"] else None
    )
    X_tr_cur = decayed_counts(
        ts["train_pairs"], len(tr), ts["features"], policy_half_lives(current)
    )
    return learner, candidate_policy(
        learner, ts["features"], current, X_tr, X_tr_cur, weights=ts["w"][tr]
    )


def policy_view(policy: Policy, ts: dict, part: str) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Score, tier and columns of a policy on the train or test rows, as the engine would: its own
    half-lives for the items, its signals' values on the day before each inspection."""
    idx = ts[part]
    X = decayed_counts(ts[f"{part}_pairs"], len(idx), ts["features"], policy_half_lives(policy))
    sig = list(ts["signals"])
    if sig:
        X[:, [ts["features"].index(s) for s in sig]] = ts[f"{part}_signals"]
    X = pd.DataFrame(X, columns=ts["features"])
    score, tier = policy_scores(X, ts["features"], policy)
    return score, tier, X


def weighted_policy_metrics(
    score: np.ndarray, tier: np.ndarray, y: np.ndarray, w: np.ndarray
) -> dict:
    """AUC, KS, hit rate by tier and tier counts of a policy on inspections weighted to the
    population they were drawn from (inverse inclusion probabilities)."""
    idx = np.unique(-score, return_inverse=True)[1].ravel()
    hit = weighted_hit_rates(tier, y, w)
    return {
        "auc": weighted_auc(idx, int(idx.max()) + 1 if len(idx) else 0, y.astype(np.float64), w)
        if len(set(y)) > 1
        else None,
        "ks": ks_statistic(y, -score),
        "hit_rate_by_tier": hit,
        "lift_d_over_a": (hit["D"] / hit["A"]) if hit["A"] and hit["D"] is not None else None,
        "tier_counts": {t: int((tier == t).sum()) for t in TIERS},
    }
