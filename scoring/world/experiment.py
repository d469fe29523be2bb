"""Does the calibration loop earn its place? Hand policy vs learned candidate in a known world.

For a world (config/world/*.yaml) and a seed: build the province, take every inspection the
double-random system made, build each one's point-in-time records (strictly before the
inspection day: an earlier INSPECTION_FAIL counts, the one being predicted never does), learn a
candidate on the earlier 70% of the random inspections with inverse-probability weights from
the tier ratios in force at each draw (complaint-driven inspections are not random and are left
out), and compare on the later 30%: AUC with the paired bootstrap interval of the difference,
problems found per 100 inspections at the current ratios, hit rate by tier, calibration, PSI,
and the oracle (the world's own risk) as the ceiling.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

from scoring.calibration.auc import paired_auc_difference
from scoring.calibration.card import item_evidence, signal_evidence, what_changed
from scoring.calibration.compare import compare_policies, smoothed_probability
from scoring.calibration.features import TIERS, decayed_counts, policy_half_lives
from scoring.calibration.learner import SignConstrainedLogisticRegression
from scoring.calibration.scores import calibration_table, psi
from scoring.calibration.training import ipw_training_set, learn_candidate, policy_view
from scoring.world._deps import Catalogue, Policy, canonical_json
from scoring.world.build import World, build_world
from scoring.world.params import WorldParams, load_world
from scoring.world.records import end_days
from scoring.world.truth import ITEM_OF_KIND


def store_frames(world: World) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The world's true records and changes in the store's shape (what a defect-free delivery
    would load), and its inspections with how they were drawn."""
    ent, rec = world.entities, world.records
    uscc = ent["uscc"].to_numpy()[rec["entity"].to_numpy()]
    item = rec["kind"].map(lambda k: ITEM_OF_KIND.get(k, k))
    item = item.where(
        rec["kind"] != "INSPECTION",
        np.where(rec["inspection_failed"], "INSPECTION_FAIL", "INSPECTION_PASS"),
    )
    cat = Catalogue.load()
    end = end_days(
        cat,
        item.to_numpy(),
        rec["decision_date"],
        rec["publicity_months_draw"].to_numpy(),
        rec["licence_years"].to_numpy(),
    )
    end = pd.to_datetime(np.where(end < 0, np.datetime64("NaT"), end.astype("datetime64[D]")))
    lic = (rec["kind"] == "LICENCE").to_numpy()
    ins_kind = (rec["kind"] == "INSPECTION").to_numpy()
    key = rec["doc_number"].astype(str) + "|" + pd.Series(uscc, index=rec.index)
    frame = pd.DataFrame(
        {
            "record_key": key,
            "uscc": uscc,
            "item_code": item.to_numpy(),
            "decision_date": rec["decision_date"].to_numpy(),
            "publicity_end_date": np.where(lic | ins_kind, pd.NaT, end),
            "valid_to_date": np.where(lic, end, pd.NaT),
        }
    )
    frame["publicity_end_date"] = pd.to_datetime(frame["publicity_end_date"])
    frame["valid_to_date"] = pd.to_datetime(frame["valid_to_date"])
    ins = frame[ins_kind].assign(
        **{
            c: rec.loc[ins_kind, c].to_numpy()
            for c in (
                "inspection_mode",
                "tier_at_draw",
                "inclusion_prob",
                "represents",
                "oracle_logit",
                "draw_month",
            )
        }
    )
    ins = ins.sort_values(["decision_date", "record_key"], kind="stable", ignore_index=True)
    ch = world.changes
    op = ch["op"].map({"信用修复": "repair", "撤销": "revoke"})
    ch = ch[op.notna()]
    keys = key.to_numpy()[ch["record_no"].to_numpy()] if len(ch) else np.array([], dtype=object)
    changes = pd.DataFrame(
        {
            "record_key": keys,
            "op": op[op.notna()].to_numpy(),
            "effective_date": ch["effective_date"].to_numpy(),
            "known_from": (
                ch["effective_date"] + pd.to_timedelta(ch["lag_days"], unit="D")
            ).to_numpy(),
        }
    )
    return ins, frame, changes


def _weighted_auc_of(model, X, y, w) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, model.decision_function(X), sample_weight=w))


