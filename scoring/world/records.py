"""The world's credit records and the changes to them: attributes, how long each stays in force,
positive signals, listings with their removals, document numbers, corrections and objections."""

from __future__ import annotations

import numpy as np
import pandas as pd

from scoring.common.catalogue import Catalogue
from scoring.common.law import period_bounds
from scoring.world import positive_signals, truth
from scoring.world._deps import CONFIG_DIR, Policy, load_document, seed_entries
from scoring.world.base import CREDIT_RECORD_PROVIDER, PENALTY_PROVIDERS, pick_weighted, stable_seed
from scoring.world.params import WorldParams


def _record_attributes(rng, rec: pd.DataFrame) -> pd.DataFrame:
    """What a record looks like on paper: penalty category and fine, arrears amount, delivery lag,
    publicity draw, penalty provider, licence term."""
    m = len(rec)
    kind = rec["kind"].to_numpy()
    rec = rec.copy()
    # Penalties: severe ones by category or large fines; general ones in 万元 above the simplified limit.
    is_sev = kind == "PENALTY_SEVERE"
    sev_cat = np.array(["吊销许可证件", "责令停产停业", "罚款"])[rng.integers(0, 3, m)]
    gen_cat = np.array(["罚款", "警告;罚款", "没收违法所得;罚款"])[rng.integers(0, 3, m)]
    fine_wan = np.where(
        is_sev, np.round(50 + rng.exponential(80, m), 2), np.round(0.5 + rng.exponential(3, m), 2)
    )
    cat_ = pd.Series(np.where(is_sev, sev_cat, gen_cat), index=rec.index)
    cat_ = cat_.where(~cat_.str.contains("吊销|停产"), cat_ + ";罚款")
    rec["penalty_category"] = cat_
    rec["fine_wan_yuan"] = np.where(np.isin(kind, ["PENALTY", "PENALTY_SEVERE"]), fine_wan, np.nan)
    rec["amount_yuan"] = np.where(
        np.isin(
            kind,
            ["TAX_ARREARS", "SOCIAL_INSURANCE_ARREARS", "HOUSING_FUND_ARREARS", "UTILITY_ARREARS"],
        ),
        np.round(1000 + rng.exponential(30000, m), 2),
        np.nan,
    )
    lag = rng.integers(1, 15, m)
    rec["delivery_lag_days"] = np.where(
        rng.random(m) < 0.03, lag + 60, lag
    )  # late deliveries of old records
    rec["publicity_months_draw"] = rng.random(m)
    rec["penalty_provider"] = np.array([p for p, _ in PENALTY_PROVIDERS])[
        pick_weighted(rng, PENALTY_PROVIDERS, [w for _, w in PENALTY_PROVIDERS], m)
    ]
    rec["licence_years"] = rng.integers(1, 6, m)
    return rec


def _rules_in_force_end(cat: Catalogue, severity: str, dec: pd.Series) -> pd.Series:
    """End of counting when each day applies the maximum of the rule set then in force (maxima
    that never grow over time, as in the catalogue): min(dec + m_i, max(start_{i+1}, end_{i+1}))."""
    rules = sorted(cat.doc["publicity_rules"], key=lambda r: str(r["effective_from"]))
    end = None
    for i in range(len(rules) - 1, -1, -1):
        mine = pd.Series(pd.to_datetime(np.asarray(dec))) + pd.DateOffset(
            months=int(rules[i][severity]["max_months"])
        )
        mine = mine.to_numpy().astype("datetime64[ns]")
        if end is None:
            end = mine
        else:
            start_next = np.datetime64(pd.Timestamp(str(rules[i + 1]["effective_from"])), "ns")
            end = np.minimum(mine, np.maximum(end, start_next))
    return pd.Series(end, index=dec.index)


