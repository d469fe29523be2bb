"""Credit law as data: which publicity period set governs a record, and how an administrative
penalty is graded.

Pure functions; the rules are data in the catalogue (``publicity_rules``, ``penalty_grading``).
Sources, and what was and was not verified, are in the README ("How the law is applied").

- Period sets (publicity minimum/maximum per grade) are effective-dated: a record's period follows
  the set in force on its **decision date** (2019 notice before 2023-05-01, NDRC Order 58 from
  2023-05-01, NDRC Order 36 from 2026-04-01).
- Penalties are graded by procedure and penalty type under the grading rules in force on the
  decision date; the provider's own grade wins, and a provider's 公示截止期 beyond the general
  maximum can only belong to a severe record. Simplified-procedure penalties are not public credit
  information (Art. 18, last paragraph). No amount threshold.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

GRADES = ("minor", "general", "severe")
# Art. 28 ¶3: a court-listed dishonest judgment debtor is a severe-dishonesty entity; the listing is
# the court's (objections to it are referred, never decided by the platform). Art. 35: objections
# to any severe-dishonesty listing are decided within 3 working days, without extension.
COURT_LISTING_ITEMS = ("DISHONEST_DEBTOR",)
SEVERE_LIST_ITEMS = ("DISHONEST_DEBTOR", "SEVERE_DISHONESTY_LIST")
# One fact, one answer: within the penalty family the item follows the grade (and the grade the
# item), whichever a provider or a correction states.
PENALTY_ITEM_BY_GRADE = {
    "minor": "PENALTY_GENERAL",
    "general": "PENALTY_GENERAL",
    "severe": "PENALTY_SEVERE",
}
PENALTY_GRADE_BY_ITEM = {"PENALTY_GENERAL": "general", "PENALTY_SEVERE": "severe"}
SIMPLIFIED = "simplified"
SIMPLIFIED_REASON = "simplified procedure (Art. 18): not public credit information"


# --------------------------------------------------------------------------- period sets


def period_sets(doc: dict) -> list[dict]:
    """The catalogue's publicity rule sets, oldest first."""
    return sorted(doc["publicity_rules"], key=lambda r: str(r["effective_from"]))


def set_index_on(doc: dict, dates) -> np.ndarray:
    """Index (into period_sets) of the set in force on each date; dates before the first set, or
    missing, get the first set."""
    sets = period_sets(doc)
    starts = pd.to_datetime([str(r["effective_from"]) for r in sets]).to_numpy()
    d = pd.to_datetime(pd.Series(dates)).to_numpy()
    idx = np.searchsorted(starts, d, side="right") - 1
    return np.clip(idx, 0, len(sets) - 1)


def effective_grade(doc: dict, set_idx: np.ndarray, grade: pd.Series) -> np.ndarray:
    """A minor grade only exists under sets that have a minor class; elsewhere it is general."""
    sets = period_sets(doc)
    has_minor = np.array([bool(r.get("minor_class", False)) for r in sets])
    g = grade.astype("string").fillna("").to_numpy(dtype=object)
    return np.where((g == "minor") & ~has_minor[set_idx], "general", g)


def field_minimum(doc: dict, set_idx: np.ndarray, providers, fields=None) -> np.ndarray:
    """The set's field-specific minimum (Order 58: one year for food, drugs, special equipment,
    work safety and fire) for records from the providers of those fields, or whose 违法行为类型
    (``fields``: the record's violation_type text) names one of the fields; 0 elsewhere."""
    sets = period_sets(doc)
    prov = pd.Series(providers, dtype="string").fillna("").to_numpy(dtype=object)
    text = (
        pd.Series(fields, dtype="string").fillna("")
        if fields is not None
        else pd.Series("", index=range(len(set_idx)), dtype="string")
    )
    out = np.zeros(len(set_idx), dtype=np.int64)
    for k, r in enumerate(sets):
        fm = r.get("field_minimum")
        if fm:
            named = np.zeros(len(set_idx), dtype=bool)
            for word in fm.get("fields", []):
                named |= text.str.contains(word, regex=False).to_numpy(dtype=bool)
            hit = (set_idx == k) & (np.isin(prov, list(fm.get("providers", []))) | named)
            out[hit] = int(fm["min_months"])
    return out