def run_experiment(
    world: World,
    train_share: float | None = None,
    resamples: int | None = None,
    random_state: int = 0,
    signals: dict | None = None,
) -> dict:
    """signals: the candidate's signals beyond the items (default: every candidate signal, the
    world delivering registration dates and the register's representative changes); {} for a
    candidate over the catalogue items only."""
    params: WorldParams = world.params
    val = params.doc.get("validation", {})
    train_share = float(val.get("train_share", 0.7) if train_share is None else train_share)
    resamples = int(val.get("resamples", 2000) if resamples is None else resamples)
    hand = Policy.shipped_in_force(str(pd.Timestamp(params["window"]["start"]).date()))
    ts = _training_set(world, hand, train_share, signals)
    rows, y, w = ts["rows"], ts["y"], ts["w"]
    tr, te = ts["train"], ts["test"]
    p_tr, features = ts["train_pairs"], ts["features"]
    learner, cand = learn_candidate(ts, hand, random_state)
    hs, ht, _ = policy_view(hand, ts, "test")
    cs, ct, X_c = policy_view(cand, ts, "test")
    oracle_logit = ts["inspections"]["oracle_logit"].to_numpy(np.float64)
    truth_p = smoothed_probability(oracle_logit, float(params["outcome"]["noise_sd"]))
    o_risk = oracle_logit[te]
    ratios = {t: float(r) / 12 for t, r in params["inspections"]["ratios_per_year"].items()}
    risks = {"hand": -hs, "candidate": -cs, "oracle": o_risk}
    tiers = {"hand": ht, "candidate": ct, "oracle": _oracle_tiers(o_risk, w[te], ht)}
    if ts["signals"]:
        # What the signals add: the same learning over the catalogue items only (the previous family).
        i_s, i_t = _items_only(ts, hand, random_state)
        risks["candidate_items_only"], tiers["candidate_items_only"] = -i_s, i_t
    uscc_te = rows["uscc"].to_numpy()[te]
    comp = compare_policies(
        y[te],
        w[te],
        uscc_te,
        risks,
        tiers,
        ratios,
        truth_p=truth_p[te],
        resamples=resamples,
        random_state=random_state,
    )
    # The same comparison unweighted (AUC over the inspections as drawn, as `credit calibrate` had it).
    unweighted = paired_auc_difference(
        y[te], -cs, -hs, uscc_te, resamples=resamples, random_state=random_state
    )
    model_p = learner.model_.predict_proba(X_c.to_numpy())[:, 1]
    return {
        "world": params.name,
        "world_sha256": params.sha256,
        "seed": world.seed,
        "entities": len(world.entities),
        "inspections": _inspection_counts(ts),
        "comparison": comp,
        "auc_difference_unweighted": unweighted,
        "points_policy_auc_in_hindsight": _auc_in_hindsight(learner, ts, hand),
        "calibration": calibration_table(model_p, y[te], w[te])
        .round(4)
        .reset_index()
        .to_dict("records"),
        "psi": _psi(ts, hand, cand, hs, cs),
        "learned": _learned(learner),
        "what_changed": what_changed(
            hand,
            cand,
            item_evidence(p_tr, y[tr], w[tr], features),
            signal_evidence(ts["train_signals"], y[tr], w[tr], ts["signals"]),
        ),
        "signals": sorted(ts["signals"]),
        "candidate": cand,
        "hand": hand,
        "features": features,
        "learner": learner,
        "train_rows": (p_tr, y[tr], w[tr]),
        "test_rows": _test_rows(ts, hs, cs, model_p, o_risk),
    }


def _test_rows(ts: dict, hs, cs, model_p, o_risk) -> dict:
    te = ts["test"]
    return {
        "y": ts["y"][te],
        "w": ts["w"][te],
        "hand_score": hs,
        "cand_score": cs,
        "model_p": model_p,
        "oracle_logit": o_risk,
        "pairs": ts["test_pairs"],
        "rows": ts["rows"].iloc[te].reset_index(drop=True),
    }


