"""Close the loop (seed 004 row 21): learn a candidate policy from what inspectors found.

- A point-in-time training set: for every past inspection, the entity's records as known and in
  force the day before it (decay included), and whether problems were found.
- A sign-constrained logistic model (scikit-learn conventions) so that more negative records can
  never lower risk and more positive ones never raise it.
- Its coefficients become points per catalogue item: a policy the engine runs like any other.
- Temporal validation against the current policy; a model card; nothing promotes itself.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import roc_auc_score

from .catalogue import Catalogue, canonical_json, content_hash
from .evaluate import DAYS_PER_MONTH, NA_DAY, PUB_KINDS, Policy, _add_months_by_table, _days, item_table

INSPECTION_ITEMS = ("INSPECTION_PASS", "INSPECTION_FAIL")
TIERS = ("A", "B", "C", "D")


class SignConstrainedLogisticRegression(ClassifierMixin, BaseEstimator):
    """L2-regularised logistic regression whose coefficients obey given signs (+1: >= 0,
    -1: <= 0, 0: free), fitted with L-BFGS-B. Deterministic; random_state is kept for the
    scikit-learn contract (the start point is zero)."""

    def __init__(self, signs=None, C: float = 1.0, max_iter: int = 500, random_state: int | None = 0):
        self.signs = signs
        self.C = C
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X, y):
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        n, k = X.shape
        signs = np.zeros(k) if self.signs is None else np.asarray(self.signs)
        bounds = [(0, None) if s > 0 else (None, 0) if s < 0 else (None, None) for s in signs] + [(None, None)]

        def loss(w):
            z = X @ w[:-1] + w[-1]
            p = 1 / (1 + np.exp(-z))
            ll = np.sum(np.logaddexp(0, z) - y * z) / n + 0.5 / (self.C * n) * np.dot(w[:-1], w[:-1])
            grad = np.append(X.T @ (p - y) / n + w[:-1] / (self.C * n), np.sum(p - y) / n)
            return ll, grad

        res = minimize(loss, np.zeros(k + 1), jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": self.max_iter})
        self.coef_ = res.x[:-1].copy()
        self.intercept_ = float(res.x[-1])
        self.classes_ = np.array([0, 1])
        self.n_iter_ = int(res.nit)
        return self

    def decision_function(self, X):
        return np.asarray(X, dtype=np.float64) @ self.coef_ + self.intercept_

    def predict_proba(self, X):
        p = 1 / (1 + np.exp(-self.decision_function(X)))
        return np.column_stack([1 - p, p])

    def predict(self, X):
        return (self.decision_function(X) > 0).astype(int)


# --------------------------------------------------------------------------- point-in-time features

def point_in_time_records(inspections: pd.DataFrame, records: pd.DataFrame, changes: pd.DataFrame,
                          catalogue: Catalogue, policy: Policy) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The records behind each inspection's features, before decay: (rows, pairs, scored items).

    rows: one per inspection (uscc, decision_date, label). pairs: one per scored record known and
    in force the day before that inspection (row, item_code, age_days). Nothing dated or learned on
    or after the inspection day counts. Kept apart from decay so that half-lives can be learned
    without rebuilding the set.
    """
    items = item_table(catalogue, policy, "2100-01-01")
    scored = items[items["scored"] & ~items["item_code"].isin(INSPECTION_ITEMS)]["item_code"].tolist()
    scored = sorted(set(scored) | {"INSPECTION_FAIL", "INSPECTION_PASS"})
    ins = inspections.reset_index(drop=True).assign(row=lambda d: np.arange(len(d)))
    as_day = _days(ins.assign(d=pd.to_datetime(ins["decision_date"]) - pd.Timedelta(days=1)), "d")
    rec = records[records["uscc"].isin(set(ins["uscc"]))]
    pairs = ins[["row", "uscc"]].merge(rec, on="uscc", how="inner")
    day = as_day[pairs["row"].to_numpy()]
    dec = _days(pairs, "decision_date")
    # Publicity under the rules in force on that day (two rule sets: before and from 2026-04-01).
    until = np.full(len(pairs), NA_DAY, dtype=np.int32)
    for rule in catalogue.doc["publicity_rules"]:
        start = (pd.Timestamp(str(rule["effective_from"])) - pd.Timestamp("1970-01-01")).days
        tab = item_table(catalogue, policy, str(rule["effective_from"]))
        ii = pd.Categorical(pairs["item_code"], categories=tab["item_code"]).codes.astype(np.int16)
        ii = np.where(ii < 0, 0, ii).astype(np.int16)
        u = _add_months_by_table(dec, ii, tab["months"].to_numpy())
        kind = tab["pub_kind"].to_numpy()[ii]
        given = _days(pairs, "publicity_end_date")
        shorter = (kind == PUB_KINDS.index("rules")) & (given != NA_DAY) & (given < u)
        u[shorter] = given[shorter]
        u[kind == PUB_KINDS.index("validity")] = _days(pairs, "valid_to_date")[kind == PUB_KINDS.index("validity")]
        u[kind == PUB_KINDS.index("none")] = NA_DAY
        until = np.where(day >= start, u, until)
    # Valid time decides: a record counts if decided before the inspection day and still in force.
    # (Knowledge time cannot: the history before go-live was loaded in one backfill, so its
    # known_from is the load date. Everything used is known by the training cutoff.)
    ok = (dec != NA_DAY) & (dec < day + 1) & ((until == NA_DAY) | (until > day))
    if changes is not None and len(changes):
        ch = changes.assign(eff=_days(changes, "effective_date"), kn=_days(changes, "known_from"))
        for op in ("repair", "revoke"):
            c = ch[ch["op"] == op].groupby("record_key").agg(eff=("eff", "min"), kn=("kn", "min"))
            eff = pairs["record_key"].map(c["eff"]).fillna(NA_DAY).to_numpy(np.int64)
            kn = pairs["record_key"].map(c["kn"]).fillna(NA_DAY).to_numpy(np.int64)
            # A revoked record was never true; a repair counts from its date.
            hit = (kn != NA_DAY) & ((eff <= day) if op == "repair" else True)
            ok &= ~hit
    ok &= pairs["item_code"].isin(scored).to_numpy()
    age = np.clip(day - dec, 0, None)
    out_pairs = pd.DataFrame({"row": pairs["row"].to_numpy()[ok], "item_code": pairs["item_code"].to_numpy()[ok],
                              "age_days": age[ok].astype(np.int32)})
    rows = ins[["uscc", "decision_date"]].copy()
    rows["label"] = (ins["item_code"] == "INSPECTION_FAIL").astype(int).to_numpy()
    return rows, out_pairs, scored