def end_days(
    cat: Catalogue, kind: np.ndarray, dec: pd.Series, draw: np.ndarray, licence_years: np.ndarray
) -> np.ndarray:
    """Last day each record is in force for the draw's tiering (int days since 1970, -1: no end):
    the publicity period as delivered, a licence's validity."""
    dec = pd.Series(pd.to_datetime(np.asarray(dec)))
    end = pd.Series(pd.NaT, index=dec.index, dtype="datetime64[ns]")
    items = pd.Series(kind).map(lambda k: truth.ITEM_OF_KIND.get(k, k)).to_numpy()
    for it in np.unique(items):
        sel = items == it
        if it == "LICENCE":
            end[sel] = dec[sel] + pd.to_timedelta(np.asarray(licence_years)[sel] * 365, unit="D")
        elif cat.item(it).get("publicity") == "listed" and cat.item(it).get("listing_max_months"):
            # As the engine counts a listing: up to the catalogue's maximum listing term.
            end[sel] = dec[sel] + pd.DateOffset(months=int(cat.item(it)["listing_max_months"]))
        elif it == "INSPECTION_FAIL":
            # Delivered without a publicity end: the engine counts it for the maximum of the rule
            # set in force on each day (12 months, then 3 from 2026-04-01 for minor records).
            end[sel] = _rules_in_force_end(cat, cat.item(it)["severity"], dec[sel])
        else:
            end[sel] = publicity_end_dates(cat, it, dec[sel], np.asarray(draw)[sel])
    days = end.to_numpy().astype("datetime64[D]").astype(np.int64)
    return np.where(end.isna().to_numpy(), -1, days)


def build_records(
    rng, ent: pd.DataFrame, seed: int, params: WorldParams, lat: dict, cat: Catalogue, first=0
) -> pd.DataFrame:
    """Every record of the world and its changes; record numbers from ``first`` (a piece of a
    province built in pieces numbers its records after the earlier pieces')."""
    rec = truth.emit_records(np.random.default_rng(stable_seed(seed, "records")), ent, lat, params)
    rec = _record_attributes(rng, rec)
    rec["inspection_failed"] = False
    # The regulator's view for the draws: the hand policy on the records in force each evening.
    # The policy in force on each evening (the shipped seed: v1, v2 from 2026-06-01).
    policy = Policy.shipped_in_force(str(pd.Timestamp(params["window"]["start"]).date()))
    book = truth.RecordBook(policy, len(ent), _policies_in_window(params))
    # Repairs and revocations of these records are known in advance (they follow from the
    # records), so the regulator's nightly tiers already reflect them, as the engine's would.
    rec["record_no"] = np.arange(len(rec))
    chg = _build_changes(np.random.default_rng(stable_seed(seed, "changes")), rec, cat)
    _add_positive_signals(book, rec, ent, seed, cat)
    dec_day = rec["decision_date"].to_numpy().astype("datetime64[D]").astype(np.int64)
    book.add(
        rec["entity"].to_numpy(),
        rec["kind"].map(lambda k: truth.ITEM_OF_KIND.get(k, k)).to_numpy(),
        dec_day,
        _with_changes(
            end_days(
                cat,
                rec["kind"].to_numpy(),
                rec["decision_date"],
                rec["publicity_months_draw"].to_numpy(),
                rec["licence_years"].to_numpy(),
            ),
            dec_day,
            chg,
            len(rec),
        ),
    )
    agencies = load_document(CONFIG_DIR / "agencies.yaml")
    agency = next(a for a in agencies["agencies"] if a["id"] == params["inspections"]["agency"])
    caps = {t: int(v) for t, v in agencies.get("frequency_caps", {}).items()}
    ins_rng = np.random.default_rng(stable_seed(seed, "inspections"))
    pub_rng = np.random.default_rng(stable_seed(seed, "inspection-publicity"))
    ins = truth.simulate_inspections(
        ins_rng,
        ent,
        lat,
        book,
        params,
        agency,
        caps,
        int(agencies.get("exclusion_days", 90)),
        lambda items, when: end_days(
            cat, items, when, pub_rng.random(len(items)), np.ones(len(items), int)
        ),
        seed,
    )
    ins = _record_attributes(np.random.default_rng(stable_seed(seed, "inspection-attributes")), ins)
    # Repairs and objections of failed inspections come after them (not seen by the draws).
    ins["record_no"] = len(rec) + np.arange(len(ins))
    ins["inspection_failed"] = ins["inspection_failed"].astype(bool)
    chg_ins = _build_changes(
        np.random.default_rng(stable_seed(seed, "inspection-changes")), ins, cat
    )
    rec = pd.concat([rec, ins], ignore_index=True)
    rec["inspection_failed"] = rec["inspection_failed"].fillna(False).astype(bool)
    rec = rec.sort_values(["decision_date", "entity", "kind"], kind="stable", ignore_index=True)
    final_no = np.empty(len(rec), dtype=np.int64)
    final_no[rec["record_no"].to_numpy()] = first + np.arange(len(rec))
    rec["record_no"] = first + np.arange(len(rec))
    rec["doc_number"] = _doc_numbers(rec, ent)
    _add_listing_lives(rec, seed)
    changes = (
        pd.concat([c for c in (chg, chg_ins) if len(c)], ignore_index=True)
        if len(chg) or len(chg_ins)
        else chg
    )
    if len(changes):
        changes["record_no"] = final_no[changes["record_no"].to_numpy()]
        changes = changes.sort_values(
            ["effective_date", "record_no", "op"], kind="stable", ignore_index=True
        )
    return rec, changes