def _training_set(world: World, hand: Policy, train_share: float, signals: dict | None) -> dict:
    """The same path as `credit calibrate`: random inspections only, IPW, split by date."""
    cat = Catalogue.load()
    ins, rec, chg = store_frames(world)
    uscc = world.entities["uscc"].to_numpy()
    registered = pd.Series(pd.to_datetime(world.entities["reg_date"]).to_numpy(), index=uscc)
    reps = world.representative_changes
    rep_changes = (
        pd.DataFrame(
            {"uscc": uscc[reps["entity"].to_numpy()], "change_date": reps["change_date"].to_numpy()}
        )
        if reps is not None
        else None
    )
    return ipw_training_set(
        ins,
        rec,
        chg,
        cat,
        hand,
        train_share,
        registered=registered,
        rep_changes=rep_changes,
        signals=signals,
    )


def _oracle_tiers(o_risk: np.ndarray, w: np.ndarray, hand_tier: np.ndarray) -> np.ndarray:
    """The oracle as a policy: its tiers at the hand policy's tier shares (same capacity)."""
    shares = np.cumsum([w[hand_tier == t].sum() / w.sum() for t in TIERS])
    order = np.argsort(o_risk, kind="stable")
    cw = np.cumsum(w[order]) / w.sum()
    o_tier = np.empty(len(o_risk), dtype=object)
    o_tier[order] = np.select(
        [cw <= shares[0], cw <= shares[1], cw <= shares[2]], ["A", "B", "C"], "D"
    )
    return o_tier.astype(str)


def _items_only(ts: dict, hand: Policy, random_state: int):
    """Test scores and tiers of a candidate learned over the catalogue items alone."""
    features, signs = ts["features"], ts["signs"]
    keep = [i for i, f in enumerate(features) if f not in ts["signals"]]
    ts_items = dict(
        ts,
        features=[features[i] for i in keep],
        signs=[signs[i] for i in keep],
        signals={},
        train_signals=np.zeros((len(ts["train"]), 0)),
        test_signals=np.zeros((len(ts["test"]), 0)),
    )
    _, cand_items = learn_candidate(ts_items, hand, random_state)
    i_s, i_t, _ = policy_view(cand_items, ts_items, "test")
    return i_s, i_t


def _auc_in_hindsight(learner, ts: dict, hand: Policy) -> float:
    """How much room a points policy has at all: the best sign-constrained points over these
    records, fitted on the test inspections themselves (optimistic; not a policy anyone could
    have had)."""
    te, p_te = ts["test"], ts["test_pairs"]
    y, w = ts["y"][te], ts["w"][te]
    return max(
        _weighted_auc_of(
            SignConstrainedLogisticRegression(signs=ts["signs"], C=1e4).fit(X, y, w), X, y, w
        )
        for X in (
            learner.transform(p_te, len(te), ts["test_signals"] if ts["signals"] else None),
            decayed_counts(p_te, len(te), ts["features"], policy_half_lives(hand)),
        )
    )


def _inspection_counts(ts: dict) -> dict:
    ins, y, days = ts["inspections"], ts["y"], ts["days"]
    random, tr, te, split_day = ts["random"], ts["train"], ts["test"], ts["split_day"]
    complaint = np.flatnonzero(~random & (days > split_day))
    return {
        "all": int(len(ins)),
        "random": int(random.sum()),
        "complaint_driven": int((~random).sum()),
        "train": int(len(tr)),
        "test": int(len(te)),
        "split_after": str((pd.Timestamp("1970-01-01") + pd.Timedelta(days=split_day)).date()),
        "complaint_problem_rate_test": float(y[complaint].mean()) if len(complaint) else None,
        "random_problem_rate_test": float(y[te].mean()),
    }


def _psi(ts: dict, hand: Policy, cand: Policy, hs: np.ndarray, cs: np.ndarray) -> dict:
    """Score stability: hand vs candidate on the test inspections, and each train vs test."""
    w, tr, te = ts["w"], ts["train"], ts["test"]
    hs_tr, _, _ = policy_view(hand, ts, "train")
    cs_tr, _, _ = policy_view(cand, ts, "train")
    bins = np.linspace(0, 1000, 21)

    def whist(s, ww):
        return np.histogram(s, bins, weights=ww)[0]

    return {
        "hand_vs_candidate_test": psi(whist(hs, w[te]), whist(cs, w[te])),
        "candidate_train_vs_test": psi(whist(cs_tr, w[tr]), whist(cs, w[te])),
        "hand_train_vs_test": psi(whist(hs_tr, w[tr]), whist(hs, w[te])),
    }


