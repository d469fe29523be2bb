"""What a candidate changed, in words a reviewer can check, each with its evidence from the
training inspections (IPW-weighted problem rates with and without the record)."""

from __future__ import annotations

import numpy as np
import pandas as pd

ARREARS = ("TAX_ARREARS", "SOCIAL_INSURANCE_ARREARS", "HOUSING_FUND_ARREARS", "UTILITY_ARREARS")
FRESH_DAYS, OLD_DAYS = 365, 730


def item_evidence(pairs: pd.DataFrame, y, w, features: list[str]) -> pd.DataFrame:
    """Per item: IPW-weighted problem rate of training inspections with a record of it decided
    within the last 12 months, with one older than 24 months only, and with none."""
    y = np.asarray(y, dtype=float)
    w = np.asarray(w, dtype=float)
    n = len(y)
    rows = []
    for f in features:
        p = pairs[pairs["item_code"] == f]
        fresh = np.zeros(n, dtype=bool)
        fresh[p.loc[p["age_days"] <= FRESH_DAYS, "row"].to_numpy()] = True
        anyr = np.zeros(n, dtype=bool)
        anyr[p["row"].to_numpy()] = True
        newest = p.groupby("row")["age_days"].min()
        old = np.zeros(n, dtype=bool)
        old[newest[newest > OLD_DAYS].index.to_numpy()] = True

        def rate(m):
            return float((w * y)[m].sum() / w[m].sum()) if w[m].sum() > 0 else None

        rows.append(
            {
                "item_code": f,
                "n_fresh": int(fresh.sum()),
                "rate_fresh": rate(fresh),
                "n_old_only": int(old.sum()),
                "rate_old_only": rate(old),
                "n_with": int(anyr.sum()),
                "rate_with": rate(anyr),
                "rate_without": rate(~anyr),
            }
        )
    return pd.DataFrame(rows).set_index("item_code")


def _weight(policy, item: str, age_months: float) -> float:
    spec = policy.doc["items"][item]
    h = spec.get("half_life_months")
    return float(spec["points"]) * (1.0 if h is None else 0.5 ** (age_months / float(h)))


