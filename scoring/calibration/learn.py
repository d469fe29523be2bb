"""Close the loop (supervision results fed back into the evaluation): learn a candidate policy
from what inspectors found.

- A point-in-time training set: for every past inspection, the entity's records as known and in
  force the day before it (decay included), and whether problems were found.
- A sign-constrained logistic model (scikit-learn conventions) so that more negative records can
  never lower risk and more positive ones never raise it.
- Its coefficients become points per catalogue item: a policy the engine runs like any other.
- Temporal validation against the current policy; a model card; nothing promotes itself.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import log_loss, roc_auc_score

from scoring.calibration.card import item_evidence, signal_evidence, what_changed
from scoring.common.catalogue import Catalogue
from scoring.common.config import canonical_json, content_hash
from scoring.common.errors import PipelineError
from scoring.common.plots import use_cjk_font
from scoring.evaluation.evaluate import (
    DAYS_PER_MONTH,
    NA_DAY,
    Policy,
    day_numbers,
    item_table,
    publicity_until,
)
from scoring.evaluation.signals import policy_signals, signal_values
from scoring.history.inputs import load_inputs
from scoring.history.store import artifacts

INSPECTION_ITEMS = ("INSPECTION_PASS", "INSPECTION_FAIL")
TIERS = ("A", "B", "C", "D")


class SignConstrainedLogisticRegression(ClassifierMixin, BaseEstimator):
    """L2-regularised logistic regression whose coefficients obey given signs (+1: >= 0,
    -1: <= 0, 0: free), fitted with L-BFGS-B. Deterministic; random_state is kept for the
    scikit-learn contract (the start point is zero).

    coef_prior: the penalty pulls the coefficients towards these values instead of towards zero
    (e.g. the current policy's points in logits: with little data the fit stays near what experts
    wrote and moves only as far as the outcomes support)."""

    def __init__(
        self,
        signs=None,
        C: float = 1.0,
        max_iter: int = 500,
        random_state: int | None = 0,
        coef_prior=None,
    ):
        self.signs = signs
        self.C = C
        self.max_iter = max_iter
        self.random_state = random_state
        self.coef_prior = coef_prior

    def fit(self, X, y, sample_weight=None):
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        n, k = X.shape
        # Weights (e.g. inverse inclusion probabilities) are rescaled to mean 1, so C means the
        # same whatever population they stand for.
        sw = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        sw = sw * (n / sw.sum()) if n and sw.sum() > 0 else sw
        signs = np.zeros(k) if self.signs is None else np.asarray(self.signs)
        bounds = [(0, None) if s > 0 else (None, 0) if s < 0 else (None, None) for s in signs] + [
            (None, None)
        ]
        prior = (
            np.zeros(k)
            if self.coef_prior is None
            else np.asarray(self.coef_prior, dtype=np.float64)
        )

        def loss(w):
            z = X @ w[:-1] + w[-1]
            p = expit(z)
            dev = w[:-1] - prior
            ll = np.sum(sw * (np.logaddexp(0, z) - y * z)) / n + 0.5 / (self.C * n) * np.dot(
                dev, dev
            )
            r = sw * (p - y)
            grad = np.append(X.T @ r / n + dev / (self.C * n), np.sum(r) / n)
            return ll, grad

        res = minimize(
            loss,
            np.zeros(k + 1),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": self.max_iter},
        )
        self.coef_ = res.x[:-1].copy()
        self.intercept_ = float(res.x[-1])
        self.classes_ = np.array([0, 1])
        self.n_iter_ = int(res.nit)
        return self

    def decision_function(self, X):
        return np.asarray(X, dtype=np.float64) @ self.coef_ + self.intercept_

    def predict_proba(self, X):
        p = expit(self.decision_function(X))
        return np.column_stack([1 - p, p])

    def predict(self, X):
        return (self.decision_function(X) > 0).astype(int)


# --------------------------------------------------------------------------- point-in-time features


def point_in_time_records(
    inspections: pd.DataFrame,
    records: pd.DataFrame,
    changes: pd.DataFrame,
    catalogue: Catalogue,
    policy: Policy,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The records behind each inspection's features, before decay: (rows, pairs, scored items).

    rows: one per inspection (uscc, decision_date, label). pairs: one per scored record known and
    in force the day before that inspection (row, item_code, age_days). Nothing dated or learned on
    or after the inspection day counts. Kept apart from decay so that half-lives can be learned
    without rebuilding the set.
    """
    items = item_table(catalogue, policy, "2100-01-01")
    scored = items[items["scored"] & ~items["item_code"].isin(INSPECTION_ITEMS)][
        "item_code"
    ].tolist()
    scored = sorted(set(scored) | {"INSPECTION_FAIL", "INSPECTION_PASS"})
    ins = inspections.reset_index(drop=True).assign(row=lambda d: np.arange(len(d)))
    as_day = day_numbers(
        ins.assign(d=pd.to_datetime(ins["decision_date"]) - pd.Timedelta(days=1)), "d"
    )
    rec = records[records["uscc"].isin(set(ins["uscc"]))]
    pairs = ins[["row", "uscc"]].merge(rec, on="uscc", how="inner")
    day = as_day[pairs["row"].to_numpy()]
    dec = day_numbers(pairs, "decision_date")
    # Publicity under the period set in force on each record's decision date (as the engine does).
    until = publicity_until(pairs, items, catalogue)
    # Valid time decides: a record counts if decided before the inspection day and still in force.
    # (Knowledge time cannot: the history before go-live was loaded in one backfill, so its
    # known_from is the load date. Everything used is known by the training cutoff.)
    ok = (dec != NA_DAY) & (dec < day + 1) & ((until == NA_DAY) | (until > day))
    if changes is not None and len(changes):
        ch = changes.assign(
            eff=day_numbers(changes, "effective_date"), kn=day_numbers(changes, "known_from")
        )
        for op in ("repair", "revoke"):
            c = ch[ch["op"] == op].groupby("record_key").agg(eff=("eff", "min"), kn=("kn", "min"))
            eff = pairs["record_key"].map(c["eff"]).fillna(NA_DAY).to_numpy(np.int64)
            kn = pairs["record_key"].map(c["kn"]).fillna(NA_DAY).to_numpy(np.int64)
            # A revoked record was never true; a repair counts from its date.
            hit = (kn != NA_DAY) & ((eff <= day) if op == "repair" else True)
            ok &= ~hit
    ok &= pairs["item_code"].isin(scored).to_numpy()
    age = np.clip(day - dec, 0, None)
    out_pairs = pd.DataFrame(
        {
            "row": pairs["row"].to_numpy()[ok],
            "item_code": pairs["item_code"].to_numpy()[ok],
            "age_days": age[ok].astype(np.int32),
        }
    )
    rows = ins[["uscc", "decision_date"]].copy()
    rows["label"] = (ins["item_code"] == "INSPECTION_FAIL").astype(int).to_numpy()
    return rows, out_pairs, scored


