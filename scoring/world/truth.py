"""How truth works in the synthetic province, as the world-parameter file says (config/world/).

- latent_paths: each entity's compliance risk c(t) (a stable part plus a monthly AR(1) drift),
  financial-distress episodes d(t), recent legal-representative changes, youth, and size.
- emit_records: catalogue records as Poisson processes whose monthly rates follow those paths.
- simulate_inspections: month by month, the policy in force (v1, then v2 from 2026-06-01) tiers
  every entity on the evening before the 1st; the market regulator draws by tier at its yearly ratios / 12 through the project's
  sampling code (eligibility, exclusions, frequency caps, keyed draw); a few complaint-driven
  inspections are added and marked; every outcome comes from the truth on the inspection day.
  Each random inspection carries its tier, the draw's inclusion probability and the eligible
  count it stands for (for inverse-probability weights), and the oracle's risk.

Everything is a pure function of the seed and the world file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scoring.world._deps import (
    DAYS_PER_MONTH,
    Policy,
    exclusions_from_history,
    policy_scores,
    sample_population,
)
from scoring.world.params import TIERS, WorldParams

KIND_OF_ITEM = {"PENALTY_GENERAL": "PENALTY"}  # the generator's record kind for a catalogue item
ITEM_OF_KIND = {v: k for k, v in KIND_OF_ITEM.items()}


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def month_starts(params: WorldParams) -> pd.DatetimeIndex:
    """Months from the start of history (before go-live) to the end of the window."""
    w = params["window"]
    start = pd.Timestamp(params.doc.get("history_from") or w["start"])
    return pd.date_range(start.replace(day=1), pd.Timestamp(w["end"]), freq="MS")


def latent_paths(
    rng, entities: pd.DataFrame, params: WorldParams, industry_offset: np.ndarray
) -> dict:
    """Monthly latent state per entity (arrays n x months) and per-entity constants."""
    lat = params["latent"]
    months = month_starts(params)
    n, m = len(entities), len(months)
    share = float(lat["stable_share"])
    rho = float(lat["drift_persistence_per_month"])
    stable = industry_offset + np.sqrt(share) * rng.standard_normal(n)
    x = np.empty((n, m))
    x[:, 0] = rng.standard_normal(n)
    eps = rng.standard_normal((n, m))
    for j in range(1, m):
        x[:, j] = rho * x[:, j - 1] + np.sqrt(1 - rho * rho) * eps[:, j]
    c = stable[:, None] + np.sqrt(1 - share) * x
    size = float(lat["size_sd"]) * rng.standard_normal(n)
    reg = pd.to_datetime(entities["reg_date"]).to_numpy()
    age_m = ((months.to_numpy()[None, :] - reg[:, None]) / np.timedelta64(1, "D")) / DAYS_PER_MONTH
    alive = age_m >= 0
    young = alive & (age_m < float(lat["young_months"]))
    ds = lat["distress"]
    onset = 1 - np.exp(
        -float(ds["onset_per_year"])
        / 12
        * np.exp(float(ds["onset_per_sd_of_risk"]) * c)
        * np.where(young, float(ds["young_onset_multiplier"]), 1.0)
    )
    leave = 1.0 / float(ds["mean_duration_months"])
    u = rng.random((n, m))
    d = np.zeros((n, m), dtype=bool)
    # Distress starts at its steady state (onset / (onset + recovery)), not from nobody.
    prev = rng.random(n) < onset[:, 0] / (onset[:, 0] + leave)
    for j in range(m):
        now = np.where(prev, u[:, j] >= leave, u[:, j] < onset[:, j]) & alive[:, j]
        d[:, j] = now
        prev = now
    rc = lat["representative_change"]
    k = float(rc["per_sd_of_risk"])
    change = (
        rng.random((n, m)) < 1 - np.exp(-float(rc["per_year"]) / 12 * np.exp(k * c - k * k / 2))
    ) & alive
    eff = int(rc["effect_months"])
    cum = np.cumsum(change, axis=1)
    recent = (
        (cum - np.concatenate([np.zeros((n, eff), dtype=cum.dtype), cum[:, :-eff]], axis=1)[:, :m])
        > 0
        if eff > 0
        else np.zeros((n, m), dtype=bool)
    )
    return {
        "months": months,
        "c": c,
        "stable": stable,
        "distress": d,
        "young": young,
        "alive": alive,
        "rep_recent": recent,
        "rep_change": change,
        "size": size,
    }


def representative_changes(rng, lat: dict, reg: np.ndarray) -> pd.DataFrame:
    """The register's change history (变更记录) of legal representatives: one row per change the
    latent paths made (entity, change_date), dated on a day of its month (own random stream: the
    rest of the world does not move), never before registration."""
    months = lat["months"]
    ent, mon = np.nonzero(lat["rep_change"])
    day = (rng.random(len(ent)) * np.asarray(months.days_in_month)[mon]).astype(int)
    when = months.to_numpy()[mon] + day.astype("timedelta64[D]")
    when = np.maximum(when, np.asarray(reg, dtype="datetime64[ns]")[ent])
    out = pd.DataFrame({"entity": ent, "change_date": when})
    return out.sort_values(["change_date", "entity"], kind="stable", ignore_index=True)


def emit_records(rng, entities: pd.DataFrame, lat: dict, params: WorldParams) -> pd.DataFrame:
    """Non-inspection records: per item, Poisson counts per entity-month at the world's rates."""
    months = lat["months"]
    n, m = lat["c"].shape
    size_sd = float(params["latent"]["size_sd"])
    reg = pd.to_datetime(entities["reg_date"]).to_numpy()
    month_days = np.asarray(months.days_in_month)
    frames = []
    for item in sorted(params["records"]):
        spec = params["records"][item]
        b, a, s = (
            float(spec.get("compliance", 0.0)),
            float(spec.get("distress", 0.0)),
            float(spec.get("size", 0.0)),
        )
        lam = (
            float(spec["rate"])
            / 12
            * np.exp(b * lat["c"] - b * b / 2)
            * np.exp(a * lat["distress"])
            * np.exp(s * lat["size"] - s * s * size_sd * size_sd / 2)[:, None]
        ) * lat["alive"]
        cnt = rng.poisson(lam)
        ent, mon = np.nonzero(cnt)
        reps = cnt[ent, mon]
        ent, mon = np.repeat(ent, reps), np.repeat(mon, reps)
        day = (rng.random(len(ent)) * month_days[mon]).astype(int)
        dec = months.to_numpy()[mon] + day.astype("timedelta64[D]")
        keep = dec >= reg[ent]
        frames.append(
            pd.DataFrame(
                {
                    "entity": ent[keep],
                    "kind": KIND_OF_ITEM.get(item, item),
                    "decision_date": dec[keep],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- the hand policy's view


class RecordBook:
    """Records in force on a day, as decayed counts per policy item: how the regulator's nightly
    run tiers entities for the draw (points, half-lives, caps, severe-list override).

    policies: [(first day (int days since 1970) or None, Policy), ...] ascending: the policy in
    force on a day scores it (v1, then v2 from 2026-06-01, as config/policy/history.yaml says).
    ``policy`` is the first one (the mirror world's truth)."""

    def __init__(self, policy: Policy, n_entities: int, policies: list | None = None):
        self.policy = policy
        self.policies = policies or [(None, policy)]
        self.n = n_entities
        self.features = sorted(set().union(*[p.doc["items"] for _, p in self.policies]))
        self.half = {
            p.sha256: np.array(
                [
                    np.nan
                    if p.doc["items"].get(f, {}).get("half_life_months") is None
                    else float(p.doc["items"][f]["half_life_months"])
                    for f in self.features
                ]
            )
            for _, p in self.policies
        }
        self.parts: list[tuple] = []
        self._cache = None

    def policy_on(self, day: int) -> Policy:
        chosen = self.policies[0][1]
        for start, p in self.policies:
            if start is None or start <= day:
                chosen = p
        return chosen

    def add(self, entity, item_code, dec_day, end_day, known_day=None) -> None:
        """known_day: the first day the engine knows the record (default its decision day)."""
        col = pd.Categorical(np.asarray(item_code), categories=self.features).codes
        keep = col >= 0
        known = np.asarray(dec_day) if known_day is None else np.asarray(known_day)
        self.parts.append(
            (
                np.asarray(entity)[keep],
                col[keep],
                np.asarray(dec_day)[keep],
                np.asarray(end_day)[keep],
                known[keep],
            )
        )
        self._cache = None

    def _arrays(self):
        if self._cache is None:
            e, c, d, u, k = (
                np.concatenate([p[i] for p in self.parts])
                if self.parts
                else np.empty(0, dtype=np.int64)
                for i in range(5)
            )
            order = np.argsort(e, kind="stable")
            e, c, d, u, k = e[order], c[order], d[order], u[order], k[order]
            starts = np.searchsorted(e, np.arange(self.n + 1))
            self._cache = (e, c, d, u, k, starts)
        return self._cache

    def counts(
        self, entity: np.ndarray, day: np.ndarray, policy: Policy | None = None
    ) -> np.ndarray:
        """Decayed counts (rows = queries; the policy's half-lives) of each entity's records decided
        and known on or before ``day`` and still in force on it (end_day after it, or none)."""
        policy = policy or self.policy
        e, c, d, u, kn, starts = self._arrays()
        entity = np.asarray(entity)
        lo, hi = starts[entity], starts[entity + 1]
        k = hi - lo
        q = np.repeat(np.arange(len(entity)), k)
        idx = np.repeat(lo - np.cumsum(k) + k, k) + np.arange(k.sum())
        qd = np.asarray(day)[q]
        ok = (d[idx] <= qd) & (kn[idx] <= qd) & ((u[idx] < 0) | (u[idx] > qd))
        q, idx, qd = q[ok], idx[ok], qd[ok]
        h = self.half[policy.sha256][c[idx]]
        with np.errstate(invalid="ignore"):
            w = np.where(np.isnan(h), 1.0, np.power(0.5, (qd - d[idx]) / (h * DAYS_PER_MONTH)))
        X = np.zeros((len(entity), len(self.features)))
        np.add.at(X, (q, c[idx]), w)
        return X

    def score(
        self, entity, day, policy: Policy | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Score, tier and counts under ``policy`` (default: the first, the mirror's truth)."""
        policy = policy or self.policy
        X = self.counts(entity, day, policy)
        feats = [f for f in self.features if f in policy.doc["items"]]
        score, tier = policy_scores(pd.DataFrame(X, columns=self.features)[feats], feats, policy)
        return score, tier, X


def _working_day_in_month(rng, month: pd.Timestamp, k: int) -> np.ndarray:
    days = pd.date_range(month, month + pd.offsets.MonthEnd(0), freq="B").to_numpy()
    return days[rng.integers(0, len(days), k)]


INSPECTION_COLUMNS = [
    "entity",
    "kind",
    "decision_date",
    "inspection_failed",
    "inspection_mode",
    "tier_at_draw",
    "inclusion_prob",
    "represents",
    "tier_size",
    "plan_id",
    "oracle_logit",
    "draw_month",
]


def simulate_inspections(
    rng,
    entities: pd.DataFrame,
    lat: dict,
    book: RecordBook,
    params: WorldParams,
    agency: dict,
    caps: dict,
    exclusion_days: int,
    pub_end_of,
    seed: int,
) -> pd.DataFrame:
    # agency: the drawing department (its id names the plans)
    """Monthly double-random draws by the hand policy's tiers, plus marked complaint-driven
    inspections; outcomes from the truth on the inspection day. pub_end_of(item_codes, dates) ->
    end days (int, -1 none) for the inspection records added to the book as the months pass."""
    ins_cfg = params["inspections"]
    yearly = {t: float(ins_cfg["ratios_per_year"][t]) for t in TIERS}
    monthly = {t: r / 12 for t, r in yearly.items()}
    uscc = entities["uscc"].to_numpy()
    reg_day = (
        pd.to_datetime(entities["reg_date"]).to_numpy().astype("datetime64[D]").astype(np.int64)
    )
    past = pd.DataFrame(
        {
            "uscc": pd.Series([], dtype=object),
            "decision_date": pd.Series([], dtype="datetime64[ns]"),
        }
    )
    rows = []
    first = pd.Timestamp(params["window"]["start"])
    for j, month in enumerate(lat["months"]):
        if month < first:  # the double-random system starts with the window
            continue
        eve = (
            (month - pd.Timedelta(days=1)).to_datetime64().astype("datetime64[D]").astype(np.int64)
        )
        alive = np.flatnonzero(lat["alive"][:, j])
        if not len(alive):
            continue
        tier = _tiers_on(book, alive, eve, reg_day)
        # The agency's whole province is in scope (hlj-samr). Commit-then-draw as in production:
        # k per tier from the whole tier, excluded entities (recently inspected, yearly cap)
        # replaced by the next in the random order; the published value is the world's own.
        pop = pd.DataFrame({"uscc": uscc[alive], "tier": tier.astype(str)})
        excl = exclusions_from_history(
            pop, past, month - pd.Timedelta(days=1), exclusion_days, caps
        )
        drawn = sample_population(
            pop,
            monthly,
            f"world-{seed}-{month:%Y-%m}",
            agency_id=agency["id"],
            period=f"{month:%Y-%m}",
            task="world",
            exclusions=excl,
        )
        cols = _drawn_columns(pop, excl, drawn, uscc)
        cols = _with_complaints(rng, cols, ins_cfg["complaint_driven"], lat, alive, j, tier)
        idx = cols["entity"]
        if not len(idx):
            continue
        when = _working_day_in_month(rng, month, len(idx))
        when = np.maximum(when, entities["reg_date"].to_numpy()[idx].astype("datetime64[ns]"))
        wday = when.astype("datetime64[D]").astype(np.int64)
        logit = _outcome_logit(params, lat, book, idx, j, wday, reg_day)
        noisy = logit + float(params["outcome"]["noise_sd"]) * rng.standard_normal(len(idx))
        failed = rng.random(len(idx)) < _sigmoid(noisy)
        rows.append(_month_frame(cols, when, failed, logit, month))
        item = np.where(failed, "INSPECTION_FAIL", "INSPECTION_PASS")
        book.add(idx, item, wday, pub_end_of(item, pd.Series(when)))
        past = pd.concat(
            [past, pd.DataFrame({"uscc": uscc[idx], "decision_date": when})], ignore_index=True
        )
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=INSPECTION_COLUMNS)


def _month_frame(cols: dict, when, failed, logit, month: pd.Timestamp) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "entity": cols["entity"],
            "kind": "INSPECTION",
            "decision_date": when,
            "inspection_failed": failed,
            "inspection_mode": cols["mode"],
            "tier_at_draw": cols["tier"],
            "inclusion_prob": cols["prob"],
            "represents": cols["represents"],
            "tier_size": cols["tier_size"],
            "plan_id": cols["plan"],
            "oracle_logit": logit,
            "draw_month": f"{month:%Y-%m}",
        }
    )


def _tiers_on(book: RecordBook, alive: np.ndarray, eve: int, reg_day: np.ndarray) -> np.ndarray:
    """The tiers of the living entities under the policy in force that evening (v1, then v2 from
    2026-06-01), with the engine's "insufficient information" tier for new entities with nothing
    that counts."""
    in_force = book.policy_on(int(eve))
    _score, tier, X = book.score(alive, np.full(len(alive), eve), in_force)
    counted = X[:, [book.features.index(f) for f in in_force.doc["items"]]].sum(axis=1)
    new_days = int(in_force.doc["overrides"]["new_entity_days"])
    fresh = (eve - reg_day[alive] < new_days) & (counted == 0)
    return np.where(fresh, in_force.doc["overrides"]["insufficient_information_tier"], tier)


def _drawn_columns(pop: pd.DataFrame, excl: pd.DataFrame, drawn: pd.DataFrame, uscc) -> dict:
    """The random draw's inspections: entity, mode, tier, inclusion probability (drawn uniformly
    among the eligible of the tier: k / N_eligible), how many each represents, tier size, plan."""
    size = pop["tier"].value_counts()
    eligible = pop[~pop["uscc"].isin(set(excl["uscc"]))]["tier"].value_counts()
    k_tier = drawn["tier"].value_counts()
    some = len(drawn) > 0
    return {
        "entity": pd.Index(uscc).get_indexer(drawn["uscc"]),
        "mode": np.full(len(drawn), "random", dtype=object),
        "prob": (
            np.array([k_tier[t] / eligible[t] for t in drawn["tier"]]) if some else np.empty(0)
        ),
        "represents": (
            np.array([eligible[t] for t in drawn["tier"]], dtype=np.int64)
            if some
            else np.empty(0, np.int64)
        ),
        "tier_size": (
            np.array([size[t] for t in drawn["tier"]], dtype=np.int64)
            if some
            else np.empty(0, np.int64)
        ),
        "plan": (
            drawn["commitment_sha256"].to_numpy(dtype=object) if some else np.empty(0, dtype=object)
        ),
        "tier": drawn["tier"].to_numpy(dtype=object),
    }


def _with_complaints(rng, cols: dict, comp: dict, lat: dict, alive, j: int, tier) -> dict:
    """Complaints and referrals: not random, they follow risk."""
    kc = float(comp.get("per_sd_of_risk", 0.0))
    lam = float(comp["per_year"]) / 12 * np.exp(kc * lat["c"][alive, j] - kc * kc / 2)
    hit = alive[rng.random(len(alive)) < 1 - np.exp(-lam)]
    tier_of = dict(zip(alive, tier))
    n = len(hit)
    return {
        "entity": np.concatenate([cols["entity"], hit]).astype(np.int64),
        "mode": np.concatenate([cols["mode"], np.full(n, "complaint", dtype=object)]),
        "prob": np.concatenate([cols["prob"], np.full(n, np.nan)]),
        "represents": np.concatenate([cols["represents"], np.zeros(n, dtype=np.int64)]),
        "tier_size": np.concatenate([cols["tier_size"], np.zeros(n, dtype=np.int64)]),
        "plan": np.concatenate([cols["plan"], np.full(n, "", dtype=object)]),
        "tier": np.concatenate([cols["tier"], np.array([tier_of[i] for i in hit], dtype=object)]),
    }


def _outcome_logit(params: WorldParams, lat: dict, book: RecordBook, idx, j: int, wday, reg_day):
    """The truth's log-odds that an inspection finds a problem, before noise."""
    out = params["outcome"]
    if out["model"] == "latent":
        return (
            float(out["intercept"])
            + float(out["compliance"]) * lat["c"][idx, j]
            + float(out["distress"]) * lat["distress"][idx, j]
            + float(out["young"])
            * ((wday - reg_day[idx]) < float(params["latent"]["young_months"]) * DAYS_PER_MONTH)
            + float(out["representative_change"]) * lat["rep_recent"][idx, j]
        )
    # The mirror: the hand policy's (v1, the first) score on the day before the inspection.
    base = float(book.policy.doc["scale"]["base"])
    s, _, _ = book.score(idx, wday - 1, book.policy)
    return float(out["intercept"]) + float(out["per_100_points"]) * (base - s) / 100.0