def _pct(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{100 * x:.0f}%"


def signal_evidence(values: np.ndarray, y, w, signals: dict) -> pd.DataFrame:
    """Per candidate signal: IPW-weighted problem rate of training inspections where it applies
    (value > 0) and where it does not."""
    y = np.asarray(y, dtype=float)
    w = np.asarray(w, dtype=float)
    rows = []
    for j, sid in enumerate(signals):
        on = np.asarray(values)[:, j] > 0

        def rate(m):
            return float((w * y)[m].sum() / w[m].sum()) if w[m].sum() > 0 else None

        rows.append(
            {
                "signal": sid,
                "n_with": int(on.sum()),
                "rate_with": rate(on),
                "rate_without": rate(~on),
            }
        )
    return pd.DataFrame(rows, columns=["signal", "n_with", "rate_with", "rate_without"]).set_index(
        "signal"
    )


def _signal_sentences(cand, sig_ev: pd.DataFrame | None) -> list[dict]:
    out = []
    for sid, spec in sorted((cand.doc.get("signals") or {}).items()):
        what = spec["en"][1 if spec["kind"] == "legal_rep_changes" else 0]
        unit = "each " if spec["kind"] == "legal_rep_changes" else ""
        text = (
            f"New, not in the hand policy: {what} ({spec['zh']}) counts {unit}{spec['points']:+d} points."
            if spec["points"]
            else f"Considered, but left at 0 points (the outcomes do not support it): {what}."
        )
        ev = ""
        if sig_ev is not None and sid in sig_ev.index:
            e = sig_ev.loc[sid]
            ev = (
                f"problem rate where it applies {_pct(e['rate_with'])} ({int(e['n_with'])} training inspections), "
                f"elsewhere {_pct(e['rate_without'])}."
            )
        out.append({"text": text, "evidence": ev or "no training inspection where it applies."})
    return out


def what_changed(hand, cand, ev: pd.DataFrame, sig_ev: pd.DataFrame | None = None) -> list[dict]:
    """Sentences (text, evidence) describing the candidate against the hand policy."""
    if (
        cand.doc["items"] == hand.doc["items"]
        and not cand.doc.get("signals")
        and cand.doc["tiers"] == hand.doc["tiers"]
    ):
        return [
            {
                "text": "No change: the learned numbers did not predict the validation inspections (the latest "
                "30% of the training period) better than the current policy, so the candidate is the "
                "current policy.",
                "evidence": "weighted log-loss on the validation inspections, current policy (through a one-variable "
                "logistic) against the best learned candidate; see the report's learned section.",
            }
        ]
    out = _signal_sentences(cand, sig_ev)
    for sentences in (_penalties, _positives, _arrears, _other_items):
        out += sentences(hand, cand, ev)
    return out


def _penalties(hand, cand, ev: pd.DataFrame) -> list[dict]:
    out = []
    if {"PENALTY_GENERAL", "PENALTY_SEVERE"} <= set(ev.index):
        hg, hs = _weight(hand, "PENALTY_GENERAL", 1), _weight(hand, "PENALTY_SEVERE", 36)
        cg, cs = _weight(cand, "PENALTY_GENERAL", 1), _weight(cand, "PENALTY_SEVERE", 36)
        g, s = ev.loc["PENALTY_GENERAL"], ev.loc["PENALTY_SEVERE"]
        verb = "weigh more than" if abs(cg) > abs(cs) else "still weigh less than"
        out.append(
            {
                "text": f"Fresh general penalties {verb} old severe ones: a general penalty one month old "
                f"counts {cg:+.0f} points (hand {hg:+.0f}); a severe penalty three years old counts "
                f"{cs:+.0f} (hand {hs:+.0f}).",
                "evidence": f"problem rate after a general penalty in the last 12 months {_pct(g['rate_fresh'])} "
                f"({int(g['n_fresh'])} inspections); with only severe penalties older than 24 months "
                f"{_pct(s['rate_old_only'])} ({int(s['n_old_only'])}); with no severe penalty "
                f"{_pct(s['rate_without'])}.",
            }
        )
    return out


def _positives(hand, cand, ev: pd.DataFrame) -> list[dict]:
    out = []
    for item, label in (
        ("LICENCE", "Licences"),
        ("COMMITMENT", "Signed commitments"),
        ("INSPECTION_PASS", "Inspections without findings"),
        ("COMMENDATION", "Commendations"),
        ("VOLUNTEER_CHARITY", "Volunteering and donations"),
    ):
        if item not in ev.index:
            continue
        h, c = hand.doc["items"][item]["points"], cand.doc["items"][item]["points"]
        e = ev.loc[item]
        evidence = (
            f"problem rate with at least one {_pct(e['rate_with'])} ({int(e['n_with'])} inspections), "
            f"without {_pct(e['rate_without'])}."
        )
        if h and not c:
            out.append(
                {"text": f"{label} no longer count (hand {h:+d} each).", "evidence": evidence}
            )
        elif c and abs(c) >= 1.5 * abs(h):
            out.append({"text": f"{label} count more: {h:+d} → {c:+d} each.", "evidence": evidence})
        elif abs(c) <= 0.5 * abs(h):
            out.append({"text": f"{label} count less: {h:+d} → {c:+d} each.", "evidence": evidence})
    return out


def _arrears(hand, cand, ev: pd.DataFrame) -> list[dict]:
    out = []
    arrears = [a for a in ARREARS if a in ev.index]
    if arrears:
        h = sum(_weight(hand, a, 1) for a in arrears)
        c = sum(_weight(cand, a, 1) for a in arrears)
        h12 = sum(_weight(hand, a, 12) for a in arrears)
        c12 = sum(_weight(cand, a, 12) for a in arrears)
        fresh = [f"{a.split('_')[0].lower()} {_pct(ev.loc[a, 'rate_fresh'])}" for a in arrears]
        out.append(
            {
                "text": f"A fresh cluster of arrears (tax, social insurance, housing fund, utilities together) "
                f"counts {c:+.0f} points (hand {h:+.0f}); a year later {c12:+.0f} (hand {h12:+.0f}).",
                "evidence": "problem rate within 12 months of an arrears record: "
                + ", ".join(fresh)
                + f"; with none of them {_pct(ev.loc[arrears[0], 'rate_without'])}.",
            }
        )
    return out


def _other_items(hand, cand, ev: pd.DataFrame) -> list[dict]:
    """Any other item whose points moved by half or more."""
    out = []
    for item, spec in sorted(cand.doc["items"].items()):
        h, c = hand.doc["items"][item], spec
        if (
            item
            in (
                "LICENCE",
                "COMMITMENT",
                "INSPECTION_PASS",
                "COMMENDATION",
                "VOLUNTEER_CHARITY",
                "PENALTY_GENERAL",
                "PENALTY_SEVERE",
            )
            + ARREARS
            or item not in ev.index
        ):
            continue
        if h["points"] and (
            abs(c["points"]) >= 1.5 * abs(h["points"]) or abs(c["points"]) <= 0.5 * abs(h["points"])
        ):
            e = ev.loc[item]
            out.append(
                {
                    "text": f"{item}: {h['points']:+d} → {c['points']:+d} points, half-life "
                    f"{h['half_life_months']} → {c['half_life_months']} months.",
                    "evidence": f"problem rate with a record in the last 12 months {_pct(e['rate_fresh'])} "
                    f"({int(e['n_fresh'])} inspections), without any {_pct(e['rate_without'])}.",
                }
            )
    return out