def decayed_counts(
    pairs: pd.DataFrame, n_rows: int, features: list[str], half_lives: dict
) -> np.ndarray:
    """Sum per row and item of 0.5 ** (age / half-life) (1 per record where the half-life is None
    or NaN): the engine's weight of each record on the day before the inspection."""
    col = pd.Categorical(pairs["item_code"], categories=features).codes
    half = np.array(
        [np.nan if half_lives.get(f) is None else float(half_lives[f]) for f in features]
    )[col]
    with np.errstate(invalid="ignore"):
        age = pairs["age_days"].to_numpy(np.float64)
        w = np.where(np.isnan(half), 1.0, np.power(0.5, age / (half * DAYS_PER_MONTH)))
    X = np.zeros((n_rows, len(features)))
    np.add.at(X, (pairs["row"].to_numpy(), col), w)
    return X


def policy_half_lives(policy: Policy) -> dict:
    return {code: spec.get("half_life_months") for code, spec in policy.doc["items"].items()}


def point_in_time_features(
    inspections: pd.DataFrame,
    records: pd.DataFrame,
    changes: pd.DataFrame,
    catalogue: Catalogue,
    policy: Policy,
) -> tuple[pd.DataFrame, list[str]]:
    """One row per inspection: decayed counts (the policy's half-lives) per scored item of the
    entity's records known and in force the day before the inspection, and the label."""
    rows, pairs, scored = point_in_time_records(inspections, records, changes, catalogue, policy)
    out = rows.copy()
    out[scored] = decayed_counts(pairs, len(rows), scored, policy_half_lives(policy))
    return out, scored


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