def _policies_in_window(params: WorldParams) -> list:
    """[(first day, Policy)] of every policy in force during the window, in order."""
    hist = seed_entries()  # the world has no store: the shipped history
    start, end = pd.Timestamp(params["window"]["start"]), pd.Timestamp(params["window"]["end"])
    days = sorted(
        {
            max(pd.Timestamp(str(e["effective_from"])), start)
            for e in hist
            if pd.Timestamp(str(e["effective_from"])) <= end
        }
    )
    out = []
    for d in days:
        p = Policy.shipped_in_force(str(d.date()))
        if not out or out[-1][1].sha256 != p.sha256:
            out.append((None if not out else int((d - pd.Timestamp("1970-01-01")).days), p))
    return out


def _add_positive_signals(
    book, rec: pd.DataFrame, ent: pd.DataFrame, seed: int, cat: Catalogue
) -> None:
    """Catalogue v2's feeds as the engine comes to know them, for the tiers of the draws under v2:
    commitment checks (kept: COMMITMENT_KEPT; not kept: COMMITMENT_BREACH) and the tax A-grade
    lists. The same draws as their deliveries (positive_signals); known to the engine from their
    delivery, and no earlier than the first catalogue listing their feed (its backfill)."""
    v2_from = _feed_listed_from("commitment_result")
    day = lambda x: np.asarray(x, dtype="datetime64[D]").astype(np.int64)  # noqa: E731
    # Commitments in the final record order (decision date, entity; stable), as the checks draw them.
    c = rec[rec["kind"] == "COMMITMENT"].sort_values(["decision_date", "entity"], kind="stable")
    check, kept, lag = positive_signals.commitment_check_draws(
        seed, c["entity"].to_numpy(), c["decision_date"].to_numpy(), ent["latent_risk"].to_numpy()
    )
    if v2_from is not None and len(c):
        item = np.where(kept, "COMMITMENT_KEPT", "COMMITMENT_BREACH")
        dec = pd.Series(check)
        # A kept commitment counts 12 months (catalogue v2); a breach as any breach (catalogue rules).
        end = np.where(
            kept,
            day(dec + pd.DateOffset(months=12)),
            end_days(
                cat,
                np.full(len(dec), "COMMITMENT_BREACH"),
                dec,
                np.full(len(dec), 0.5),
                np.ones(len(dec), int),
            ),
        )
        book.add(
            c["entity"].to_numpy(),
            item,
            day(check),
            end,
            np.maximum(day(check + lag), day(v2_from)),
        )
    tax_from = _feed_listed_from("tax_credit_rating")
    if tax_from is not None:
        from types import SimpleNamespace

        t = positive_signals.tax_a_lists(SimpleNamespace(seed=seed, entities=ent))
        pub = t["published"]
        book.add(
            t["entity"].to_numpy(),
            np.full(len(t), "TAX_CREDIT_A"),
            day(pub),
            day(pub + pd.DateOffset(months=12)),
            np.maximum(day(t["delivered"]), day(tax_from)),
        )


