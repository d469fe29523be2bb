"""A synthetic province: market entities, their credit records, and the providers' deliveries.

The whole "world" (entities and every record from 2022-07-01 to WORLD_END) is a pure function of
the seed. ``write_deliveries`` writes what providers have delivered up to an as-of date into a
landing folder, in the layouts, encodings and formats they really use, with defects injected at a
known rate and labelled in ``ground_truth/``. Calling it again with a later date adds only the
deliveries of the new period, so day 2 looks like a real day 2.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from scoring.common import codes, geo
from scoring.common.catalogue import Catalogue
from scoring.intake.arrivals import SHANGHAI, set_arrival
from scoring.intake.ingest import parse_dates
from scoring.intake.layouts import (
    CHANGES,
    COMMITMENT_RESULT,
    CREDIT_RECORD,
    DISHONEST,
    INSPECTION,
    LICENCE,
    PENALTY,
    REGISTER,
    TAX_CREDIT,
    Layout,
)
from scoring.world import positive_signals, truth
from scoring.world._deps import CONFIG_DIR, Policy, load_document
from scoring.world.params import DEFAULT_WORLD, WorldParams, load_world

WORLD_START = pd.Timestamp("2022-07-01")
WORLD_END = pd.Timestamp("2027-12-31")
GENERATOR_VERSION = "demo-province/2"  # 2: listings with removals, objection decisions (#15)
DELIVERY_TIME = dt.time(18, 0)  # providers' files land at 18:00 Asia/Shanghai on their date

CREDIT_RECORD_PROVIDER = {
    "TAX_ARREARS": "tax",
    "SOCIAL_INSURANCE_ARREARS": "hrss",
    "HOUSING_FUND_ARREARS": "hf",
    "COURT_JUDGMENT": "court",
    "COMMITMENT": "ndrc",
    "COMMITMENT_BREACH": "ndrc",
    "REFUSE_TO_PERFORM": "ndrc",
    "FALSIFICATION": "ndrc",
    "SEVERE_DISHONESTY_LIST": "ndrc",
    "COMMENDATION": "civ",
    "VOLUNTEER_CHARITY": "civ",
    "UTILITY_ARREARS": "utility",
}
PENALTY_PROVIDERS = (("samr", 0.55), ("eco", 0.15), ("ema", 0.15), ("tax", 0.15))
AUTHORITY_SUFFIX = {
    "samr": "市场监督管理局",
    "eco": "生态环境局",
    "ema": "应急管理局",
    "tax": "税务局",
    "court": "人民法院",
    "ndrc": "发展和改革局",
    "civ": "精神文明建设委员会办公室",
    "hrss": "人力资源和社会保障局",
    "hf": "住房公积金管理中心",
    "utility": "供水集团",
}
# How each (provider, feed) is delivered: format and encoding.
DELIVERY_FORMAT = {
    ("samr", "register"): ("csv", "utf-8"),
    ("samr", "penalty"): ("csv", "utf-8-sig"),
    ("samr", "licence"): ("xlsx", None),
    ("samr", "inspection"): ("csv", "gb18030"),
    ("eco", "penalty"): ("csv", "gb18030"),
    ("ema", "penalty"): ("xlsx", None),
    ("tax", "penalty"): ("csv", "gb18030"),
    ("tax", "credit_record"): ("csv", "gb18030"),
    ("court", "dishonest_debtor"): ("csv", "utf-8-sig"),
    ("court", "credit_record"): ("csv", "utf-8"),
    ("hrss", "credit_record"): ("xlsx", None),
    ("hf", "credit_record"): ("csv", "utf-8"),
    ("ndrc", "credit_record"): ("csv", "utf-8-sig"),
    ("civ", "credit_record"): ("xlsx", None),
    ("utility", "credit_record"): ("csv", "gb18030"),
    ("ndrc", "credit_change"): ("csv", "utf-8-sig"),
    **positive_signals.DELIVERY_FORMAT,
}
XLSX_MAX_ROWS = 200_000  # beyond this a provider falls back to CSV (as real exports do)
DEFECT_KINDS = (
    "bad_check_digit",
    "unknown_item",
    "simplified_procedure",
    "future_date",
    "duplicate",
    "missing_field",
)
DEFECT_REASON = {
    "unknown_item": "unknown_item",
    "simplified_procedure": "simplified_procedure",
    "future_date": "future_date",
    "duplicate": "duplicate",
    "missing_field": "missing_field",
}


def _stable_seed(*parts) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "little")


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _pick(rng, choices, weights, n):
    w = np.asarray(weights, dtype=float)
    return rng.choice(len(choices), size=n, p=w / w.sum())


def _names(rng, n, pool_a: str, pool_b: str, lo=1, hi=2) -> np.ndarray:
    a = np.array(list(pool_a))[rng.integers(0, len(pool_a), n)]
    out = a
    k = rng.integers(lo, hi + 1, n)
    for j in range(hi):
        b = np.array(list(pool_b))[rng.integers(0, len(pool_b), n)]
        out = np.where(k > j, np.char.add(out, b), out)
    return out


def _person_names(rng, n) -> np.ndarray:
    return _names(rng, n, geo.SURNAMES, geo.GIVEN, 1, 2)


def _id_numbers(rng, n, divisions: np.ndarray) -> np.ndarray:
    birth = pd.Timestamp("1950-01-01") + pd.to_timedelta(rng.integers(0, 365 * 50, n), unit="D")
    return codes.make_id_number(
        divisions, np.asarray(birth.strftime("%Y%m%d")), rng.integers(0, 1000, n)
    )


@dataclass
class World:
    entities: (
        pd.DataFrame
    )  # one row per market entity, with its long-run latent risk (ground truth)
    records: (
        pd.DataFrame
    )  # one row per true catalogue record (before delivery defects); inspections
    #                          carry how they were drawn (mode, tier, inclusion probability) and the oracle
    changes: pd.DataFrame  # corrections, revocations, objections and repairs of those records
    seed: int
    params: WorldParams | None = None  # the world-parameter file it follows
    representative_changes: pd.DataFrame | None = (
        None  # register change history: entity, change_date
    )


def build_world(
    n_entities: int = 20_000, seed: int = 42, world: Path | str | WorldParams = DEFAULT_WORLD
) -> World:
    """Entities and every record they will ever have in the window, from the seed and the world
    file alone (config/world/default.yaml; mirror.yaml is the control where truth = hand policy)."""
    params = world if isinstance(world, WorldParams) else load_world(world)
    rng = np.random.default_rng(seed)
    n = int(n_entities)
    kinds = geo.ENTITY_KINDS
    k = _pick(rng, kinds, [x[4] for x in kinds], n)
    div = _pick(rng, geo.DIVISIONS, [d[3] for d in geo.DIVISIONS], n)
    ind = _pick(rng, geo.INDUSTRIES, [i[2] for i in geo.INDUSTRIES], n)
    div_codes = np.array([d[0] for d in geo.DIVISIONS])[div]
    # A bijective affine map of the index gives unique organisation-code bodies without a set.
    body_int = (np.arange(n, dtype=np.int64) * 7_919_333 + 10_007 + seed * 101) % 100_000_000
    body = (body_int[:, None] // (10 ** np.arange(7, -1, -1))) % 10
    first = np.array([x[0] for x in kinds])[k]
    kind_char = np.array([x[1] for x in kinds])[k]
    uscc = codes.make_uscc(first, kind_char, div_codes, body)
    # Registration dates: a long tail back to 1995, most in the last decade.
    age_days = np.minimum(rng.exponential(365 * 6, n), 365 * 30).astype(int)
    reg_date = pd.Timestamp("2027-06-30") - pd.to_timedelta(age_days, unit="D")
    offset = np.array([i[3] for i in geo.INDUSTRIES])[ind]  # the industry's mean compliance risk
    status = np.where(rng.random(n) < 0.95, "存续", np.where(rng.random(n) < 0.6, "注销", "吊销"))
    city = np.array([d[2] for d in geo.DIVISIONS])[div]
    trade = _names(rng, n, geo.TRADE_NAMES, geo.TRADE_NAMES, 1, 1)
    words = np.array([geo.INDUSTRY_WORDS[i[0]] for i in geo.INDUSTRIES])[ind]
    etype = np.array([x[2] for x in kinds])[k]
    suffix = np.select(
        [etype == "有限责任公司", etype == "个体工商户", etype == "农民专业合作社"],
        ["有限公司", "店", "专业合作社"],
        "中心",
    )
    name = np.char.add(
        np.char.add(np.char.add(np.char.add(city.astype(str), trade), words), suffix),
        np.char.zfill((np.arange(n) % 997).astype(str), 3),
    )
    rep_div = div_codes
    entities = pd.DataFrame(
        {
            "uscc": uscc,
            "name": name,
            "entity_type": etype,
            "eval_class": np.array([x[3] for x in kinds])[k],
            "subject_category": np.where(etype == "个体工商户", "个体工商户", "法人及非法人组织"),
            "industry": np.array([i[0] for i in geo.INDUSTRIES])[ind],
            "division_code": div_codes,
            "city": city,
            "reg_date": reg_date.normalize(),
            "status": status,
            "legal_rep_name": _person_names(rng, n),
            "legal_rep_id_number": _id_numbers(rng, n, rep_div),
            "phone": np.char.add("13", np.char.zfill(rng.integers(0, 10**9, n).astype(str), 9)),
        }
    )
    cat = Catalogue.load()
    lat = truth.latent_paths(
        np.random.default_rng(_stable_seed(seed, "latent")), entities, params, offset
    )
    entities["latent_risk"] = np.round(lat["stable"], 6)
    records, changes = _build_records(rng, entities, seed, params, lat, cat)
    reps = truth.representative_changes(
        np.random.default_rng(_stable_seed(seed, "representative-changes")),
        lat,
        pd.to_datetime(entities["reg_date"]).to_numpy(),
    )
    return World(
        entities=entities,
        records=records,
        changes=changes,
        seed=seed,
        params=params,
        representative_changes=reps,
    )


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
        _pick(rng, PENALTY_PROVIDERS, [w for _, w in PENALTY_PROVIDERS], m)
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


def _end_days(
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
            end[sel] = _publicity_end(cat, it, dec[sel], np.asarray(draw)[sel])
    days = end.to_numpy().astype("datetime64[D]").astype(np.int64)
    return np.where(end.isna().to_numpy(), -1, days)


def _build_records(
    rng, ent: pd.DataFrame, seed: int, params: WorldParams, lat: dict, cat: Catalogue
) -> pd.DataFrame:
    rec = truth.emit_records(np.random.default_rng(_stable_seed(seed, "records")), ent, lat, params)
    rec = _record_attributes(rng, rec)
    rec["inspection_failed"] = False
    # The regulator's view for the draws: the hand policy on the records in force each evening.
    # The policy in force on each evening (config/policy/history.yaml: v1, v2 from 2026-06-01).
    policy = Policy.in_force(str(pd.Timestamp(params["window"]["start"]).date()))
    book = truth.RecordBook(policy, len(ent), _policies_in_window(params))
    # Repairs and revocations of these records are known in advance (they follow from the
    # records), so the regulator's nightly tiers already reflect them, as the engine's would.
    rec["record_no"] = np.arange(len(rec))
    chg = _build_changes(np.random.default_rng(_stable_seed(seed, "changes")), rec, cat)
    _add_positive_signals(book, rec, ent, seed, cat)
    dec_day = rec["decision_date"].to_numpy().astype("datetime64[D]").astype(np.int64)
    book.add(
        rec["entity"].to_numpy(),
        rec["kind"].map(lambda k: truth.ITEM_OF_KIND.get(k, k)).to_numpy(),
        dec_day,
        _with_changes(
            _end_days(
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
    ins_rng = np.random.default_rng(_stable_seed(seed, "inspections"))
    pub_rng = np.random.default_rng(_stable_seed(seed, "inspection-publicity"))
    ins = truth.simulate_inspections(
        ins_rng,
        ent,
        lat,
        book,
        params,
        agency,
        caps,
        int(agencies.get("exclusion_days", 90)),
        lambda items, when: _end_days(
            cat, items, when, pub_rng.random(len(items)), np.ones(len(items), int)
        ),
        seed,
    )
    ins = _record_attributes(
        np.random.default_rng(_stable_seed(seed, "inspection-attributes")), ins
    )
    # Repairs and objections of failed inspections come after them (not seen by the draws).
    ins["record_no"] = len(rec) + np.arange(len(ins))
    ins["inspection_failed"] = ins["inspection_failed"].astype(bool)
    chg_ins = _build_changes(
        np.random.default_rng(_stable_seed(seed, "inspection-changes")), ins, cat
    )
    rec = pd.concat([rec, ins], ignore_index=True)
    rec["inspection_failed"] = rec["inspection_failed"].fillna(False).astype(bool)
    rec = rec.sort_values(["decision_date", "entity", "kind"], kind="stable", ignore_index=True)
    final_no = np.empty(len(rec), dtype=np.int64)
    final_no[rec["record_no"].to_numpy()] = np.arange(len(rec))
    rec["record_no"] = np.arange(len(rec))
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
    hist = load_document(CONFIG_DIR / "policy" / "history.yaml")["history"]
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
        p = Policy.in_force(str(d.date()))
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
            _end_days(
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
    rng = np.random.default_rng(_stable_seed(seed, "listing-lives"))
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


def _build_changes(rng, rec: pd.DataFrame, cat: Catalogue) -> pd.DataFrame:
    """Corrections, revocations, objections and repairs of negative records (the rights of Arts. 35-40)."""
    negative = {
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
    neg = rec[
        rec["kind"].isin(negative) & ~((rec["kind"] == "INSPECTION") & ~rec["inspection_failed"])
    ]
    n = len(neg)
    u = rng.random(n)
    dec = neg["decision_date"].reset_index(drop=True)
    days = lambda lo, hi: pd.to_timedelta(rng.integers(lo, hi, n), unit="D")  # noqa: E731
    severe = (
        neg["kind"].isin(["PENALTY_SEVERE", "FALSIFICATION", "SEVERE_DISHONESTY_LIST"]).to_numpy()
    )
    minor = (neg["kind"] == "INSPECTION").to_numpy()
    repair_at = (
        dec
        + pd.to_timedelta(np.where(severe, 372, np.where(minor, 5, 95)), unit="D")
        + days(0, 150)
    )
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
    lrng = np.random.default_rng(_stable_seed("changes-lifecycle", n))
    filed = marked - pd.to_timedelta(lrng.integers(0, 2, n), unit="D").to_numpy()
    add(obj, "异议申请", filed)
    add(obj, "异议标注", marked)
    closed = obj & (rng.random(n) < 0.6)
    closed |= obj & (lrng.random(n) < 0.6)
    outcome = np.array(["维持", "维持", "维持", "采纳", "部分采纳"])[lrng.integers(0, 5, n)]
    add(closed, "异议办结", marked + days(3, 10).to_numpy(), result=outcome)
    add((u >= 0.15) & (u < 0.155), "撤销", (dec + days(20, 200)).to_numpy())
    cor = (u >= 0.155) & (u < 0.165) & ~minor
    sev = neg["kind"].map({"PENALTY": "general", "PENALTY_SEVERE": "severe"}).fillna("general")
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
        return pd.DataFrame(
            columns=[
                "record_no",
                "op",
                "effective_date",
                "result",
                "new_publicity_end",
                "new_item_code",
                "new_grade",
            ]
        )
    out = pd.concat(frames, ignore_index=True)
    out["lag_days"] = rng.integers(1, 10, len(out))
    return out.sort_values(["effective_date", "record_no", "op"], kind="stable", ignore_index=True)


# --------------------------------------------------------------------------- delivery frames


def _fmt_dates(rng, d: pd.Series) -> np.ndarray:
    """Dates as providers write them: ISO, slashes, compact, Chinese."""
    d = pd.to_datetime(d)
    iso = d.dt.strftime("%Y-%m-%d")
    y, m, day = (
        d.dt.year.astype("Int64").astype("string"),
        d.dt.month.astype("Int64").astype("string"),
        d.dt.day.astype("Int64").astype("string"),
    )
    slash = y + "/" + m + "/" + day
    compact = d.dt.strftime("%Y%m%d")
    zh = y + "年" + m + "月" + day + "日"
    pick = rng.choice(4, size=len(d), p=[0.7, 0.12, 0.1, 0.08])
    out = np.select([pick == 0, pick == 1, pick == 2], [iso, slash, compact], zh)
    return np.where(d.isna(), "", out)


def _fmt_codes(rng, s: pd.Series) -> np.ndarray:
    """Mostly clean codes; some lower-case or with stray spaces (normalised, not rejected)."""
    s = s.astype(str)
    r = rng.random(len(s))
    return np.where(r < 0.02, s.str.lower(), np.where(r < 0.04, " " + s + " ", s))


def _publicity_end(cat: Catalogue, item: str, dec: pd.Series, draw: np.ndarray) -> pd.Series:
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


def _authority(ent: pd.DataFrame, idx, provider: str) -> np.ndarray:
    city = ent["city"].to_numpy()[idx]
    return np.char.add(city.astype(str), AUTHORITY_SUFFIX[provider])


def _layout_frame(layout: Layout, data: dict) -> pd.DataFrame:
    """A frame with the layout's standard Chinese headers, blank where the provider sends nothing."""
    n = len(next(iter(data.values())))
    cols = {}
    for canon, aliases in layout.columns.items():
        v = data.get(canon)
        cols[aliases[0]] = (
            np.full(n, "", dtype=object) if v is None else np.asarray(v, dtype=object)
        )
    return pd.DataFrame(cols)