# --------------------------------------------------------------------------- learning the policy's numbers

HALF_LIFE_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0, None)  # times the current half-lives; None: no decay
CS = (0.01, 0.1, 1.0, 10.0)
PRIORS = ("zero", "current")


def _integral(x):
    """Whole numbers stay ints so the candidate's canonical JSON reads like a hand-written one."""
    return int(x) if x is not None and float(x).is_integer() else x


class PolicyLearner(BaseEstimator):
    """Learns the numbers of a policy from point-in-time records and inspection outcomes.

    The candidate must be a policy the engine runs (points per item, half-lives, caps), so the
    search is over exactly those: half-lives as a scale of the current ones (or none), and the
    sign-constrained model's regularisation, pulled towards zero or towards the current policy's
    points. Choices are made on the latest ``validation_share`` of the rows it is given (a
    time-ordered fold: fit on earlier inspections, score later ones, by log-loss), then the
    chosen model is refitted on all of them. Give it the training period only.

    fit(pairs, y, days): pairs has row (index into y), item_code, age_days (point_in_time_records);
    days orders the rows in time (the inspection day).

    signals: policy signals (scoring.evaluation.signals) the candidate may give points to besides
    the items (registration-age bands, representative changes, arrears clusters); their ids are
    among ``features`` and their values per row come with fit/transform (``signal_values``, in
    the order of ``signals``). They have no half-life: a signal is a rule on the as-of day.
    """

    def __init__(
        self,
        current: Policy | None = None,
        features=None,
        signs=None,
        half_life_scales=HALF_LIFE_SCALES,
        Cs=CS,
        priors=PRIORS,
        validation_share: float = 0.3,
        random_state: int | None = 0,
        signals=None,
    ):
        self.current = current
        self.features = features
        self.signs = signs
        self.signals = signals
        self.half_life_scales = half_life_scales
        self.Cs = Cs
        self.priors = priors
        self.validation_share = validation_share
        self.random_state = random_state

    def _half_lives(self, scale) -> dict:
        cur = policy_half_lives(self.current)
        return {
            f: None if scale is None or cur.get(f) is None else _integral(float(cur[f]) * scale)
            for f in self.features
        }

    def fit(self, pairs: pd.DataFrame, y, days, sample_weight=None, signal_values=None):
        # Tiny dense problems: BLAS threads only spin against each other (5x slower on a busy 2-core box).
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            return self._fit(pairs, y, days, sample_weight, signal_values)

    def _columns(
        self, pairs: pd.DataFrame, n: int, half_lives: dict, signal_values=None
    ) -> np.ndarray:
        """Decayed counts per item, and the signals' values in their own columns."""
        X = decayed_counts(pairs, n, list(self.features), half_lives)
        sig = list(self.signals or {})
        if sig:
            if signal_values is None or np.shape(signal_values) != (n, len(sig)):
                raise ValueError(
                    f"the learner's signals {sig} need their values ({n} rows x {len(sig)})"
                )
            X[:, [list(self.features).index(s) for s in sig]] = np.asarray(
                signal_values, dtype=np.float64
            )
        return X

    def _fit(self, pairs: pd.DataFrame, y, days, sample_weight=None, signal_values=None):
        y = np.asarray(y, dtype=int)
        days = np.asarray(days)
        sw = (
            np.ones(len(y))
            if sample_weight is None
            else np.asarray(sample_weight, dtype=np.float64)
        )
        n, feats = len(y), list(self.features)
        points = (
            self.current.items_frame()
            .set_index("item_code")["points"]
            .reindex(feats)
            .fillna(0.0)
            .to_numpy()
        )
        # The current policy's scale in logits per point on these rows: the prior's scale, and the
        # candidate's points per logit (its points then read like the current ones).
        cur_score, _ = policy_scores(
            pd.DataFrame(
                decayed_counts(pairs, n, feats, policy_half_lives(self.current)), columns=feats
            ),
            feats,
            self.current,
        )
        one = SignConstrainedLogisticRegression(signs=[-1], C=1e6, random_state=self.random_state)
        per_point = (
            -float(one.fit(cur_score[:, None] / 100.0, y, sw).coef_[0]) / 100.0
            if len(set(y)) > 1
            else 0.0
        )
        self.current_logit_per_point_ = per_point
        self.points_per_logit_ = 1.0 / per_point if per_point > 1e-4 else 150.0
        lo = np.where(np.asarray(self.signs) > 0, 0.0, -np.inf)
        hi = np.where(np.asarray(self.signs) < 0, 0.0, np.inf)
        self.prior_coef_ = np.clip(-points * per_point, lo, hi)
        X = {
            s: self._columns(pairs, n, self._half_lives(s), signal_values)
            for s in self.half_life_scales
        }
        cut = np.quantile(days, 1 - self.validation_share) if n else 0
        fit_rows, val_rows = days <= cut, days > cut
        self.search_ = []
        best = None
        if len(set(y[fit_rows])) > 1 and len(set(y[val_rows])) > 1:
            for s in self.half_life_scales:
                for prior in self.priors:
                    for C in self.Cs:
                        m = self._model(C, prior).fit(X[s][fit_rows], y[fit_rows], sw[fit_rows])
                        p = m.predict_proba(X[s][val_rows])[:, 1]
                        row = {
                            "half_life_scale": s,
                            "prior": prior,
                            "C": C,
                            "val_log_loss": float(
                                log_loss(y[val_rows], p, labels=[0, 1], sample_weight=sw[val_rows])
                            ),
                            "val_auc": float(
                                roc_auc_score(y[val_rows], p, sample_weight=sw[val_rows])
                            ),
                        }
                        self.search_.append(row)
                        if best is None or row["val_log_loss"] < best["val_log_loss"] - 1e-12:
                            best = row
        # The current policy is the champion: a learned candidate must predict the validation
        # inspections better (weighted log-loss) than the current score does through a one-variable
        # logistic fitted on the same earlier rows; otherwise the candidate is the current policy.
        self.keep_current_ = False
        self.current_val_log_loss_ = None
        if best is not None and len(set(y[fit_rows])) > 1:
            champ = SignConstrainedLogisticRegression(
                signs=[-1], C=1e6, random_state=self.random_state
            ).fit(cur_score[fit_rows, None] / 100.0, y[fit_rows], sw[fit_rows])
            p = champ.predict_proba(cur_score[val_rows, None] / 100.0)[:, 1]
            self.current_val_log_loss_ = float(
                log_loss(y[val_rows], p, labels=[0, 1], sample_weight=sw[val_rows])
            )
            self.keep_current_ = bool(self.current_val_log_loss_ <= best["val_log_loss"])
        if best is None:  # too little data to choose: stay closest to the current policy
            best = {"half_life_scale": 1.0, "prior": "current", "C": min(self.Cs)}
        self.half_life_scale_, self.prior_, self.C_ = (
            best["half_life_scale"],
            best["prior"],
            best["C"],
        )
        self.half_lives_ = self._half_lives(self.half_life_scale_)
        self.validation_rows_ = int(val_rows.sum())
        self.model_ = self._model(self.C_, self.prior_).fit(X[self.half_life_scale_], y, sw)
        self.coef_ = self.model_.coef_
        return self

    def _model(self, C, prior):
        return SignConstrainedLogisticRegression(
            signs=self.signs,
            C=C,
            random_state=self.random_state,
            coef_prior=self.prior_coef_ if prior == "current" else None,
        )

    def transform(self, pairs: pd.DataFrame, n_rows: int, signal_values=None) -> np.ndarray:
        return self._columns(pairs, n_rows, self.half_lives_, signal_values)

    def predict_proba(self, pairs: pd.DataFrame, n_rows: int, signal_values=None) -> np.ndarray:
        return self.model_.predict_proba(self.transform(pairs, n_rows, signal_values))


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
    cuts, prev = [], 1001
    for _t, share in zip(TIERS[:-1], shares[:-1]):
        if share <= 0:
            q = 1000
        else:
            q = int(
                np.quantile(cand_score, 1 - share)
                if weights is None
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
    for t, cut in zip(doc["tiers"][:-1], cuts):
        t["min_score"] = max(1, cut)
    doc["tiers"][-1]["min_score"] = 0
    return Policy.from_doc(doc)


# --------------------------------------------------------------------------- how sure is "better"


def _weighted_auc(value_idx: np.ndarray, n_values: int, y: np.ndarray, w: np.ndarray) -> float:
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
    est = _weighted_auc(ia, na, y, sw) - _weighted_auc(ib, nb, y, sw)
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
        diffs[b] = _weighted_auc(ia, na, y, w) - _weighted_auc(ib, nb, y, w)
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


# --------------------------------------------------------------------------- one training-set path

ARREARS_ITEMS = [
    "HOUSING_FUND_ARREARS",
    "SOCIAL_INSURANCE_ARREARS",
    "TAX_ARREARS",
    "UTILITY_ARREARS",
]
# What a candidate may give points to besides the catalogue items: facts the hand policies ignore
# (registration-age bands, recent changes of legal representative, a cluster of different arrears).
# Each is a readable rule; the learner decides its points (never below zero risk: sign-constrained).
CANDIDATE_SIGNALS = {
    "REGISTERED_UNDER_12_MONTHS": {
        "kind": "registration_age",
        "from_months": 0,
        "under_months": 12,
        "dimension": "supervisory_risk",
        "reason": "R041",
        "zh": "成立不满12个月",
        "en": ["registered less than 12 months ago", "registered less than 12 months ago"],
    },
    "REGISTERED_12_TO_24_MONTHS": {
        "kind": "registration_age",
        "from_months": 12,
        "under_months": 24,
        "dimension": "supervisory_risk",
        "reason": "R042",
        "zh": "成立12至24个月",
        "en": ["registered 12 to 24 months ago", "registered 12 to 24 months ago"],
    },
    "REGISTERED_24_TO_36_MONTHS": {
        "kind": "registration_age",
        "from_months": 24,
        "under_months": 36,
        "dimension": "supervisory_risk",
        "reason": "R043",
        "zh": "成立24至36个月",
        "en": ["registered 24 to 36 months ago", "registered 24 to 36 months ago"],
    },
    "LEGAL_REP_CHANGES_12_MONTHS": {
        "kind": "legal_rep_changes",
        "within_months": 12,
        "dimension": "supervisory_risk",
        "reason": "R044",
        "zh": "近12个月法定代表人变更",
        "en": [
            "change of legal representative in the last 12 months",
            "changes of legal representative in the last 12 months",
        ],
    },
    "ARREARS_CLUSTER_6_MONTHS": {
        "kind": "arrears_cluster",
        "within_months": 6,
        "min_kinds": 2,
        "items": ARREARS_ITEMS,
        "dimension": "social_responsibility",
        "reason": "R045",
        "zh": "近6个月两类以上欠缴",
        "en": [
            "arrears of two or more kinds in the last 6 months",
            "arrears of two or more kinds in the last 6 months",
        ],
    },
}


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
        "auc": _weighted_auc(idx, int(idx.max()) + 1 if len(idx) else 0, y.astype(np.float64), w)
        if len(set(y)) > 1
        else None,
        "ks": ks_statistic(y, -score),
        "hit_rate_by_tier": hit,
        "lift_d_over_a": (hit["D"] / hit["A"]) if hit["A"] and hit["D"] is not None else None,
        "tier_counts": {t: int((tier == t).sum()) for t in TIERS},
    }


