"""Staging: a provider file's raw canonical columns typed into stg_record and stg_entity rows
(renamed, typed, keyed; change feeds in scoring.intake.staging_changes). Pure functions of a
RawFile: no I/O.

Which staging a file gets follows its layout's feed, so a new layout of a known feed (the 2016
双公示 layouts, exchange-table field codes) needs no code here: its value mappings, combined
columns and units are data (config/layouts/).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from scoring.common import codes, law
from scoring.common.catalogue import Catalogue
from scoring.common.text import identity_text
from scoring.intake.readers import RawFile
from scoring.intake.values import UNIT_YUAN, clean_text, parse_amounts, parse_dates
from scoring.intake.values import max_amount as _max_amount

SUBJECT_TYPES = {
    "法人及非法人组织": "legal",
    "法人": "legal",
    "非法人组织": "legal",
    "自然人": "natural",
    "个体工商户": "individual",
}


# --------------------------------------------------------------------------- staging

STG_RECORD_COLUMNS = [
    "source_file",
    "line_no",
    "provider",
    "layout",
    "delivered_on",
    "item_code",
    "subject_type",
    "subject_name",
    "uscc",
    "id_number",
    "legal_rep_name",
    "legal_rep_id_number",
    "doc_number",
    "penalty_category",
    # 违法行为类型: names the field (food, drugs, special equipment...) of Order 58's minimum.
    "violation_type",
    "amount_yuan",
    "decision_date",
    "publicity_end_date",
    "valid_to_date",
    "authority_name",
    "inspection_result",
    "grade",
    "grade_basis",
    "removal_date",
    "removal_reason",
    "bad_values",
]
STG_ENTITY_COLUMNS = [
    "source_file",
    "line_no",
    "provider",
    "delivered_on",
    "uscc",
    "subject_name",
    "entity_type",
    "eval_class",
    "industry",
    "division_code",
    "registered_date",
    "entity_status",
    "legal_rep_name",
    "legal_rep_id_number",
    "phone",
    "bad_values",
]
EVAL_CLASS = {
    "有限责任公司": "legal_person",
    "股份有限公司": "legal_person",
    "农民专业合作社": "legal_person",
    "事业单位": "legal_person",
    "社会团体": "legal_person",
    "民办非企业单位": "legal_person",
    "基金会": "legal_person",
    "农村集体经济组织": "legal_person",
    "个人独资企业": "unincorporated",
    "合伙企业": "unincorporated",
    "其他组织": "unincorporated",
    "个体工商户": "individual_business",
}


def _is_individual(code: pd.Series) -> np.ndarray:
    """USCCs of individual businesses (个体工商户) start with 92."""
    return (code.str.slice(0, 2) == "92").fillna(False).to_numpy(dtype=bool)


def _subject_type(category: pd.Series, code: pd.Series) -> pd.Series:
    t = category.astype("string").str.strip().map(SUBJECT_TYPES, na_action="ignore")
    guess = pd.Series(np.where(_is_individual(code), "individual", "legal"), index=code.index)
    guess = guess.where(code.notna(), pd.NA)
    return t.fillna(guess).astype("string")


def provenance_columns(raw: RawFile, delivered_on: pd.Timestamp) -> pd.DataFrame:
    """Where each staged row came from: file, line, provider, delivery date."""
    f = raw.rows
    out = pd.DataFrame(index=f.index)
    out["source_file"] = pd.Series(raw.path, index=f.index, dtype="string")
    out["line_no"] = f["line_no"]
    out["provider"] = pd.Series(raw.provider, index=f.index, dtype="string")
    out["delivered_on"] = pd.Series(delivered_on, index=f.index).astype("datetime64[s]")
    return out


def record_key(stg: pd.DataFrame) -> pd.Series:
    """A record's identity: its decision document number and its subject (USCC, ID number or name).
    The number is normalised for identity only (scoring.common.text.identity_text): a re-send
    that writes it with full-width digits, other brackets or a zero-width space is the same
    record; the provider's own text stays in doc_number."""
    subject = stg["uscc"].fillna(stg["id_number"]).fillna(stg["subject_name"])
    doc = identity_text(stg["doc_number"])
    return (doc.fillna("") + "|" + subject.fillna("")).astype("string")


def _column(f: pd.DataFrame, name: str) -> pd.Series:
    """A canonical column of the file, or an empty one where its layout has no such column."""
    return f[name] if name in f else pd.Series(pd.NA, index=f.index, dtype="string")


