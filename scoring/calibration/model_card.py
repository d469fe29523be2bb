"""The candidate's HTML model card: what it was trained on, how it compares with the current
policy, and what it would change."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from scoring.calibration.features import TIERS
from scoring.common.plots import use_cjk_font


def write_model_card(folder: Path, m: dict, test, features, p, cand_score, base_score) -> Path:
    png = _figure_png(m)
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
        f"<img src='data:image/png;base64,{base64.b64encode(png).decode()}'/>"
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


def _figure_png(m: dict) -> bytes:
    """Hit rate by tier (current vs candidate) and the calibration curve, as a PNG."""
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
    return buf.getvalue()