def calibrate(
    store, until: str | None = None, train_share: float = 0.7, random_state: int = 0
) -> dict:
    """Build the IPW training set (ipw_training_set: the same path as the world experiment), learn
    the candidate on the earlier random inspections only, compare it with the current policy on
    the later ones (weighted to the population they were drawn from), write the model card, store
    the candidate by content hash. Returns the metrics for the candidate and the current policy.

    How each inspection was chosen comes from its plan (scoring.calibration.ipw): stored plans give
    exact inclusion probabilities, plan-tagged history a reconstructed tier at the draw; complaint-
    driven and other non-random inspections are left out (counted in ``training_set``)."""
    # ipw builds on this module's point-in-time records, so it is imported here, not at the top.
    from scoring.calibration.ipw import inclusion_probabilities

    until = until or "9999-12-31"
    with store.engine.connect() as conn:
        ent, rec, chg, batches = load_inputs(store, conn, until)
    if rec.empty:
        raise PipelineError("no records in the store to calibrate on")
    cat = Catalogue.in_force(min(pd.Timestamp(until), pd.Timestamp("2262-01-01")))
    current = Policy.in_force(
        min(pd.Timestamp(until), pd.Timestamp("2262-01-01")).date().isoformat()
    )
    ins = rec[
        rec["item_code"].isin(INSPECTION_ITEMS) & (pd.to_datetime(rec["decision_date"]) <= until)
    ]
    ins = ins.sort_values(["decision_date", "record_key"], ignore_index=True)
    registered = (
        pd.Series(pd.to_datetime(ent["registered_date"]).to_numpy(), index=ent["uscc"].to_numpy())
        if len(ent) and "registered_date" in ent
        else None
    )
    prob, draw_tier, source = inclusion_probabilities(store, ins, rec, chg, registered, cat)
    ins = ins.assign(inclusion_prob=prob)
    # No feed delivers the register's change history, so representative changes are not offered.
    ts = ipw_training_set(
        ins, rec, chg, cat, current, train_share, registered=registered, rep_changes=None
    )
    learner, cand = learn_candidate(ts, current, random_state)
    tr, te, features = ts["train"], ts["test"], ts["features"]
    y, w = ts["y"][te], ts["w"][te]
    test = ts["rows"].iloc[te].reset_index(drop=True)
    cs, ct, X_cand = policy_view(cand, ts, "test")
    bs, bt, _ = policy_view(current, ts, "test")
    p = learner.model_.predict_proba(X_cand.to_numpy())[:, 1]
    cand_metrics = weighted_policy_metrics(cs, ct, y, w)
    base_metrics = weighted_policy_metrics(bs, bt, y, w)
    comparison = paired_auc_difference(
        y, -cs, -bs, test["uscc"].to_numpy(), random_state=random_state, sample_weight=w
    )
    hit = [cand_metrics["hit_rate_by_tier"][t] for t in TIERS]
    comparison["beats_baseline"] = bool(comparison["auc_difference"] > 0)
    comparison["beats_baseline_at_95"] = bool(comparison["ci95"][0] > 0)
    comparison["hit_rates_rise_a_to_d"] = bool(
        None not in hit and all(a < b for a, b in zip(hit, hit[1:]))
    )
    comparison["weighted"] = "inverse inclusion probability"
    bins = np.linspace(0, 1000, 21)
    deciles = pd.qcut(p, 10, duplicates="drop", labels=False)
    calib = pd.DataFrame({"p": p * w, "y": y * w, "w": w, "bin": deciles}).groupby("bin").sum()
    calib = pd.DataFrame(
        {"predicted": calib["p"] / calib["w"], "observed": calib["y"] / calib["w"]}
    )
    candidate_id = "cand-" + cand.sha256[:16]
    learned = {
        "half_life_scale": learner.half_life_scale_,
        "half_lives": learner.half_lives_,
        "prior": learner.prior_,
        "C": learner.C_,
        "points_per_logit": round(learner.points_per_logit_, 4),
        "kept_current_policy": learner.keep_current_,
        "validation_log_loss": {
            "current": learner.current_val_log_loss_,
            "best_learned": min((r["val_log_loss"] for r in learner.search_), default=None),
        },
        "signals": {k: v["points"] for k, v in sorted((cand.doc.get("signals") or {}).items())},
        "caps": {d["id"]: [d["min"], d["max"]] for d in cand.doc["dimensions"]},
        "cut_scores": {t["tier"]: t["min_score"] for t in cand.doc["tiers"]},
        "validation_inspections": learner.validation_rows_,
        "search": [
            {k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()}
            for r in learner.search_
        ],
    }
    src = pd.Series(source).value_counts()
    hist = lambda s, ww: np.histogram(s, bins, weights=ww)[0]  # noqa: E731
    out = {
        "candidate_id": candidate_id,
        "candidate_sha256": cand.sha256,
        "current_policy_sha256": current.sha256,
        "training_set": {
            "inspections": int(len(ins)),
            "random_from_stored_plans": int(src.get("plan", 0)),
            "random_reconstructed_draw": int(src.get("reconstructed", 0)),
            "left_out_not_random": int(src.get("not_random", 0)),
            "weights": "1 / inclusion probability (k / eligible of the tier at the draw)",
            "signals_offered": sorted(ts["signals"]),
        },
        "train": {
            "inspections": int(len(tr)),
            "until": str(
                (pd.Timestamp("1970-01-01") + pd.Timedelta(days=int(ts["split_day"]))).date()
            ),
        },
        "test": {
            "inspections": int(len(te)),
            "problem_rate": float((w * y).sum() / w.sum()) if len(y) else None,
        },
        "model_auc": float(roc_auc_score(y, p, sample_weight=w)) if len(set(y)) > 1 else None,
        **cand_metrics,
        "baseline": base_metrics,
        "comparison": comparison,
        "learned": learned,
        "psi_score": psi(hist(bs, w), hist(cs, w)),
        "psi_tier": psi(
            np.array([w[bt == t].sum() for t in TIERS]), np.array([w[ct == t].sum() for t in TIERS])
        ),
        "tier_changes": int((bt != ct).sum()),
        "calibration": calib.round(4).reset_index().to_dict("records"),
        "coefficients": dict(zip(features, np.round(learner.coef_, 6).tolist())),
        "what_changed": what_changed(
            current,
            cand,
            item_evidence(ts["train_pairs"], ts["y"][tr], ts["w"][tr], features),
            signal_evidence(ts["train_signals"], ts["y"][tr], ts["w"][tr], ts["signals"]),
        ),
        "input_sha256": content_hash([[b["batch_id"], b["sha256"]] for b in batches]),
    }
    folder = store.home / "candidates" / candidate_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "policy.json").write_text(canonical_json(cand.doc), encoding="utf-8")
    (folder / "metrics.json").write_text(
        json.dumps(out, ensure_ascii=False, indent=1, sort_keys=True)
    )
    out["model_card"] = str(write_model_card(folder, out, test, features, p, cs, bs))
    with store.engine.begin() as conn:
        store.save_artifact(conn, "candidate", cand.sha256, canonical_json(cand.doc), candidate_id)
    return out