def _learned(learner) -> dict:
    return {
        "half_life_scale": learner.half_life_scale_,
        "prior": learner.prior_,
        "C": learner.C_,
        "kept_current_policy": learner.keep_current_,
        "validation_log_loss": {
            "current": learner.current_val_log_loss_,
            "best_learned": min((r["val_log_loss"] for r in learner.search_), default=None),
        },
    }


def summary_line(r: dict) -> str:
    c = r["comparison"]["policies"]
    h, k, o = c["hand"], c["candidate"], c["oracle"]
    a = k["vs_hand"]["auc"]
    p = k["vs_hand"]["problems_per_100"]
    pt = k["vs_hand"]["problems_per_100_truth"]
    io = c.get("candidate_items_only")
    items = (
        (
            f" | items-only diff {io['vs_hand']['auc']['difference']:+.4f} [{io['vs_hand']['auc']['ci95'][0]:+.4f}, "
            f"{io['vs_hand']['auc']['ci95'][1]:+.4f}]"
        )
        if io
        else ""
    )
    return (
        f"{r['world']:7s} seed {r['seed']:>4}: test {r['inspections']['test']:>5} | AUC hand {h['auc']:.3f} "
        f"cand {k['auc']:.3f} oracle {o['auc']:.3f} hindsight {r['points_policy_auc_in_hindsight']:.3f} | diff {a['difference']:+.4f} "
        f"[{a['ci95'][0]:+.4f}, {a['ci95'][1]:+.4f}] | per100 hand {h['problems_per_100']:.1f} "
        f"cand {k['problems_per_100']:.1f} oracle {o['problems_per_100']:.1f} diff {p['difference']:+.2f} "
        f"[{p['ci95'][0]:+.2f}, {p['ci95'][1]:+.2f}] | truth per100 hand {h['problems_per_100_truth']:.1f} "
        f"cand {k['problems_per_100_truth']:.1f} diff {pt['difference']:+.2f} [{pt['ci95'][0]:+.2f}, {pt['ci95'][1]:+.2f}]"
        + items
    )


def public_report(r: dict) -> dict:
    """The JSON-able part of a result (no fitted objects or row data)."""
    out = {
        k: v
        for k, v in r.items()
        if k not in ("candidate", "hand", "learner", "train_rows", "test_rows", "features")
    }
    out["candidate_sha256"] = r["candidate"].sha256
    out["hand_sha256"] = r["hand"].sha256
    out["points"] = {
        f: {
            "hand": r["hand"].doc["items"][f]["points"],
            "candidate": r["candidate"].doc["items"][f]["points"],
            "hand_half_life": r["hand"].doc["items"][f]["half_life_months"],
            "candidate_half_life": r["candidate"].doc["items"][f]["half_life_months"],
        }
        for f in r["features"]
        if f in r["hand"].doc["items"]
    }
    out["candidate_cut_scores"] = {t["tier"]: t["min_score"] for t in r["candidate"].doc["tiers"]}
    return out


def _policy_row(name: str, v: dict) -> str:
    """One policy's row of the model card: AUC, problems per 100 (observed, truth), hit rates."""
    vs = v.get("vs_hand", {})

    def iv(m):
        if m not in vs:
            return ""
        lo, hi = vs[m]["ci95"]
        return f" ({vs[m]['difference']:+.4f}; 95% {lo:+.4f} to {hi:+.4f})"

    hit = " / ".join(
        "–" if v["hit_rate_by_tier"][t] is None else f"{100 * v['hit_rate_by_tier'][t]:.0f}%"
        for t in TIERS
    )
    return (
        f"<tr><th>{name}</th><td>{v['auc']:.4f}{iv('auc')}</td><td>{v['problems_per_100']:.1f}"
        f"{iv('problems_per_100')}</td><td>{v['problems_per_100_truth']:.1f}{iv('problems_per_100_truth')}"
        f"</td><td>{hit}</td></tr>"
    )


def _verdict(a: dict) -> str:
    return (
        "beats the hand policy: the 95% interval of the AUC difference is above zero"
        if a["ci95"][0] > 0
        else "does not beat the hand policy with confidence: the 95% interval of the AUC difference includes "
        "zero"
        if a["ci95"][1] >= 0
        else "is worse than the hand policy: the 95% interval is below zero"
    )