def _feed_listed_from(feed: str) -> pd.Timestamp | None:
    """The first day a catalogue in force lists a feed (its providers' first delivery)."""
    hist = load_document(CONFIG_DIR / "catalogue" / "history.yaml")["history"]
    for e in sorted(hist, key=lambda e: str(e["effective_from"])):
        doc = load_document(CONFIG_DIR / "catalogue" / e["catalogue"])
        if any(feed in p.get("feeds", []) for p in doc.get("providers", [])):
            return pd.Timestamp(str(e["effective_from"]))
    return None


def _with_changes(end: np.ndarray, dec_day: np.ndarray, chg: pd.DataFrame, n: int) -> np.ndarray:
    """End days after repairs (counting stops on the repair date) and revocations (never counted)."""
    end = end.copy()
    for op, stop in (("信用修复", None), ("撤销", "never")):
        c = chg[chg["op"] == op]
        if not len(c):
            continue
        no = c["record_no"].to_numpy()
        eff = c["effective_date"].to_numpy().astype("datetime64[D]").astype(np.int64)
        new = dec_day[no] if stop == "never" else eff
        end[no] = np.where(end[no] < 0, new, np.minimum(end[no], new))
    return end


REMOVAL_REASONS = {
    "DISHONEST_DEBTOR": ["已履行完毕", "纳入决定撤销", "异议成立"],
    "SEVERE_DISHONESTY_LIST": ["信用修复", "认定依据撤销"],
}


def _add_listing_lives(rec: pd.DataFrame, seed: int) -> None:
    """Listings end when the source removes them (court: on performance, on error, on an objection;
    severe list: on repair or revocation), with the date and reason the source gives; a severe
    penalty whose fine alone makes it severe carries the provider's own grade (严重). Drawn from a
    separate stream so the rest of the world does not move."""
    rng = np.random.default_rng(stable_seed(seed, "listing-lives"))
    m = len(rec)
    kind = rec["kind"].to_numpy()
    listed = np.isin(kind, list(REMOVAL_REASONS))
    removed = listed & (rng.random(m) < np.where(kind == "DISHONEST_DEBTOR", 0.5, 0.4))
    after = rng.integers(30, 900, m)
    rec["removal_date"] = pd.Series(rec["decision_date"] + pd.to_timedelta(after, unit="D")).where(
        removed, pd.NaT
    )
    pick = rng.integers(0, 3, m)
    reasons = np.array(
        [
            REMOVAL_REASONS.get(k, [""])[i % len(REMOVAL_REASONS.get(k, [""]))]
            for k, i in zip(kind, pick)
        ],
        dtype=object,
    )
    rec["removal_reason"] = np.where(removed, reasons, "")
    rec["provider_grade"] = np.where(
        (kind == "PENALTY_SEVERE") & (rec["penalty_category"] == "罚款"), "严重", ""
    )


