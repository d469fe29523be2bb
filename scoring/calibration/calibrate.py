"""Close the loop: learn a candidate policy from what inspectors found.

- A point-in-time training set: for every past inspection, the entity's records as known and in
  force the day before it (decay included), and whether problems were found.
- A sign-constrained logistic model so that more negative records can never lower risk and more
  positive ones never raise it.
- Its coefficients become points per catalogue item: a policy the engine runs like any other.
- Temporal validation against the current policy; a model card; nothing promotes itself.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from scoring.calibration.auc import paired_auc_difference
from scoring.calibration.card import item_evidence, signal_evidence, what_changed
from scoring.calibration.features import INSPECTION_ITEMS, TIERS
from scoring.calibration.ipw import inclusion_probabilities
from scoring.calibration.model_card import write_model_card
from scoring.calibration.scores import calibration_table, psi
from scoring.calibration.training import (
    ipw_training_set,
    learn_candidate,
    policy_view,
    weighted_policy_metrics,
)
from scoring.common.catalogue import Catalogue
from scoring.common.config import canonical_json, content_hash
from scoring.common.errors import PipelineError
from scoring.evaluation.evaluate import (
    Policy,
)
from scoring.history import policy_registry
from scoring.history.inputs import load_inputs


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
    until = until or "9999-12-31"
    ins, rec, chg, batches, cat, current, registered, source = _inspections(store, until)
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
    comparison = _with_verdicts(comparison, cand_metrics)
    calib = calibration_table(p, y, w)
    candidate_id = "cand-" + cand.sha256[:16]
    learned = _learned(learner, cand)
    bins = np.linspace(0, 1000, 21)
    hist = lambda s, ww: np.histogram(s, bins, weights=ww)[0]  # noqa: E731
    out = {
        "candidate_id": candidate_id,
        "candidate_sha256": cand.sha256,
        "current_policy_sha256": current.sha256,
        "training_set": _training_set_summary(ins, source, ts),
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
    out["model_card"] = str(_save(store, cand, out, test, features, p, cs, bs))
    return out


def _inspections(store, until: str):
    """The inspections up to ``until`` with their inclusion probabilities, and what they need."""
    with store.engine.connect() as conn:
        ent, rec, chg, batches = load_inputs(store, conn, until)
        registry = policy_registry.entries(conn)
    if rec.empty:
        raise PipelineError("no records in the store to calibrate on")
    cat = Catalogue.in_force(min(pd.Timestamp(until), pd.Timestamp("2262-01-01")))
    current = Policy.in_force(
        min(pd.Timestamp(until), pd.Timestamp("2262-01-01")).date().isoformat(), registry
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
    prob, _draw_tier, source = inclusion_probabilities(
        store, ins, rec, chg, registered, cat, registry=registry
    )
    ins = ins.assign(inclusion_prob=prob)
    return ins, rec, chg, batches, cat, current, registered, source


def _with_verdicts(comparison: dict, cand_metrics: dict) -> dict:
    hit = [cand_metrics["hit_rate_by_tier"][t] for t in TIERS]
    comparison["beats_baseline"] = bool(comparison["auc_difference"] > 0)
    comparison["beats_baseline_at_95"] = bool(comparison["ci95"][0] > 0)
    comparison["hit_rates_rise_a_to_d"] = bool(
        None not in hit and all(a < b for a, b in zip(hit, hit[1:]))
    )
    comparison["weighted"] = "inverse inclusion probability"
    return comparison


def _learned(learner, cand: Policy) -> dict:
    """What the search chose, for the metrics and the model card."""
    return {
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


def _training_set_summary(ins: pd.DataFrame, source, ts: dict) -> dict:
    src = pd.Series(source).value_counts()
    return {
        "inspections": int(len(ins)),
        "random_from_stored_plans": int(src.get("plan", 0)),
        "random_reconstructed_draw": int(src.get("reconstructed", 0)),
        "left_out_not_random": int(src.get("not_random", 0)),
        "weights": "1 / inclusion probability (k / eligible of the tier at the draw)",
        "signals_offered": sorted(ts["signals"]),
    }


def _save(store, cand: Policy, out: dict, test, features, p, cs, bs):
    """The candidate's folder (policy, metrics, model card) and its stored artifact; returns
    the card's path."""
    candidate_id = out["candidate_id"]
    folder = store.home / "candidates" / candidate_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "policy.json").write_text(canonical_json(cand.doc), encoding="utf-8")
    (folder / "metrics.json").write_text(
        json.dumps(out, ensure_ascii=False, indent=1, sort_keys=True)
    )
    card = write_model_card(folder, out, test, features, p, cs, bs)
    with store.engine.begin() as conn:
        store.save_artifact(conn, "candidate", cand.sha256, canonical_json(cand.doc), candidate_id)
    return card
