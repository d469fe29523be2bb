"""The synthetic province's positive signals (catalogue v2): commitment fulfilment checks by the
licensing agency (Art. 46: within two months of a licence granted on commitment) and the tax
authority's annual 纳税信用 A-grade list (published each April for the previous tax year).

Both are pure functions of the world's seed, drawn from their own random streams, so adding them
changes no other delivery. Providers send them only once the catalogue in force lists their feed;
the first such delivery carries everything published so far (a provider's backfill).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from scoring.common.catalogue import Catalogue
from scoring.intake.layouts import COMMITMENT_RESULT, TAX_CREDIT

# How each feed is delivered: format and encoding (as in province.DELIVERY_FORMAT).
DELIVERY_FORMAT = {
    ("samr", "commitment_result"): ("csv", "utf-8-sig"),
    ("tax", "tax_credit_rating"): ("xlsx", None),
}
LAYOUT_ID = {"commitment_result": COMMITMENT_RESULT.id, "tax_credit_rating": TAX_CREDIT.id}
TAX_YEARS = range(2022, 2027)  # tax years whose lists fall inside the world's window
TAX_LIST_DAY = (4, 20)  # published around 20 April of the following year


def _rng(seed: int, *parts) -> np.random.Generator:
    h = hashlib.sha256("|".join(map(str, (seed, "positive-signals", *parts))).encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "little"))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def commitment_check_draws(
    seed: int, entity: np.ndarray, decision_date: np.ndarray, latent_risk: np.ndarray
):
    """(check date, kept, delivery lag) for commitments in the world's record order (the draws
    follow that order; the world's monthly tiering computes them before the records are final)."""
    rng = _rng(seed, "commitment-checks")
    n = len(entity)
    z = np.asarray(latent_risk)[np.asarray(entity)]
    check = np.asarray(decision_date) + rng.integers(20, 61, n).astype("timedelta64[D]")
    kept = rng.random(n) < _sigmoid(2.4 - 1.1 * z)
    lag = rng.integers(1, 10, n).astype("timedelta64[D]")
    return check, kept, lag


def commitment_checks(world) -> pd.DataFrame:
    """One check per signed commitment, 20-60 days after it; kept with a probability falling with risk."""
    c = world.records[world.records["kind"] == "COMMITMENT"]
    check, kept, lag = commitment_check_draws(
        world.seed,
        c["entity"].to_numpy(),
        c["decision_date"].to_numpy(),
        world.entities["latent_risk"].to_numpy(),
    )
    return pd.DataFrame(
        {
            "entity": c["entity"].to_numpy(),
            "commitment_ref": c["doc_number"].to_numpy(),
            "commitment_date": c["decision_date"].to_numpy(),
            "check_date": check,
            "kept": kept,
            "check_no": np.char.add("HLJ-HC-", c["record_no"].astype(str).to_numpy().astype(str)),
            "delivered": check + lag,
        }
    )


def tax_a_lists(world) -> pd.DataFrame:
    """Each tax year's A-grade taxpayers: entities registered before the year, more likely when low risk."""
    ent = world.entities
    z = ent["latent_risk"].to_numpy()
    frames = []
    for year in TAX_YEARS:
        rng = _rng(world.seed, "tax-a", year)
        eligible = (ent["reg_date"] < pd.Timestamp(year, 1, 1)).to_numpy() & (
            ent["status"] == "存续"
        ).to_numpy()
        graded_a = eligible & (rng.random(len(ent)) < _sigmoid(-1.6 - 1.4 * z))
        published = pd.Timestamp(year + 1, *TAX_LIST_DAY)
        idx = np.flatnonzero(graded_a)
        frames.append(
            pd.DataFrame(
                {
                    "entity": idx,
                    "rating_year": year,
                    "published": published,
                    "delivered": published + pd.Timedelta(days=5),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def delivery_frames(world, cat, delivered_after, delivered_until, fmt_dates, authority) -> dict:
    """(provider, feed) -> frame in the provider's layout, for deliveries in (after, until], only for
    feeds the catalogue in force lists. ``fmt_dates(rng, dates)`` and ``authority(ent, idx, provider)``
    are the province's own formatters."""
    out = {}
    ent = world.entities
    until = pd.Timestamp(delivered_until)
    rng = _rng(world.seed, "formats", until.date())
    before = Catalogue.in_force(delivered_after) if delivered_after is not None else None

    def window(d, prov, feed):
        sel = d <= until
        if before is not None and _owes(
            before, prov, feed
        ):  # else: the provider's first delivery, a backfill
            sel &= d > pd.Timestamp(delivered_after)
        return sel

    if _owes(cat, "samr", "commitment_result"):
        c = commitment_checks(world)
        c = c[window(c["delivered"], "samr", "commitment_result")]
        if len(c):
            e = c["entity"].to_numpy()
            out[("samr", "commitment_result")] = _frame(
                COMMITMENT_RESULT,
                {
                    "subject_name": ent["name"].to_numpy()[e],
                    "subject_category": ent["subject_category"].to_numpy()[e],
                    "uscc": ent["uscc"].to_numpy()[e],
                    "legal_rep_name": ent["legal_rep_name"].to_numpy()[e],
                    "commitment_ref": c["commitment_ref"].to_numpy(),
                    "commitment_matter": np.full(
                        len(c), "告知承诺制行政许可：申请材料真实、符合许可条件"
                    ),
                    "commitment_date": fmt_dates(rng, c["commitment_date"]),
                    "doc_number": c["check_no"].to_numpy(),
                    "decision_date": fmt_dates(rng, c["check_date"]),
                    "check_result": np.where(c["kept"].to_numpy(), "已履行承诺", "未履行承诺"),
                    "authority_name": authority(ent, e, "samr"),
                    "source_unit": np.full(len(c), cat.provider("samr")["name"]),
                },
            )
    if _owes(cat, "tax", "tax_credit_rating"):
        t = tax_a_lists(world)
        t = t[window(t["delivered"], "tax", "tax_credit_rating")]
        if len(t):
            e = t["entity"].to_numpy()
            out[("tax", "tax_credit_rating")] = _frame(
                TAX_CREDIT,
                {
                    "uscc": ent["uscc"].to_numpy()[e],
                    "subject_name": ent["name"].to_numpy()[e],
                    "rating_year": t["rating_year"].astype(str).to_numpy(),
                    "credit_grade": np.full(len(t), "A"),
                    "decision_date": fmt_dates(rng, t["published"]),
                    "authority_name": authority(ent, e, "tax"),
                },
            )
    return out


def _owes(cat, provider: str, feed: str) -> bool:
    """Whether the catalogue lists this feed for this provider."""
    p = cat.provider(provider)
    return feed in cat.feeds and p is not None and feed in p["feeds"]


def _frame(layout, data: dict) -> pd.DataFrame:
    n = len(next(iter(data.values())))
    return pd.DataFrame(
        {
            aliases[0]: (
                np.full(n, "", dtype=object)
                if data.get(canon) is None
                else np.asarray(data[canon], dtype=object)
            )
            for canon, aliases in layout.columns.items()
        }
    )