def _doc_numbers(rec: pd.DataFrame, ent: pd.DataFrame) -> np.ndarray:
    """Decision document numbers as each provider writes them; unique per record and subject."""
    no = rec["record_no"].astype(str)
    year = rec["decision_date"].dt.year.astype(str)
    kind = rec["kind"]
    prov = kind.map(CREDIT_RECORD_PROVIDER).fillna("")
    div = pd.Series(ent["division_code"].to_numpy()[rec["entity"].to_numpy()], index=rec.index)
    return np.select(
        [
            kind.isin(["PENALTY", "PENALTY_SEVERE"]),
            kind == "LICENCE",
            kind == "INSPECTION",
            kind == "DISHONEST_DEBTOR",
        ],
        [
            "黑" + rec["penalty_provider"] + "罚字〔" + year + "〕" + no + "号",
            "黑市监许字" + no,
            # A drawn inspection's task number is its plan (commitment hash); a complaint's is not a plan.
            np.where(
                rec.get("inspection_mode", pd.Series("random", index=rec.index)) == "complaint",
                "投诉-" + rec["decision_date"].dt.strftime("%Y%m%d") + "-" + div + "-" + no,
                rec.get("plan_id", pd.Series("", index=rec.index)).fillna("").astype(str),
            ),
            "（" + year + "）黑执" + no,
        ],
        "HLJ-" + prov.str.upper() + "-" + no,
    ).astype(str)


# Negative records: the ones an entity may have corrected, revoked, objected to or repaired.
NEGATIVE_KINDS = {
    "PENALTY",
    "PENALTY_SEVERE",
    "COMMITMENT_BREACH",
    "UTILITY_ARREARS",
    "COURT_JUDGMENT",
    "TAX_ARREARS",
    "SOCIAL_INSURANCE_ARREARS",
    "HOUSING_FUND_ARREARS",
    "REFUSE_TO_PERFORM",
    "FALSIFICATION",
    "SEVERE_DISHONESTY_LIST",
    "INSPECTION",
}

CHANGE_COLUMNS = [
    "record_no",
    "op",
    "effective_date",
    "result",
    "new_publicity_end",
    "new_item_code",
    "new_grade",
]