def decayed_counts(pairs: pd.DataFrame, n_rows: int, features: list[str], half_lives: dict) -> np.ndarray:
    """Sum per row and item of 0.5 ** (age / half-life) (1 per record where the half-life is None
    or NaN): the engine's weight of each record on the day before the inspection."""
    col = pd.Categorical(pairs["item_code"], categories=features).codes
    half = np.array([np.nan if half_lives.get(f) is None else float(half_lives[f]) for f in features])[col]
    with np.errstate(invalid="ignore"):
        w = np.where(np.isnan(half), 1.0, np.power(0.5, pairs["age_days"].to_numpy(np.float64) / (half * DAYS_PER_MONTH)))
    X = np.zeros((n_rows, len(features)))
    np.add.at(X, (pairs["row"].to_numpy(), col), w)
    return X


def policy_half_lives(policy: Policy) -> dict:
    return {code: spec.get("half_life_months") for code, spec in policy.doc["items"].items()}


def point_in_time_features(inspections: pd.DataFrame, records: pd.DataFrame, changes: pd.DataFrame,
                           catalogue: Catalogue, policy: Policy) -> tuple[pd.DataFrame, list[str]]:
    """One row per inspection: decayed counts (the policy's half-lives) per scored item of the
    entity's records known and in force the day before the inspection, and the label."""
    rows, pairs, scored = point_in_time_records(inspections, records, changes, catalogue, policy)
    out = rows.copy()
    out[scored] = decayed_counts(pairs, len(rows), scored, policy_half_lives(policy))
    return out, scored


# --------------------------------------------------------------------------- policy scores from features