def write_model_card(folder: Path, m: dict, test, features, p, cand_score, base_score) -> Path:
    import matplotlib  # lazy: only the reports draw, and matplotlib is slow to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    use_cjk_font()
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.4))
    x = np.arange(4)
    cand = [m["hit_rate_by_tier"][t] or 0 for t in TIERS]
    base = [m["baseline"]["hit_rate_by_tier"][t] or 0 for t in TIERS]
    ax[0].bar(x - 0.2, base, 0.4, label="现行 current")
    ax[0].bar(x + 0.2, cand, 0.4, label="候选 candidate")
    ax[0].set_xticks(x, TIERS)
    ax[0].set_title("问题发现率 hit rate by tier (later inspections)")
    ax[0].legend()
    cal = pd.DataFrame(m["calibration"])
    ax[1].plot(cal["predicted"], cal["observed"], marker="o")
    ax[1].plot([0, 1], [0, 1], ls="--", color="grey")
    ax[1].set_title("校准 calibration")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    rows = "".join(
        f"<tr><th>{k}</th><td>{html.escape(str(m['baseline'].get(k)))}</td><td>{html.escape(str(m.get(k)))}</td></tr>"
        for k in ("auc", "ks", "hit_rate_by_tier", "lift_d_over_a", "tier_counts")
    )
    c, learned = m["comparison"], m["learned"]
    ts_ = m["training_set"]
    verdict = (
        "better than the current policy, and the 95% interval excludes no difference"
        if c["beats_baseline_at_95"]
        else "better than the current policy on these inspections, but the 95% interval includes no difference"
        if c["beats_baseline"]
        else "not better than the current policy on these inspections"
    )
    decay = (
        "none (no decay)"
        if learned["half_life_scale"] is None
        else f"{learned['half_life_scale']} times the current ones"
    )
    search = "".join(
        f"<tr><td>{r['half_life_scale']}</td><td>{r['prior']}</td><td>{r['C']}</td>"
        f"<td>{r['val_log_loss']:.4f}</td><td>{r['val_auc']:.4f}</td></tr>"
        for r in learned["search"]
    )
    text = (
        "<html><head><meta charset='utf-8'><title>Model card</title></head><body style='font-family:sans-serif'>"
        f"<h1>模型卡 Model card — {m['candidate_id']}</h1><p>Status: <b>candidate</b> (not in force; promote with "
        "<code>credit policy promote</code>, approver and reason required)</p>"
        f"<p>Trained on {m['train']['inspections']} randomly drawn inspections up to {m['train']['until']}; "
        f"tested on {m['test']['inspections']} later ones; every figure weighted by 1 / the inspection's "
        f"inclusion probability, so it is the population's, not the drawn sample's "
        f"({ts_['random_from_stored_plans']} from stored plans, {ts_['random_reconstructed_draw']} with the draw's "
        f"tier reconstructed, {ts_['left_out_not_random']} complaint-driven or otherwise not random left out). "
        f"Model AUC {m['model_auc']}. PSI score {m['psi_score']:.4f}, "
        f"tier {m['psi_tier']:.4f}; {m['tier_changes']} test entities change tier.</p>"
        f"<h2>Candidate against the current policy</h2><p>AUC difference {c['auc_difference']:+.4f} "
        f"(95% interval {c['ci95'][0]:+.4f} to {c['ci95'][1]:+.4f}; {c['share_of_resamples_above_zero']:.1%} of "
        f"{c['resamples']} paired bootstrap resamples of entities above zero, seed {c['seed']}): <b>{verdict}</b>. "
        f"Hit rates rise strictly from A to D: <b>{'yes' if c['hit_rates_rise_a_to_d'] else 'no'}</b>.</p>"
        "<table border=1><tr><th>metric</th><th>current policy</th><th>candidate</th></tr>"
        + rows
        + "</table>"
        f"<img src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'/>"
        "<h2>What changed, in words</h2><ul>"
        + "".join(
            f"<li>{html.escape(x['text'])}<br/><small>Evidence: {html.escape(x['evidence'])}</small></li>"
            for x in m.get("what_changed", [])
        )
        + "</ul>"
        "<h2>What was learned (training period only)</h2>"
        f"<p>Half-lives: {html.escape(decay)}; "
        f"regularisation towards {html.escape(learned['prior'])} with C={learned['C']}; "
        f"{learned['points_per_logit']} points per logit (the current policy's scale on the training period); "
        f"caps {html.escape(json.dumps(learned['caps']))}; "
        f"cut scores {html.escape(json.dumps(learned['cut_scores']))}. "
        f"Chosen by log-loss on the latest {learned['validation_inspections']} training inspections, fitted on the "
        "earlier ones, then refitted on the whole training period:</p>"
        "<table border=1><tr><th>half-life scale</th><th>prior</th><th>C</th><th>validation log-loss</th>"
        "<th>validation AUC</th></tr>" + search + "</table>"
        "<h2>Coefficients (sign-constrained: negative records never lower risk)</h2><pre>"
        + html.escape(json.dumps(m["coefficients"], indent=1))
        + "</pre></body></html>"
    )
    path = folder / "model_card.html"
    path.write_text(text, encoding="utf-8")
    return path