def _str_amount(rng, x: np.ndarray) -> np.ndarray:
    """Amounts, sometimes with thousands separators or full-width digits."""
    s = pd.Series(x).map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
    r = rng.random(len(s))
    sep = s.map(lambda v: f"{float(v):,.2f}" if v else v)
    full = s.str.translate({ord(c): 0xFF10 + int(c) for c in "0123456789"})
    return np.where(r < 0.05, sep, np.where(r < 0.08, full, s))


def delivery_frames(
    world: World,
    cat: Catalogue,
    delivered_after: pd.Timestamp | None,
    delivered_until: pd.Timestamp,
    rng,
) -> dict[tuple[str, str], pd.DataFrame]:
    """(provider, feed) -> frame in the provider's layout, for deliveries in (after, until]."""
    ent = world.entities
    rec = world.records
    deliv = rec["decision_date"] + pd.to_timedelta(rec["delivery_lag_days"], unit="D")
    sel = deliv <= delivered_until
    if delivered_after is not None:
        sel &= deliv > delivered_after
    # A listing's removal reaches us when the source re-sends the listing with its removal date
    # and reason (a few days after the removal; never before the listing itself).
    removal = rec["removal_date"] if "removal_date" in rec else pd.Series(pd.NaT, index=rec.index)
    rem_deliv = pd.Series(
        np.maximum(
            (removal + pd.Timedelta(days=3)).to_numpy(), (deliv + pd.Timedelta(days=1)).to_numpy()
        ),
        index=rec.index,
    ).where(removal.notna())
    resend = (rem_deliv <= delivered_until) & (
        (rem_deliv > delivered_after) if delivered_after is not None else True
    )
    resend &= ~(sel & (rem_deliv <= delivered_until))  # delivered with its removal the first time
    known_removed = removal.notna() & (rem_deliv <= delivered_until)
    rec = pd.concat([rec[sel], rec[resend.fillna(False)]])
    rec["removal_date"] = removal.reindex(rec.index).where(
        known_removed.reindex(rec.index).fillna(False).to_numpy()
    )
    rec["removal_reason"] = np.where(rec["removal_date"].notna(), rec.get("removal_reason", ""), "")
    out: dict[tuple[str, str], pd.DataFrame] = {}
    fd = lambda s: _fmt_dates(rng, s)  # noqa: E731

    # Register: entities registered in the period (a snapshot of the register the first time).
    reg = ent[
        (ent["reg_date"] <= delivered_until)
        & ((ent["reg_date"] > delivered_after) if delivered_after is not None else True)
    ]
    if len(reg):
        out[("samr", "register")] = _layout_frame(
            REGISTER,
            {
                "uscc": reg["uscc"],
                "subject_name": reg["name"],
                "entity_type": reg["entity_type"],
                "industry": reg["industry"],
                "division_code": reg["division_code"],
                "decision_date": fd(reg["reg_date"]),
                "entity_status": reg["status"],
                "legal_rep_name": reg["legal_rep_name"],
                "legal_rep_id_number": reg["legal_rep_id_number"],
                "phone": reg["phone"],
            },
        )

    # 双公示 penalties, per provider.
    pen = rec[rec["kind"].isin(["PENALTY", "PENALTY_SEVERE"])]
    for prov in sorted(pen["penalty_provider"].unique()):
        p = pen[pen["penalty_provider"] == prov]
        pe = p["entity"].to_numpy()
        item = np.where(p["kind"] == "PENALTY_SEVERE", "PENALTY_SEVERE", "PENALTY_GENERAL")
        pub_end = pd.Series(pd.NaT, index=p.index, dtype="datetime64[ns]")
        for it in ("PENALTY_GENERAL", "PENALTY_SEVERE"):
            m = item == it
            pub_end[m] = _publicity_end(
                cat, it, p["decision_date"][m], p["publicity_months_draw"].to_numpy()[m]
            )
        pr = cat.provider(prov)
        doc = p["doc_number"].to_numpy()
        out[(prov, "penalty")] = _layout_frame(
            PENALTY,
            {
                "subject_name": ent["name"].to_numpy()[pe],
                "subject_category": ent["subject_category"].to_numpy()[pe],
                "uscc": _fmt_codes(rng, pd.Series(ent["uscc"].to_numpy()[pe])),
                "legal_rep_name": ent["legal_rep_name"].to_numpy()[pe],
                "legal_rep_id_type": np.full(len(p), "身份证"),
                "legal_rep_id_number": ent["legal_rep_id_number"].to_numpy()[pe],
                "doc_number": doc,
                "violation_type": np.full(len(p), "违反" + pr["name"][-6:] + "管理规定"),
                "violation_facts": np.full(len(p), "经查，当事人存在违法行为"),
                "legal_basis": np.full(len(p), "依据相关法律法规"),
                "penalty_category": p["penalty_category"].to_numpy(),
                "penalty_content": np.char.add(
                    "罚款", p["fine_wan_yuan"].round(2).astype(str).to_numpy().astype(str)
                ),
                "fine_wan_yuan": _str_amount(rng, p["fine_wan_yuan"].to_numpy()),
                "decision_date": fd(p["decision_date"]),
                "publicity_end": fd(pub_end),
                "provider_grade": p["provider_grade"].to_numpy(),
                "authority_name": _authority(ent, pe, prov),
                "source_unit": np.full(len(p), pr["name"]),
                "source_unit_uscc": np.full(len(p), pr["uscc"]),
            },
        )

    lic = rec[rec["kind"] == "LICENCE"]
    if len(lic):
        le = lic["entity"].to_numpy()
        valid_to = lic["decision_date"] + pd.to_timedelta(lic["licence_years"] * 365, unit="D")
        out[("samr", "licence")] = _layout_frame(
            LICENCE,
            {
                "subject_name": ent["name"].to_numpy()[le],
                "subject_category": ent["subject_category"].to_numpy()[le],
                "uscc": _fmt_codes(rng, pd.Series(ent["uscc"].to_numpy()[le])),
                "legal_rep_name": ent["legal_rep_name"].to_numpy()[le],
                "doc_title": np.full(len(lic), "准予行政许可决定书"),
                "doc_number": lic["doc_number"].to_numpy(),
                "licence_category": np.full(len(lic), "普通"),
                "licence_name": np.array(
                    ["食品经营许可证", "道路运输经营许可证", "排污许可证", "建筑业企业资质证书"]
                )[lic["record_no"].to_numpy() % 4],
                "licence_number": np.char.add(
                    "JY", lic["record_no"].astype(str).to_numpy().astype(str)
                ),
                "decision_date": fd(lic["decision_date"]),
                "valid_from": fd(lic["decision_date"]),
                "valid_to": fd(valid_to),
                "authority_name": _authority(ent, le, "samr"),
                "licence_status": np.full(len(lic), "1"),
                "source_unit": np.full(len(lic), cat.provider("samr")["name"]),
                "source_unit_uscc": np.full(len(lic), cat.provider("samr")["uscc"]),
            },
        )

    ins = rec[rec["kind"] == "INSPECTION"]
    if len(ins):
        ie = ins["entity"].to_numpy()
        task = ins["doc_number"].to_numpy()
        result = np.where(
            ins["inspection_failed"],
            np.array(["发现问题，已责令改正", "发现问题，移交处理"])[
                ins["record_no"].to_numpy() % 2
            ],
            "未发现问题",
        )
        out[("samr", "inspection")] = _layout_frame(
            INSPECTION,
            {
                "doc_number": task,
                "subject_name": ent["name"].to_numpy()[ie],
                "uscc": _fmt_codes(rng, pd.Series(ent["uscc"].to_numpy()[ie])),
                "decision_date": fd(ins["decision_date"]),
                "inspection_result": result,
                "authority_name": _authority(ent, ie, "samr"),
                # How the entity came to be inspected: a complaint (not random) or the tier's draw.
                "remarks": np.where(
                    ins["inspection_mode"] == "complaint",
                    "投诉举报",
                    "双随机抽查（" + ins["tier_at_draw"].astype(str) + "档）",
                ),
            },
        )

    dd = rec[rec["kind"] == "DISHONEST_DEBTOR"]
    if len(dd):
        de = dd["entity"].to_numpy()
        out[("court", "dishonest_debtor")] = _layout_frame(
            DISHONEST,
            {
                "subject_name": ent["name"].to_numpy()[de],
                "subject_code": _fmt_codes(rng, pd.Series(ent["uscc"].to_numpy()[de])),
                "legal_rep_name": ent["legal_rep_name"].to_numpy()[de],
                "authority_name": _authority(ent, de, "court"),
                "province": np.full(len(dd), "黑龙江"),
                "basis_doc_number": np.char.add(
                    "（2024）黑民初", dd["record_no"].astype(str).to_numpy().astype(str)
                ),
                "filing_date": fd(dd["decision_date"] - pd.Timedelta(days=60)),
                "doc_number": dd["doc_number"].to_numpy(),
                "basis_unit": _authority(ent, de, "court"),
                "obligation": np.full(len(dd), "支付款项"),
                "performance": np.full(len(dd), "全部未履行"),
                "circumstances": np.full(len(dd), "有履行能力而拒不履行生效法律文书确定义务"),
                "decision_date": fd(dd["decision_date"]),
                "removal_date": fd(dd["removal_date"]),
                "removal_reason": dd["removal_reason"].to_numpy(),
            },
        )

    cr = rec[rec["kind"].isin(list(CREDIT_RECORD_PROVIDER))]
    for prov in sorted(set(CREDIT_RECORD_PROVIDER.values())):
        p = cr[cr["kind"].map(CREDIT_RECORD_PROVIDER) == prov]
        if not len(p):
            continue
        pe = p["entity"].to_numpy()
        pub_end = pd.Series(pd.NaT, index=p.index, dtype="datetime64[ns]")
        for it in sorted(p["kind"].unique()):
            m = (p["kind"] == it).to_numpy()
            pub_end[m] = _publicity_end(
                cat, it, p["decision_date"][m], p["publicity_months_draw"].to_numpy()[m]
            )
        pr = cat.provider(prov)
        out[(prov, "credit_record")] = _layout_frame(
            CREDIT_RECORD,
            {
                "item_code": p["kind"].to_numpy(),
                "subject_name": ent["name"].to_numpy()[pe],
                "subject_category": ent["subject_category"].to_numpy()[pe],
                "uscc": _fmt_codes(rng, pd.Series(ent["uscc"].to_numpy()[pe])),
                "legal_rep_name": ent["legal_rep_name"].to_numpy()[pe],
                "doc_number": p["doc_number"].to_numpy(),
                "decision_date": fd(p["decision_date"]),
                "publicity_end": fd(pub_end),
                "amount_yuan": _str_amount(rng, p["amount_yuan"].to_numpy()),
                "removal_date": fd(p["removal_date"]),
                "removal_reason": p["removal_reason"].to_numpy(),
                "authority_name": _authority(ent, pe, prov),
                "source_unit": np.full(len(p), pr["name"]),
            },
        )

    # Changes, delivered by the platform once the record itself has been delivered.
    allrec = world.records.set_index("record_no")
    ch = world.changes
    if len(ch):
        rec_deliv = allrec["decision_date"] + pd.to_timedelta(allrec["delivery_lag_days"], unit="D")
        ch_deliv = pd.Series(
            np.maximum(
                (ch["effective_date"] + pd.to_timedelta(ch["lag_days"], unit="D")).to_numpy(),
                (ch["record_no"].map(rec_deliv) + pd.Timedelta(days=1)).to_numpy(),
            ),
            index=ch.index,
        )
        sel = (ch_deliv <= delivered_until) & (
            (ch_deliv > delivered_after) if delivered_after is not None else True
        )
        c = ch[sel]
        if len(c):
            r = allrec.loc[c["record_no"]]
            ce = r["entity"].to_numpy()
            item = (
                r["kind"]
                .map({"PENALTY": "PENALTY_GENERAL", "INSPECTION": "INSPECTION_FAIL"})
                .fillna(r["kind"])
            )
            out[("ndrc", "credit_change")] = _layout_frame(
                CHANGES,
                {
                    "op": c["op"].to_numpy(),
                    "doc_number": r["doc_number"].to_numpy(),
                    "subject_code": ent["uscc"].to_numpy()[ce],
                    "subject_name": ent["name"].to_numpy()[ce],
                    "item_code": item.to_numpy(),
                    "effective_date": fd(c["effective_date"]),
                    "result": c.get("result", pd.Series("", index=c.index)).fillna("").to_numpy(),
                    "new_publicity_end": fd(
                        c.get("new_publicity_end", pd.Series(pd.NaT, index=c.index))
                    ),
                    "new_item_code": c.get("new_item_code", pd.Series("", index=c.index))
                    .fillna("")
                    .to_numpy(),
                    "new_grade": c.get("new_grade", pd.Series("", index=c.index))
                    .fillna("")
                    .to_numpy(),
                    "source_unit": np.full(len(c), cat.provider("ndrc")["name"]),
                },
            )

    # Natural persons appear in penalty feeds too (not evaluated, but validated and masked).
    n_np = max(1, len(out.get(("samr", "penalty"), [])) // 25) if ("samr", "penalty") in out else 0
    if n_np:
        pdiv = ent["division_code"].to_numpy()[rng.integers(0, len(ent), n_np)]
        dec = pd.Series(delivered_until - pd.to_timedelta(rng.integers(20, 300, n_np), unit="D"))
        pub_end = _publicity_end(cat, "PENALTY_GENERAL", dec, rng.random(n_np))
        npf = _layout_frame(
            PENALTY,
            {
                "subject_name": _person_names(rng, n_np),
                "subject_category": np.full(n_np, "自然人"),
                "id_type": np.full(n_np, "身份证"),
                "id_number": _id_numbers(rng, n_np, pdiv),
                "doc_number": np.char.add(
                    f"黑市监罚字〔{delivered_until:%Y%m%d}〕NP", np.arange(n_np).astype(str)
                ),
                "penalty_category": np.full(n_np, "罚款"),
                "fine_wan_yuan": np.round(0.1 + rng.exponential(0.5, n_np), 2).astype(str),
                "decision_date": fd(dec),
                "publicity_end": fd(pub_end),
                "authority_name": np.char.add(
                    ent["city"].to_numpy()[:n_np].astype(str), "市场监督管理局"
                ),
                "source_unit": np.full(n_np, cat.provider("samr")["name"]),
                "source_unit_uscc": np.full(n_np, cat.provider("samr")["uscc"]),
            },
        )
        # Fines of natural persons are above the 200-yuan simplified limit (0.02 万元).
        npf["罚款金额（万元）"] = (
            npf["罚款金额（万元）"].astype(float).clip(lower=0.05).round(2).astype(str)
        )
        out[("samr", "penalty")] = pd.concat([out[("samr", "penalty")], npf], ignore_index=True)
    return out


# --------------------------------------------------------------------------- defects


def inject_defects(
    frame: pd.DataFrame, layout_id: str, rate: float, rng, delivered_on: pd.Timestamp
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (frame with defects, labels[row_index, defect]) — row_index is the position in the output."""
    n = len(frame)
    if n == 0 or rate <= 0:
        return frame, pd.DataFrame(
            {"row_index": pd.Series([], dtype=int), "defect": pd.Series([], dtype=str)}
        )
    kinds = ["bad_check_digit", "future_date", "duplicate", "missing_field"]
    if layout_id == "credit_record":
        kinds.append("unknown_item")
    if layout_id == "sgs_penalty":
        kinds.append("simplified_procedure")
    if layout_id == "entity_register":
        kinds = ["bad_check_digit", "missing_field", "duplicate"]
    hit = np.flatnonzero(rng.random(n) < rate)
    kind = np.array(kinds)[rng.integers(0, len(kinds), len(hit))]
    f = frame.copy()
    cols = list(f.columns)
    code_col = next(
        (
            c
            for c in (
                "行政相对人代码_1(统一社会信用代码)",
                "统一社会信用代码",
                "统一社会信用代码/身份证号码",
                "纳税人识别号",
            )
            if c in cols
        ),
        None,
    )
    date_col = next(
        c
        for c in (
            "处罚决定日期",
            "许可决定日期",
            "发布时间",
            "认定日期",
            "检查日期",
            "成立日期",
            "核查日期",
            "发布日期",
        )
        if c in cols
    )
    mandatory = {
        "sgs_penalty": "行政处罚决定书文号",
        "sgs_licence": "行政相对人名称",
        "court_dishonest_debtor": "案号",
        "credit_record": "文书编号",
        "inspection_result": "检查对象名称",
        "entity_register": "主体名称",
        "commitment_result": "核查编号",
        "tax_credit_rating": "纳税人名称",
    }[layout_id]
    labels = []
    for i, k in zip(hit, kind):
        if k == "bad_check_digit":
            if f.at[i, "行政相对人类别"] == "自然人" if "行政相对人类别" in cols else False:
                v = str(f.at[i, "证件号码"]).strip()
                last = v[-1]
                f.at[i, "证件号码"] = v[:-1] + ("0" if last != "0" else "1")
                labels.append((i, "bad_check_digit"))
                continue
            v = str(f.at[i, code_col]).strip().upper()
            alphabet = codes.USCC_ALPHABET
            new_last = alphabet[(alphabet.index(v[-1]) + 1 + int(rng.integers(0, 29))) % 31]
            f.at[i, code_col] = v[:-1] + new_last
        elif k == "unknown_item":
            f.at[i, "信息项编码"] = "UNLISTED_ITEM_" + str(int(rng.integers(1, 99)))
        elif k == "simplified_procedure":
            if f.at[i, "行政相对人类别"] == "自然人":
                continue
            f.at[i, "处罚类别"] = "罚款"
            f.at[i, "罚款金额（万元）"] = f"{rng.integers(1, 30) / 100:.2f}"
            dec, _ = parse_dates(pd.Series([f.at[i, "处罚决定日期"]]))
            if not pd.isna(dec.iloc[0]):
                f.at[i, "公示截止期"] = (dec.iloc[0] + pd.DateOffset(months=3)).strftime("%Y-%m-%d")
        elif k == "future_date":
            d = delivered_on + pd.Timedelta(days=int(rng.integers(30, 400)))
            f.at[i, date_col] = d.strftime("%Y-%m-%d")
            for end_col in ("公示截止期", "公示截止日期", "有效期至"):
                if end_col in cols and f.at[i, end_col]:
                    f.at[i, end_col] = (d + pd.DateOffset(months=12)).strftime("%Y-%m-%d")
        elif k == "missing_field":
            f.at[i, mandatory] = ""
        labels.append((i, k))
    lab = pd.DataFrame(labels, columns=["row_index", "defect"])
    # Duplicates are extra copies appended right after their original.
    dup_src = lab.loc[lab["defect"] == "duplicate", "row_index"].to_numpy()
    lab = lab[lab["defect"] != "duplicate"]
    if len(dup_src):
        order = np.concatenate([np.arange(n), dup_src + 0.5])
        pos = np.argsort(order, kind="stable")
        f = pd.concat([f, f.iloc[dup_src]], ignore_index=True).iloc[pos].reset_index(drop=True)
        new_index = np.empty(len(pos), dtype=int)
        new_index[pos] = np.arange(len(pos))
        lab = pd.DataFrame(
            {
                "row_index": new_index[lab["row_index"].to_numpy()],
                "defect": lab["defect"].to_numpy(),
            }
        )
        lab = pd.concat(
            [lab, pd.DataFrame({"row_index": new_index[n:], "defect": "duplicate"})],
            ignore_index=True,
        )
    return f, lab.sort_values("row_index", ignore_index=True)


# --------------------------------------------------------------------------- writing


def _write_frame(df: pd.DataFrame, path: Path, fmt: str, encoding: str | None) -> None:
    tmp = path.with_name(path.name + ".partial")
    if fmt == "xlsx":
        df.to_excel(tmp, index=False, engine="openpyxl")
    else:
        df.to_csv(tmp, index=False, encoding=encoding)
    tmp.replace(path)


def write_deliveries(
    out: Path | str,
    as_of: dt.date | str,
    n_entities: int = 20_000,
    seed: int = 42,
    defect_rate: float = 0.02,
    catalogue: Catalogue | None = None,
    progress=None,
    world: Path | str = DEFAULT_WORLD,
    prebuilt: World | None = None,
) -> dict:
    """Write the deliveries due by ``as_of`` that the landing folder does not have yet.
    ``prebuilt``: the world of these parameters, built once by a caller that writes day after day
    (building it is most of the cost of a small province's day)."""
    params = load_world(world)  # a bad world file stops here, before anything is written
    out = Path(out)
    as_of = pd.Timestamp(as_of)
    cat = catalogue or Catalogue.in_force(as_of)
    landing = out / "landing"
    truth = out / "ground_truth"
    landing.mkdir(parents=True, exist_ok=True)
    truth.mkdir(parents=True, exist_ok=True)
    state_path = out / "demo_state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    gen = {
        "entities": int(n_entities),
        "seed": int(seed),
        "defect_rate": float(defect_rate),
        "generator": GENERATOR_VERSION,
        "world": params.name,
        "world_sha256": params.sha256,
    }
    if state and state.get("params") != gen:
        raise ValueError(
            f"{out} was generated with {state['params']}; use the same parameters or a new folder"
        )
    after = pd.Timestamp(state["delivered_until"]) if state else None
    if after is not None and as_of <= after:
        return {
            "out": str(out),
            "files": [],
            "delivered_until": str(after.date()),
            "note": "nothing new",
        }
    say = progress or (lambda msg: None)
    say(f"building the province: {n_entities:,} entities (seed {seed})")
    if prebuilt is not None and (
        prebuilt.seed != seed
        or len(prebuilt.entities) != n_entities
        or prebuilt.params is None
        or prebuilt.params.sha256 != params.sha256
    ):
        raise ValueError("the prebuilt world was built with other parameters")
    world = prebuilt if prebuilt is not None else build_world(n_entities, seed, params)
    rng = np.random.default_rng(_stable_seed(seed, "deliveries", as_of.date()))
    frames = delivery_frames(world, cat, after, as_of, rng)
    frames.update(
        positive_signals.delivery_frames(world, cat, after, as_of, _fmt_dates, _authority)
    )
    # Every provider reports every feed it owes, even with nothing new (a "zero report").
    feed_layout = {
        "register": REGISTER,
        "penalty": PENALTY,
        "licence": LICENCE,
        "inspection": INSPECTION,
        "dishonest_debtor": DISHONEST,
        "credit_record": CREDIT_RECORD,
        "credit_change": CHANGES,
        "commitment_result": COMMITMENT_RESULT,
        "tax_credit_rating": TAX_CREDIT,
    }
    for prov in cat.providers:
        for feed in prov["feeds"]:
            if (prov["id"], feed) not in frames and (prov["id"], feed) in DELIVERY_FORMAT:
                frames[(prov["id"], feed)] = pd.DataFrame(
                    columns=feed_layout[feed].standard_headers()
                )
    stamp = as_of.strftime("%Y%m%d")
    written, all_labels = [], []
    bad_path = truth / "quarantined_records.csv"
    bad_keys = (
        set(map(tuple, pd.read_csv(bad_path, dtype=str).fillna("").to_numpy()))
        if bad_path.exists()
        else set()
    )
    new_bad = []
    # Provider feeds first, so the change feed knows which records their defects keep out.
    order = sorted(frames.items(), key=lambda kv: (kv[0][1] == "credit_change", kv[0]))
    for (prov, feed), frame in order:
        fmt, enc = DELIVERY_FORMAT[(prov, feed)]
        if fmt == "xlsx" and len(frame) > XLSX_MAX_ROWS:
            fmt, enc = "csv", "gb18030"
        layout_id = {
            "register": "entity_register",
            "penalty": "sgs_penalty",
            "licence": "sgs_licence",
            "inspection": "inspection_result",
            "dishonest_debtor": "court_dishonest_debtor",
            "credit_record": "credit_record",
            "credit_change": "credit_change",
            **positive_signals.LAYOUT_ID,
        }[feed]
        frng = np.random.default_rng(_stable_seed(seed, prov, feed, stamp))
        # The platform's own change feed carries no injected defects (they are labelled per provider feed).
        rate = 0.0 if feed == "credit_change" else defect_rate
        if feed == "credit_change":
            keys = list(
                zip(
                    frame["原文书编号"].astype(str),
                    frame["统一社会信用代码/身份证号码"].astype(str),
                )
            )
            orphan = np.flatnonzero([k in bad_keys for k in keys])
            frame, labels = inject_defects(frame, layout_id, rate, frng, as_of)
            labels = pd.DataFrame({"row_index": orphan, "defect": "orphan_change"})
        else:
            original = frame
            frame, labels = inject_defects(frame, layout_id, rate, frng, as_of)
            doc_col, code_col = _key_columns(original)
            if doc_col:
                # Rows defective in place are quarantined: changes about them will find no record.
                # (Duplicates are extra copies; their original is accepted.)
                at = labels.loc[labels["defect"] != "duplicate", "row_index"].to_numpy(
                    dtype=np.int64
                )
                orig_rows = _original_rows(len(original), labels)[at]
                for d, c in zip(
                    original[doc_col].to_numpy()[orig_rows],
                    original[code_col].to_numpy()[orig_rows],
                ):
                    k = (str(d).strip(), str(c).strip().upper())
                    bad_keys.add(k)
                    new_bad.append(k)
        rel = Path(prov) / f"{stamp}_{feed}.{fmt}"
        (landing / prov).mkdir(exist_ok=True)
        say(f"writing {rel} ({len(frame):,} rows, {fmt}, {enc or 'xlsx'})")
        _write_frame(frame, landing / rel, fmt, enc)
        # Providers deliver in the evening of the day the file is named for: its arrival time is
        # what a night's arrival cut (catch-up runs) compares with.
        set_arrival(
            landing / rel, dt.datetime.combine(as_of.date(), DELIVERY_TIME, tzinfo=SHANGHAI)
        )
        labels = labels.assign(file=str(rel), line=labels["row_index"] + 2)
        all_labels.append(labels[["file", "line", "defect"]])
        written.append(
            {"file": str(rel), "rows": int(len(frame)), "format": fmt, "encoding": enc or "xlsx"}
        )
    _append_csv(pd.DataFrame(new_bad, columns=["doc_number", "subject_code"]), bad_path)
    defects = (
        pd.concat(all_labels, ignore_index=True)
        if all_labels
        else pd.DataFrame(columns=["file", "line", "defect"])
    )
    _append_csv(defects, truth / "defects.csv")
    ent = world.entities
    ent[["uscc", "eval_class", "industry", "division_code", "latent_risk"]].to_csv(
        truth / "entities.csv", index=False, encoding="utf-8"
    )
    ins = world.records[world.records["kind"] == "INSPECTION"]
    pd.DataFrame(
        {
            "uscc": ent["uscc"].to_numpy()[ins["entity"].to_numpy()],
            "inspection_date": ins["decision_date"].dt.strftime("%Y-%m-%d"),
            "problem_found": ins["inspection_failed"].astype(int),
            "mode": ins["inspection_mode"],
            "tier_at_draw": ins["tier_at_draw"],
            "plan_id": ins["plan_id"].fillna(""),
            "inclusion_prob": ins["inclusion_prob"].round(8),
            "represents": ins["represents"],
            "oracle_logit": ins["oracle_logit"].round(6),
        }
    ).to_csv(truth / "inspections.csv", index=False, encoding="utf-8")
    state = {
        "params": gen,
        "delivered_until": str(as_of.date()),
        "deliveries": state.get("deliveries", [])
        + [{"as_of": str(as_of.date()), "files": written}],
    }
    state_path.write_text(json.dumps(state, ensure_ascii=False, indent=1))
    return {
        "out": str(out),
        "landing": str(landing),
        "files": written,
        "defects": {k: int(v) for k, v in defects["defect"].value_counts().sort_index().items()},
        "delivered_until": str(as_of.date()),
    }


def _key_columns(frame: pd.DataFrame) -> tuple[str | None, str | None]:
    for doc in ("行政处罚决定书文号", "行政许可决定文书号", "案号", "文书编号", "抽查任务编号"):
        if doc in frame.columns:
            for code in (
                "行政相对人代码_1(统一社会信用代码)",
                "统一社会信用代码/身份证号码",
                "统一社会信用代码",
            ):
                if code in frame.columns:
                    return doc, code
    return None, None


def _original_rows(n_original: int, labels: pd.DataFrame) -> np.ndarray:
    """Map output row positions back to original row positions (duplicates are inserted copies)."""
    dup_at = np.sort(
        labels.loc[labels["defect"] == "duplicate", "row_index"].to_numpy(dtype=np.int64)
    )
    total = n_original + len(dup_at)
    is_dup = np.zeros(total, dtype=bool)
    is_dup[dup_at] = True
    orig = np.cumsum(~is_dup) - 1
    return orig


def _append_csv(df: pd.DataFrame, path: Path) -> None:
    if path.exists():
        df = pd.concat([pd.read_csv(path, dtype=str), df.astype(str)], ignore_index=True)
    df.to_csv(path, index=False, encoding="utf-8")