def policy_scores(X: pd.DataFrame, features: list[str], policy: Policy) -> tuple[np.ndarray, np.ndarray]:
    """Score and tier for feature rows under a policy (same arithmetic as the engine)."""
    pts = policy.items_frame().set_index("item_code")
    total = np.zeros(len(X))
    for d in policy.doc["dimensions"]:
        cols = [f for f in features if f in pts.index and pts.at[f, "dimension"] == d["id"]]
        raw = X[cols].to_numpy() @ pts.loc[cols, "points"].to_numpy() if cols else np.zeros(len(X))
        total += np.clip(raw, d["min"], d["max"])
    score = np.floor(np.clip(policy.doc["scale"]["base"] + total, 0, 1000) + 0.5)
    tiers = policy.doc["tiers"]
    tier = np.select([score >= t["min_score"] for t in tiers], [t["tier"] for t in tiers], "D")
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
    return {"auc": float(roc_auc_score(y, -score)) if len(set(y)) > 1 else None,
            "ks": ks_statistic(y, -score), "hit_rate_by_tier": hit,
            "lift_d_over_a": (hit["D"] / hit["A"]) if hit["A"] and hit["D"] is not None else None,
            "tier_counts": {t: int((tier == t).sum()) for t in TIERS}}


# --------------------------------------------------------------------------- candidate

def candidate_policy(model: SignConstrainedLogisticRegression, features: list[str], current: Policy,
                     X_pop: pd.DataFrame, points_per_logit: float = 150.0) -> Policy:
    """Points per item from the coefficients; cut scores at the current policy's tier shares."""
    doc = json.loads(json.dumps(current.doc))
    for f, c in zip(features, model.coef_):
        if f in doc["items"]:
            doc["items"][f]["points"] = int(np.round(-c * points_per_logit))
    doc["version_label"] = "candidate"
    doc["policy"] = current.doc["policy"]
    cand = Policy.from_doc(doc)
    cur_score, cur_tier = policy_scores(X_pop, features, current)
    cand_score, _ = policy_scores(X_pop, features, cand)
    shares = np.cumsum([(cur_tier == t).mean() for t in TIERS])
    cuts, prev = [], 1001
    for t, share in zip(TIERS[:-1], shares[:-1]):
        q = int(np.quantile(cand_score, 1 - share)) if share > 0 else 1000
        q = min(q, prev - 1)
        cuts.append(q)
        prev = q
    for t, cut in zip(doc["tiers"][:-1], cuts):
        t["min_score"] = max(1, cut)
    doc["tiers"][-1]["min_score"] = 0
    return Policy.from_doc(doc)


def calibrate(store, until: str | None = None, train_share: float = 0.7, random_state: int = 0) -> dict:
    """Build the training set, fit, validate on later inspections, write the model card, store the
    candidate by content hash. Returns the metrics for the candidate and the current policy."""
    from .pipeline import PipelineError, load_inputs

    until = until or "9999-12-31"
    with store.engine.connect() as conn:
        _, rec, chg, batches = load_inputs(store, conn, until)
    if rec.empty:
        raise PipelineError("no records in the store to calibrate on")
    cat = Catalogue.load()
    current = Policy.in_force(min(pd.Timestamp(until), pd.Timestamp("2262-01-01")).date().isoformat())
    ins = rec[rec["item_code"].isin(INSPECTION_ITEMS) & (pd.to_datetime(rec["decision_date"]) <= until)]
    ins = ins.sort_values(["decision_date", "record_key"], ignore_index=True)
    data, features = point_in_time_features(ins, rec, chg, cat, current)
    split = pd.to_datetime(data["decision_date"]).quantile(train_share)
    train = data[pd.to_datetime(data["decision_date"]) <= split]
    test = data[pd.to_datetime(data["decision_date"]) > split]
    nature = {i["code"]: i["nature"] for i in cat.items}
    signs = [1 if nature.get(f) == "negative" else -1 for f in features]
    model = SignConstrainedLogisticRegression(signs=signs, C=10.0, random_state=random_state)
    model.fit(train[features], train["label"])
    cand = candidate_policy(model, features, current, train[features])
    y = test["label"].to_numpy()
    p = model.predict_proba(test[features])[:, 1]
    cand_metrics = evaluate_policy(test[features], features, y, cand)
    base_metrics = evaluate_policy(test[features], features, y, current)
    cs, ct = policy_scores(test[features], features, cand)
    bs, bt = policy_scores(test[features], features, current)
    bins = np.linspace(0, 1000, 21)
    deciles = pd.qcut(p, 10, duplicates="drop", labels=False)
    calib = pd.DataFrame({"p": p, "y": y, "bin": deciles}).groupby("bin").agg(predicted=("p", "mean"), observed=("y", "mean"))
    candidate_id = "cand-" + cand.sha256[:16]
    out = {"candidate_id": candidate_id, "candidate_sha256": cand.sha256, "current_policy_sha256": current.sha256,
           "train": {"inspections": int(len(train)), "until": str(pd.Timestamp(split).date())},
           "test": {"inspections": int(len(test)), "problem_rate": float(y.mean()) if len(y) else None},
           "model_auc": float(roc_auc_score(y, p)) if len(set(y)) > 1 else None,
           **cand_metrics, "baseline": base_metrics,
           "psi_score": psi(np.histogram(bs, bins)[0], np.histogram(cs, bins)[0]),
           "psi_tier": psi(np.array([(bt == t).sum() for t in TIERS]), np.array([(ct == t).sum() for t in TIERS])),
           "tier_changes": int((bt != ct).sum()),
           "calibration": calib.round(4).reset_index().to_dict("records"),
           "coefficients": dict(zip(features, np.round(model.coef_, 6).tolist())),
           "input_sha256": content_hash([[b["batch_id"], b["sha256"]] for b in batches])}
    folder = store.home / "candidates" / candidate_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "policy.json").write_text(canonical_json(cand.doc), encoding="utf-8")
    (folder / "metrics.json").write_text(json.dumps(out, ensure_ascii=False, indent=1, sort_keys=True))
    out["model_card"] = str(write_model_card(folder, out, test, features, p, cs, bs))
    with store.engine.begin() as conn:
        store.save_artifact(conn, "candidate", cand.sha256, canonical_json(cand.doc), candidate_id)
    return out