def _build_changes(rng, rec: pd.DataFrame, cat: Catalogue) -> pd.DataFrame:
    """Corrections, revocations, objections and repairs of negative records (the rights of Arts. 35-40)."""
    neg = rec[
        rec["kind"].isin(NEGATIVE_KINDS)
        & ~((rec["kind"] == "INSPECTION") & ~rec["inspection_failed"])
    ]
    n = len(neg)
    u = rng.random(n)
    dec = neg["decision_date"].reset_index(drop=True)
    days = lambda lo, hi: pd.to_timedelta(rng.integers(lo, hi, n), unit="D")  # noqa: E731
    severe = (
        neg["kind"].isin(["PENALTY_SEVERE", "FALSIFICATION", "SEVERE_DISHONESTY_LIST"]).to_numpy()
    )
    minor = (neg["kind"] == "INSPECTION").to_numpy()
    # Repairs come after the minimum period of the set in force on the decision date (with its
    # field minimum: Order 58 gives work safety a year), plus a few days to months.
    grade = np.where(severe, "severe", np.where(minor, "minor", "general"))
    lo, _, _ = period_bounds(cat.doc, dec, grade, neg["penalty_provider"].to_numpy())
    repair_at = pd.Series(pd.NaT, index=dec.index, dtype="datetime64[ns]")
    for m in np.unique(lo):
        sel = lo == m
        repair_at[sel] = dec[sel] + pd.DateOffset(months=int(m))
    repair_at = repair_at + pd.Timedelta(days=2) + days(0, 150)
    frames = []

    def add(mask, op, eff, **extra):
        if mask.any():
            frames.append(
                pd.DataFrame(
                    {
                        "record_no": neg["record_no"].to_numpy()[mask],
                        "op": op,
                        "effective_date": pd.to_datetime(eff)[mask],
                        **{k: v[mask] for k, v in extra.items()},
                    }
                )
            )

    # Production suspension or licence revocation in environment / work safety: never repaired.
    fixed = (
        neg["kind"].eq("PENALTY_SEVERE").to_numpy()
        & neg["penalty_category"].str.contains("停产|吊销").to_numpy()
        & neg["penalty_provider"].isin(["eco", "ema"]).to_numpy()
    )
    add((u < 0.12) & ~fixed, "信用修复", repair_at.to_numpy())
    obj = (u >= 0.12) & (u < 0.15)
    marked = (dec + days(5, 40)).to_numpy()
    # Objections (Art. 39): filed, marked (the next day or the same day), decided -- mostly on
    # time, some late, a few not yet (overdue); upheld, partly upheld or rejected.
    lrng = np.random.default_rng(stable_seed("changes-lifecycle", n))
    filed = marked - pd.to_timedelta(lrng.integers(0, 2, n), unit="D").to_numpy()
    add(obj, "异议申请", filed)
    add(obj, "异议标注", marked)
    closed = obj & (rng.random(n) < 0.6)
    closed |= obj & (lrng.random(n) < 0.6)
    outcome = np.array(["维持", "维持", "维持", "采纳", "部分采纳"])[lrng.integers(0, 5, n)]
    add(closed, "异议办结", marked + days(3, 10).to_numpy(), result=outcome)
    add((u >= 0.15) & (u < 0.155), "撤销", (dec + days(20, 200)).to_numpy())
    cor = (u >= 0.155) & (u < 0.165) & ~minor
    new_end = _minimum_publicity_end(cat, dec, neg["kind"])
    # Some corrections change the item itself (Art. 38): a general penalty found to be severe.
    upgrade = np.where(
        neg["kind"].eq("PENALTY").to_numpy() & (lrng.random(n) < 0.4), "PENALTY_SEVERE", ""
    )
    add(
        cor,
        "更正",
        (dec + days(10, 60)).to_numpy(),
        new_publicity_end=new_end,
        new_item_code=upgrade,
        new_grade=np.where(upgrade != "", "严重", ""),
    )
    if not frames:
        return pd.DataFrame(columns=CHANGE_COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    out["lag_days"] = rng.integers(1, 10, len(out))
    return out.sort_values(["effective_date", "record_no", "op"], kind="stable", ignore_index=True)


def _minimum_publicity_end(cat: Catalogue, dec: pd.Series, kind: pd.Series) -> np.ndarray:
    """A corrected record's publicity end: its decision date plus the rule's minimum months."""
    n = len(dec)
    sev = kind.map({"PENALTY": "general", "PENALTY_SEVERE": "severe"}).fillna("general")
    rid = cat.rule_id_on(dec)
    rules = cat.rule_frame().set_index(["rule_id", "severity"])["min_months"]
    min_m = np.maximum([rules[(r, s)] for r, s in zip(rid, sev)], 1)
    new_end = (
        np.array(
            [d + pd.DateOffset(months=int(k)) for d, k in zip(dec, min_m)], dtype="datetime64[s]"
        )
        if n
        else np.array([], dtype="datetime64[s]")
    )
    return new_end


def publicity_end_dates(cat: Catalogue, item: str, dec: pd.Series, draw: np.ndarray) -> pd.Series:
    spec = cat.item(item)
    pub = spec.get("publicity")
    if isinstance(pub, dict):
        return dec + pd.DateOffset(months=int(pub["months"]))
    if pub != "rules":
        return pd.Series(pd.NaT, index=dec.index)
    sev = spec["severity"]
    rules = cat.rule_frame()
    rules = rules[rules["severity"] == sev]
    rid = cat.rule_id_on(dec)
    lo = rid.map(dict(zip(rules["rule_id"], rules["min_months"]))).to_numpy()
    hi = rid.map(dict(zip(rules["rule_id"], rules["max_months"]))).to_numpy()
    lo = np.maximum(lo, 1)
    months = (lo + np.floor(draw * (hi - lo + 1))).astype(int)
    months = np.minimum(months, hi)
    out = pd.Series(pd.NaT, index=dec.index, dtype="datetime64[ns]")
    for m in np.unique(months):
        sel = months == m
        out[sel] = dec[sel] + pd.DateOffset(months=int(m))
    return out