def write_report(r: dict, folder) -> dict:
    """report.json, the candidate policy and a model card in words (model_card.html) in folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rep = public_report(r)
    (folder / "report.json").write_text(
        json.dumps(rep, ensure_ascii=False, indent=1, sort_keys=True, default=str), encoding="utf-8"
    )
    (folder / "candidate_policy.json").write_text(
        canonical_json(r["candidate"].doc), encoding="utf-8"
    )
    c = rep["comparison"]["policies"]

    def row(name, k):
        return _policy_row(name, c[k])

    verdict = _verdict(c["candidate"]["vs_hand"]["auc"])
    changes = "".join(
        f"<li>{html.escape(s['text'])}<br/><small>Evidence: {html.escape(s['evidence'])}</small></li>"
        for s in rep["what_changed"]
    )
    pts = "".join(
        f"<tr><td>{f}</td><td>{p['hand']}</td><td>{p['candidate']}</td><td>{p['hand_half_life']}</td>"
        f"<td>{p['candidate_half_life']}</td></tr>"
        for f, p in rep["points"].items()
    )
    ins = rep["inspections"]
    text = (
        "<html><head><meta charset='utf-8'><title>Model card</title></head><body style='font-family:sans-serif'>"
        f"<h1>模型卡 Model card — world {html.escape(rep['world'])}, seed {rep['seed']}</h1>"
        "<p>Status: <b>candidate</b>, never in force by itself (<code>credit policy promote</code> needs a named "
        "approver and a reason).</p>"
        f"<p>{rep['entities']:,} entities; {ins['random']:,} random inspections ({ins['complaint_driven']:,} "
        f"complaint-driven ones kept out). Learned on {ins['train']:,} inspections up to {ins['split_after']} with "
        f"inverse-probability weights from the tier ratios at each draw; tested on the {ins['test']:,} later ones, "
        "IPW-weighted to the population they were drawn from.</p>"
        f"<h2>Verdict</h2><p>The candidate {verdict} (paired bootstrap of entities, {rep['comparison']['resamples']} "
        f"resamples). Best points policy over these records in hindsight (fitted on the test inspections "
        f"themselves): AUC {rep['points_policy_auc_in_hindsight']:.4f}.</p>"
        "<table border=1><tr><th></th><th>AUC (difference to hand)</th><th>problems per 100 inspections, observed"
        "</th><th>per 100, world's truth</th><th>hit rate A / B / C / D</th></tr>"
        + row("hand policy", "hand")
        + row("candidate", "candidate")
        + (
            row("candidate over the catalogue items only (no signals)", "candidate_items_only")
            if "candidate_items_only" in c
            else ""
        )
        + row("oracle (ceiling)", "oracle")
        + "</table>"
        f"<p>PSI hand vs candidate scores {rep['psi']['hand_vs_candidate_test']:.4f}; candidate train vs test "
        f"{rep['psi']['candidate_train_vs_test']:.4f}.</p>"
        f"<h2>What changed, in words</h2><ul>{changes}</ul>"
        "<h2>Points and half-lives</h2><table border=1><tr><th>item</th><th>hand</th><th>candidate</th>"
        f"<th>hand half-life</th><th>candidate half-life</th></tr>{pts}</table>"
        f"<p>Cut scores {html.escape(json.dumps(rep['candidate_cut_scores']))} (at the hand policy's tier shares, "
        "so the same ratios need the same capacity).</p></body></html>"
    )
    (folder / "model_card.html").write_text(text, encoding="utf-8")
    return rep


def run_world_experiments(
    world,
    seeds: list[int],
    n_entities: int = 20_000,
    resamples: int | None = None,
    folder=None,
    progress=None,
) -> dict:
    """The experiment on one world for several seeds: a report and a model card per seed."""
    params = load_world(world)
    say = progress or (lambda msg: None)
    out = {
        "world": params.name,
        "world_sha256": params.sha256,
        "entities": n_entities,
        "runs": [],
        "summary": [],
    }
    for seed in seeds:
        say(f"world {params.name}, seed {seed}: building {n_entities:,} entities")
        r = run_experiment(build_world(n_entities, seed, params), resamples=resamples)
        sub = Path(folder) / f"{params.name}-{n_entities}-{seed}" if folder else None
        rep = write_report(r, sub) if sub else public_report(r)
        out["runs"].append(rep)
        out["summary"].append(summary_line(r))
        say(out["summary"][-1])
    out["folder"] = str(folder) if folder else None
    return out