def promote(store, candidate_id: str, approved_by: str, reason: str, effective_from: str) -> dict:
    """Make a candidate the policy for evaluations from a date; recorded in the policy history."""
    if not (approved_by or "").strip() or not (reason or "").strip():
        raise PipelineError("promotion refused: an approver and a reason are required")
    with store.engine.connect() as conn:
        text = conn.execute(
            sa.select(artifacts.c.content_json).where(artifacts.c.label == candidate_id)
        ).scalar()
    if text is None:
        raise PipelineError(f"no candidate {candidate_id!r}")
    doc = json.loads(text)
    pol = Policy.from_doc(doc)
    folder = store.home / "policy"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{candidate_id}.json").write_text(canonical_json(doc), encoding="utf-8")
    hist_path = folder / "history.json"
    history = json.loads(hist_path.read_text()) if hist_path.exists() else []
    entry = {
        "effective_from": effective_from,
        "policy": f"{candidate_id}.json",
        "sha256": pol.sha256,
        "approved_by": approved_by,
        "reason": reason,
    }
    history.append(entry)
    hist_path.write_text(json.dumps(history, ensure_ascii=False, indent=1))
    return entry


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
            out[(k, "auc")] = _weighted_auc(idx[k], nv[k], y, wb)
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
        d = np.array([b[(k, metric)] - b[(baseline, metric)] for b in boot])
        d = d[~np.isnan(d)]
        lo, hi = np.quantile(d, [0.025, 0.975]) if len(d) else (np.nan, np.nan)
        return {
            "difference": float(est[(k, metric)] - est[(baseline, metric)]),
            "ci95": [float(lo), float(hi)],
            "share_of_resamples_above_zero": float((d > 0).mean()) if len(d) else None,
        }

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