def apply_layout_values(raw: RawFile) -> tuple[pd.DataFrame, pd.Series]:
    """The file's canonical columns with its layout's data applied: combined columns (处罚类别1 and
    处罚类别2 as one penalty category) and value mappings (当前状态 codes as words). Returns (columns,
    bad values: 'column;' for each value the mapping does not know)."""
    f = raw.rows.copy() if raw.layout.combine or raw.layout.values else raw.rows
    bad = pd.Series("", index=f.index, dtype="string")
    for canon, parts in raw.layout.combine.items():
        texts = [clean_text(_column(f, p)) for p in parts]
        joined = texts[0]
        for t in texts[1:]:
            joined = joined.where(t.isna(), joined.fillna("").str.cat(t, sep="；").str.lstrip("；"))
        f[canon] = joined
    for canon, mapping in raw.layout.values.items():
        text = clean_text(_column(f, canon))
        mapped = text.map(mapping, na_action="ignore").astype("string")
        unknown = (text.notna() & mapped.isna()).to_numpy(dtype=bool)
        bad = bad.where(~unknown, bad + canon + ";")
        f[canon + "_value"] = mapped
    return f, bad


RECORD_CONTENT = [
    "item_code",
    "subject_type",
    "subject_name",
    "uscc",
    "id_number",
    "penalty_category",
    "amount_yuan",
    "decision_date",
    "publicity_end_date",
    "valid_to_date",
    "authority_name",
    "inspection_result",
    "grade",
    "removal_date",
    "removal_reason",
]


def date_text(v: pd.Series) -> pd.Series:
    """Dates as ``strftime("%Y-%m-%d")`` writes them (NA where there is none), made by numpy for
    the years it writes alike (1000-9999), not value by value in Python."""
    d = pd.to_datetime(v)
    if isinstance(d.dtype, pd.DatetimeTZDtype):  # local dates: numpy would write them in UTC
        return d.dt.strftime("%Y-%m-%d").astype("string")
    days = d.to_numpy(dtype="datetime64[D]")
    seen = ~np.isnat(days)
    years = days[seen].astype("datetime64[Y]").astype(np.int64) + 1970
    if ((years < 1000) | (years > 9999)).any():
        return d.dt.strftime("%Y-%m-%d").astype("string")
    text = np.full(len(days), None, dtype=object)
    text[seen] = np.datetime_as_string(days[seen], unit="D").astype(object)
    return pd.Series(text, index=v.index, dtype="string")


def hash_joined(columns: list[pd.Series], index: pd.Index) -> pd.Series:
    """A 64-bit hash per row of its values' text (NA as ""), joined with \x1f: joined by Arrow
    column by column (not row by row in Python, nor through numpy's object sum: seconds and
    hundreds of MB a chunk), then hashed as Python strings, so the hashes stay those of the stored
    history. The values are hashed without factorizing first (the same hashes: pandas'
    ``categorize`` is only a shortcut for repeated values)."""
    if not len(index):
        return pd.util.hash_pandas_object(pd.Series([], dtype=str), index=False).astype("uint64")
    text = [pa.array(v.astype("string").fillna(""), type=pa.large_string()) for v in columns]
    joined = pc.binary_join_element_wise(*text, pa.scalar("\x1f", pa.large_string()))
    joined = joined.to_numpy(zero_copy_only=False)
    return pd.util.hash_pandas_object(
        pd.Series(joined, index=index, dtype=object), index=False, categorize=False
    ).astype("uint64")


def record_content_hash(stg: pd.DataFrame) -> pd.Series:
    """A 64-bit hash of what a record says (not where it came from): equal for a resend, different
    for a re-delivery that corrects it."""
    cols = stg.reindex(columns=RECORD_CONTENT)
    text = []
    for c in RECORD_CONTENT:
        v = cols[c]
        if c.endswith("_date"):
            v = date_text(v)
        elif c == "amount_yuan":
            v = (
                pd.to_numeric(v, errors="coerce")
                .round(2)
                .map(lambda x: "" if pd.isna(x) else f"{x:.2f}")
            )
        text.append(v)
    return hash_joined(text, stg.index)


