"""What every part of the synthetic province shares: its window, providers, delivery formats,
defect kinds, and the seeded draws of names, identity numbers and choices."""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import pandas as pd

from scoring.common import codes, geo
from scoring.world import positive_signals

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


def stable_seed(*parts) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "little")


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def pick_weighted(rng, choices, weights, n):
    w = np.asarray(weights, dtype=float)
    return rng.choice(len(choices), size=n, p=w / w.sum())


def random_names(rng, n, pool_a: str, pool_b: str, lo=1, hi=2) -> np.ndarray:
    a = np.array(list(pool_a))[rng.integers(0, len(pool_a), n)]
    out = a
    k = rng.integers(lo, hi + 1, n)
    for j in range(hi):
        b = np.array(list(pool_b))[rng.integers(0, len(pool_b), n)]
        out = np.where(k > j, np.char.add(out, b), out)
    return out


def person_names(rng, n) -> np.ndarray:
    return random_names(rng, n, geo.SURNAMES, geo.GIVEN, 1, 2)


def id_numbers(rng, n, divisions: np.ndarray) -> np.ndarray:
    birth = pd.Timestamp("1950-01-01") + pd.to_timedelta(rng.integers(0, 365 * 50, n), unit="D")
    return codes.make_id_number(
        divisions, np.asarray(birth.strftime("%Y%m%d")), rng.integers(0, 1000, n)
    )