def write_model_card(folder: Path, m: dict, test, features, p, cand_score, base_score) -> Path:
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .report import use_cjk_font

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
    rows = "".join(f"<tr><th>{k}</th><td>{html.escape(str(m['baseline'].get(k)))}</td><td>{html.escape(str(m.get(k)))}</td></tr>"
                   for k in ("auc", "ks", "hit_rate_by_tier", "lift_d_over_a", "tier_counts"))
    text = ("<html><head><meta charset='utf-8'><title>Model card</title></head><body style='font-family:sans-serif'>"
            f"<h1>模型卡 Model card — {m['candidate_id']}</h1><p>Status: <b>candidate</b> (not in force; promote with "
            "<code>credit policy promote</code>, approver and reason required)</p>"
            f"<p>Trained on {m['train']['inspections']} inspections up to {m['train']['until']}; tested on "
            f"{m['test']['inspections']} later ones. Model AUC {m['model_auc']}. PSI score {m['psi_score']:.4f}, "
            f"tier {m['psi_tier']:.4f}; {m['tier_changes']} test entities change tier.</p>"
            "<table border=1><tr><th>metric</th><th>current policy</th><th>candidate</th></tr>" + rows + "</table>"
            f"<img src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'/>"
            "<h2>Coefficients (sign-constrained: negative records never lower risk)</h2><pre>"
            + html.escape(json.dumps(m["coefficients"], indent=1)) + "</pre></body></html>")
    path = folder / "model_card.html"
    path.write_text(text, encoding="utf-8")
    return path


def promote(store, candidate_id: str, approved_by: str, reason: str, effective_from: str) -> dict:
    """Make a candidate the policy for evaluations from a date; recorded in the policy history."""
    from .pipeline import PipelineError
    from .store import artifacts

    if not (approved_by or "").strip() or not (reason or "").strip():
        raise PipelineError("promotion refused: an approver and a reason are required")
    with store.engine.connect() as conn:
        text = conn.execute(sa.select(artifacts.c.content_json)
                            .where(artifacts.c.label == candidate_id)).scalar()
    if text is None:
        raise PipelineError(f"no candidate {candidate_id!r}")
    doc = json.loads(text)
    pol = Policy.from_doc(doc)
    folder = store.home / "policy"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{candidate_id}.json").write_text(canonical_json(doc), encoding="utf-8")
    hist_path = folder / "history.json"
    history = json.loads(hist_path.read_text()) if hist_path.exists() else []
    entry = {"effective_from": effective_from, "policy": f"{candidate_id}.json", "sha256": pol.sha256,
             "approved_by": approved_by, "reason": reason}
    history.append(entry)
    hist_path.write_text(json.dumps(history, ensure_ascii=False, indent=1))
    return entry