def stage_records(raw: RawFile, cat: Catalogue, delivered_on: pd.Timestamp) -> pd.DataFrame:
    """Typed canonical rows (stg_record) for every non-register layout, staged by its feed.
    Pure: no I/O."""
    f, bad = apply_layout_values(raw)
    n = len(f)
    out = provenance_columns(raw, delivered_on)
    out["layout"] = pd.Series(raw.layout.id, index=f.index, dtype="string")
    _stage_subject(out, f, raw.layout.feed)
    _stage_text(out, f, raw.layout.feed)
    bad = _stage_dates(out, f, bad)
    _stage_status(out, f)
    out["grade"] = pd.Series(pd.NA, index=f.index, dtype="string")
    out["grade_basis"] = pd.Series(pd.NA, index=f.index, dtype="string")
    bad = _stage_item(out, f, raw.layout, cat, bad)
    out["bad_values"] = bad.mask(bad == "", pd.NA)
    for c in ("uscc", "id_number", "legal_rep_name", "legal_rep_id_number", "removal_reason"):
        out[c] = out[c].astype("string")
    assert len(out) == n
    return out[STG_RECORD_COLUMNS].reset_index(drop=True)


def _note(bad: pd.Series, mask, col: str) -> pd.Series:
    return bad.where(~np.asarray(mask, dtype=bool), bad + col + ";")


def _stage_subject(out: pd.DataFrame, f: pd.DataFrame, feed: str) -> None:
    if feed == "dishonest_debtor":
        code = codes.normalise_code(f["subject_code"])
        is_person = code.str.fullmatch(r"\d{17}[\dX]").fillna(False).to_numpy(
            dtype=bool
        ) & ~codes.valid_uscc(code.to_numpy(dtype=object))
        out["uscc"] = code.where(~is_person, pd.NA)
        out["id_number"] = code.where(is_person, pd.NA)
        out["subject_type"] = pd.Series(
            np.where(is_person, "natural", np.where(_is_individual(code), "individual", "legal")),
            index=f.index,
            dtype="string",
        ).where(code.notna(), pd.NA)
    else:
        out["uscc"] = codes.normalise_code(f["uscc"])
        out["id_number"] = codes.normalise_code(f["id_number"]) if "id_number" in f else pd.NA
        out["subject_type"] = _subject_type(_column(f, "subject_category"), out["uscc"])
    out["subject_name"] = clean_text(f["subject_name"])
    out["legal_rep_name"] = clean_text(f["legal_rep_name"]) if "legal_rep_name" in f else pd.NA
    out["legal_rep_id_number"] = (
        codes.normalise_code(f["legal_rep_id_number"]) if "legal_rep_id_number" in f else pd.NA
    )


def _stage_text(out: pd.DataFrame, f: pd.DataFrame, feed: str) -> None:
    if feed == "tax_credit_rating":
        # No document number on the list: tax year and grade name the record.
        out["doc_number"] = (
            "纳税信用"
            + clean_text(f["rating_year"])
            + "年度"
            + clean_text(f["credit_grade"]).str.upper().str.removesuffix("级")
            + "级"
        )
    else:
        out["doc_number"] = clean_text(f["doc_number"])  # the provider's own text, kept
    for col in (
        "authority_name",
        "penalty_category",
        "violation_type",
        "inspection_result",
        "removal_reason",
    ):
        out[col] = clean_text(f[col]) if col in f else pd.NA


def _stage_dates(out: pd.DataFrame, f: pd.DataFrame, bad: pd.Series) -> pd.Series:
    for src, dst in (
        ("decision_date", "decision_date"),
        ("publicity_end", "publicity_end_date"),
        ("listing_end", "publicity_end_date"),
        ("valid_to", "valid_to_date"),
        ("removal_date", "removal_date"),
    ):
        if src not in f and dst in out:
            continue  # two sources of one column (a listing's end is its publicity end)
        if src in f:
            d, d_bad = parse_dates(f[src])
            bad = _note(bad, d_bad, src)
        else:
            d = pd.Series(pd.NaT, index=f.index, dtype="datetime64[s]")
        out[dst] = d
    return bad


def _stage_status(out: pd.DataFrame, f: pd.DataFrame) -> None:
    """A decision the provider's 当前状态 says was revoked or deleted is withdrawn from its date:
    it never counts, and says why."""
    if "record_status_value" not in f:
        return
    gone = (f["record_status_value"] == "withdrawn").fillna(False).to_numpy(dtype=bool)
    if gone.any():
        why = ("当前状态：" + clean_text(f["record_status"]).fillna("")).astype("string")
        out["removal_date"] = out["removal_date"].where(
            ~gone | out["removal_date"].notna(), out["decision_date"]
        )
        out["removal_reason"] = out["removal_reason"].astype("string").where(~gone, why)


_FIXED_ITEMS = {
    "licence": "LICENCE",
    "dishonest_debtor": "DISHONEST_DEBTOR",
}