def period_bounds(
    doc: dict, decision_dates, grades, providers=None, fields=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(min months, max months, rule set id) for each record's grade under the set in force on
    its decision date; the set's field minimum raises the minimum where the provider's field, or
    the record's 违法行为类型 (``fields``), has one."""
    sets = period_sets(doc)
    idx = set_index_on(doc, decision_dates)
    g = pd.Series(grades).astype("string").fillna("").to_numpy(dtype=object)
    lo = np.array(
        [int(sets[i][x]["min_months"]) if x in GRADES else 0 for i, x in zip(idx, g)],
        dtype=np.int64,
    )
    if providers is not None or fields is not None:
        prov = providers if providers is not None else [None] * len(idx)
        fm = field_minimum(doc, idx, prov, fields)
        lo = np.maximum(lo, np.where(np.isin(g, GRADES), fm, 0))
    hi = np.array(
        [int(sets[i][x]["max_months"]) if x in GRADES else 0 for i, x in zip(idx, g)],
        dtype=np.int64,
    )
    return lo, hi, np.array([sets[i]["id"] for i in idx], dtype=object)


def months_table(doc: dict) -> np.ndarray:
    """Maximum publicity months as a (set, grade) table, for the engine's vectorised lookup."""
    return np.array(
        [[int(r[g]["max_months"]) for g in GRADES] for r in period_sets(doc)], dtype=np.int64
    )


# --------------------------------------------------------------------------- penalty grading


def _contains_any(s: pd.Series, words) -> np.ndarray:
    if not words:
        return np.zeros(len(s), dtype=bool)
    pat = "|".join(map(re.escape, words))
    return s.fillna("").str.contains(pat, regex=True).to_numpy(dtype=bool)


def _only(s: pd.Series, words) -> np.ndarray:
    """Every listed penalty type is one of ``words`` (types separated by ; , 、 / or spaces)."""
    parts = s.fillna("").str.replace(r"[;；,，、/\s]+", ";", regex=True).str.strip(";")
    allowed = "|".join(map(re.escape, words))
    return (
        parts.str.fullmatch(rf"(?:{allowed})(?:;(?:{allowed}))*").fillna(False).to_numpy(dtype=bool)
    )


def grade_penalties(frame: pd.DataFrame, doc: dict) -> pd.DataFrame:
    """Grade administrative penalty rows from the 双公示 fields.

    Reads penalty_category, amount_yuan, subject_type, decision_date and, when present,
    procedure (适用程序), provider_grade (the provider's own grade) and publicity_end_date.
    Returns a frame aligned with ``frame``: ``grade`` (simplified / minor / general / severe) and
    ``grade_basis`` (procedure / statutory_simplified / provider_grade / publicity_period /
    penalty_type).
    """
    g = doc["penalty_grading"]
    n = len(frame)
    idx = frame.index
    col = lambda c: frame[c] if c in frame else pd.Series(pd.NA, index=idx, dtype="string")  # noqa: E731
    cat = col("penalty_category").astype("string")
    proc = col("procedure").astype("string")
    set_idx = set_index_on(
        doc, frame["decision_date"] if "decision_date" in frame else [pd.NaT] * n
    )
    sets = period_sets(doc)

    # Simplified procedure: the provider says so; where it says nothing, the statutory test
    # (Administrative Penalty Law Art. 51: warning, or a fine up to 200 / 3000 yuan).
    sp = g["simplified_procedure"]
    said_simple = _contains_any(proc, sp["procedure_words"])
    said_other = _contains_any(proc, sp["other_procedure_words"])
    amount = pd.to_numeric(col("amount_yuan"), errors="coerce").fillna(0.0).to_numpy()
    limit = np.where(
        col("subject_type").astype("string").fillna("") == "natural",
        float(sp["natural_person_max_fine_yuan"]),
        float(sp["organisation_max_fine_yuan"]),
    )
    statutory = _only(cat, sp["categories_only"]) & (amount <= limit) & cat.notna().to_numpy()
    if "bad_values" in frame:  # an amount that could not be read is a bad value, not a small fine
        statutory &= ~frame["bad_values"].astype("string").fillna("").str.contains(
            "fine_wan_yuan|amount_yuan", regex=True
        ).to_numpy(dtype=bool)
    simplified = said_simple | (~said_other & ~said_simple & statutory)

    # The provider's own grade wins.
    pg = (
        col("provider_grade")
        .astype("string")
        .str.strip()
        .map(g["provider_grades"], na_action="ignore")
    )
    provider = pg.astype("string").fillna("").to_numpy(dtype=object)

    # A publicity period the provider set beyond the general maximum of the set in force can only
    # belong to a severe record.
    gen_max = np.array([int(r["general"]["max_months"]) for r in sets])[set_idx]
    dec = pd.to_datetime(col("decision_date"))
    end = pd.to_datetime(col("publicity_end_date"))
    months = (
        (end.dt.year - dec.dt.year) * 12
        + (end.dt.month - dec.dt.month)
        - (end.dt.day < dec.dt.day).astype(int)
    ).to_numpy(dtype=float)
    long_period = np.nan_to_num(months, nan=-1) > gen_max

    by_type = np.where(
        _contains_any(cat, g["severe_types"]),
        "severe",
        np.where(_only(cat, g["minor_types"]), "minor", "general"),
    )
    grade = np.select(
        [simplified, provider != "", long_period], [SIMPLIFIED, provider, "severe"], by_type
    )
    basis = np.select(
        [said_simple, simplified, provider != "", long_period],
        ["procedure", "statutory_simplified", "provider_grade", "publicity_period"],
        "penalty_type",
    )
    grade = effective_grade(doc, set_idx, pd.Series(grade, index=idx))
    return pd.DataFrame(
        {"grade": pd.array(grade, dtype="string"), "grade_basis": pd.array(basis, dtype="string")},
        index=idx,
    )


def non_repairable(frame: pd.DataFrame, doc: dict) -> np.ndarray:
    """Penalties published for their full period and never repaired: production suspension or
    licence revocation in the fields the rules name (by the provider unit's field)."""
    nr = doc["penalty_grading"].get("non_repairable") or {}
    cat = (
        frame["penalty_category"].astype("string")
        if "penalty_category" in frame
        else pd.Series(pd.NA, index=frame.index)
    )
    prov = (
        frame["provider"].astype("string")
        if "provider" in frame
        else pd.Series(pd.NA, index=frame.index)
    )
    return _contains_any(cat, nr.get("types", [])) & prov.isin(nr.get("providers", [])).to_numpy(
        dtype=bool
    )


# --------------------------------------------------------------------------- objection decisions

OBJECTION_OPS = ("objection_filed", "objection", "objection_closed")
RESULTS = {
    "维持": "rejected",
    "驳回": "rejected",
    "不予采纳": "rejected",
    "不予更正": "rejected",
    "异议不成立": "rejected",
    "采纳": "upheld",
    "予以更正": "upheld",
    "更正": "upheld",
    "撤销": "upheld",
    "异议成立": "upheld",
    "部分采纳": "partly",
    "部分更正": "partly",
    "部分成立": "partly",
}


def decision_result(text: pd.Series) -> pd.Series:
    """The provider's 处理结果 as rejected / upheld / partly (NA if it says none of these)."""
    t = text.astype("string").str.strip()
    return t.map(RESULTS, na_action="ignore").astype("string")
