"""Learning a policy's numbers: a sign-constrained logistic model (scikit-learn conventions), so
more negative records never lower risk and more positive ones never raise it, and the search
over half-lives and regularisation it runs inside."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import log_loss, roc_auc_score

from scoring.calibration.features import decayed_counts, policy_half_lives
from scoring.calibration.scores import policy_scores
from scoring.evaluation.evaluate import (
    Policy,
)


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
        best = self._search(X, y, sw, fit_rows, val_rows)
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

    def _search(self, X: dict, y, sw, fit_rows, val_rows) -> dict | None:
        """Every (half-life scale, prior, C) fitted on the earlier rows and scored on the later
        ones (``search_``); the best by weighted log-loss, or None when either part is one-class."""
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
        return best

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