def _stage_item(out, f, layout, cat: Catalogue, bad: pd.Series) -> pd.Series:
    feed = layout.feed
    idx = f.index
    out["amount_yuan"] = pd.Series(np.nan, index=idx, dtype="float64")
    if feed == "penalty":
        return _stage_penalty(out, f, layout, cat, bad)
    if feed == "credit_record":
        amt, amt_bad = parse_amounts(
            f["amount_yuan"], _max_amount(cat), layout.units.get("amount_yuan", "元")
        )
        out["amount_yuan"] = amt
        out["item_code"] = clean_text(f["item_code"]).str.upper()
        return _note(bad, amt_bad, "amount_yuan")
    if feed in _FIXED_ITEMS:
        out["item_code"] = pd.Series(_FIXED_ITEMS[feed], index=idx, dtype="string")
    elif (
        feed == "tax_credit_rating"
    ):  # TAX_CREDIT_A; another grade is an item the catalogue must list
        grade = clean_text(f["credit_grade"]).str.upper().str.removesuffix("级")
        out["item_code"] = ("TAX_CREDIT_" + grade).astype("string")
    elif feed == "commitment_result":
        result = clean_text(f["check_result"])
        breached = result.str.contains("未履|违背|不履", regex=True)
        out["item_code"] = pd.Series(
            np.where(breached.fillna(False), "COMMITMENT_BREACH", "COMMITMENT_KEPT"),
            index=idx,
            dtype="string",
        ).where(result.notna(), pd.NA)
    elif feed == "inspection":
        ok = out["inspection_result"].str.contains("未发现", regex=False)
        out["item_code"] = pd.Series(
            np.where(ok.fillna(False), "INSPECTION_PASS", "INSPECTION_FAIL"),
            index=idx,
            dtype="string",
        ).where(out["inspection_result"].notna(), pd.NA)
    else:
        raise ValueError(f"stage_records: layout {layout.id} is not a record layout")
    return bad


def _stage_penalty(out, f, layout, cat: Catalogue, bad: pd.Series) -> pd.Series:
    """Amount in yuan (the fine column's unit from the layout), grade and item. Graded by
    procedure and penalty type under the rules in force on the decision date; "simplified" rows
    are excluded by the gate (Art. 18), not quarantined."""
    grading_bad = bad
    if "fine_wan_yuan" in layout.columns:
        unit = layout.units.get("fine_wan_yuan", "万元")
        per = UNIT_YUAN[unit]
        fine, fine_bad = parse_amounts(f["fine_wan_yuan"], _max_amount(cat) / per, unit)
        bad = grading_bad = _note(bad, fine_bad, "fine_wan_yuan")
        out["amount_yuan"] = (fine * per).round(2)
    else:
        # A layout without a fine column (2016): the statutory small-fine test cannot apply.
        grading_bad = bad + "fine_wan_yuan(not in layout);"
    graded = law.grade_penalties(
        out.assign(
            procedure=clean_text(_column(f, "procedure")),
            provider_grade=clean_text(_column(f, "provider_grade")),
            bad_values=grading_bad,
        ),
        cat.doc,
    )
    out["grade"], out["grade_basis"] = graded["grade"], graded["grade_basis"]
    out["item_code"] = pd.Series(
        np.where(graded["grade"] == "severe", "PENALTY_SEVERE", "PENALTY_GENERAL"),
        index=f.index,
        dtype="string",
    )
    return bad


def stage_entities(raw: RawFile, delivered_on: pd.Timestamp) -> pd.DataFrame:
    """Typed register rows (stg_entity). Pure: no I/O."""
    f = raw.rows
    out = provenance_columns(raw, delivered_on)
    out["uscc"] = codes.normalise_code(f["uscc"])
    out["subject_name"] = clean_text(f["subject_name"])
    out["entity_type"] = clean_text(f["entity_type"])
    out["eval_class"] = out["entity_type"].map(EVAL_CLASS, na_action="ignore").astype("string")
    out["industry"] = clean_text(f["industry"]).str.upper()
    out["division_code"] = clean_text(f["division_code"])
    reg, reg_bad = parse_dates(f["decision_date"])
    out["registered_date"] = reg
    out["entity_status"] = clean_text(f["entity_status"])
    out["legal_rep_name"] = clean_text(f["legal_rep_name"])
    out["legal_rep_id_number"] = codes.normalise_code(f["legal_rep_id_number"])
    out["phone"] = clean_text(f["phone"])
    out["bad_values"] = pd.Series(
        np.where(reg_bad, "registered_date;", ""), index=f.index, dtype="string"
    )
    out["bad_values"] = out["bad_values"].mask(out["bad_values"] == "", pd.NA)
    return out[STG_ENTITY_COLUMNS].reset_index(drop=True)
