"""Values as providers write them: dates, amounts, text. Each parser returns the typed values and a
mask of the values that were present but could not be read; those become a bad-value reason on
their row (quarantined), never a silent guess.

Dates: ``2026-06-30``, ``2026-6-30``, ``2026/6/30``, ``2026.6.30``, ``20260630``,
``2026年6月30日``, with or without a time of day (which must be a real time: ``25:00`` is not),
and Excel serial day numbers (``46203``, days since 1899-12-30, as a CSV exported from a sheet
writes a date cell that lost its format).

Amounts: ``1234.5``, ``1,234.5`` (thousands groups of three only: ``1,5`` is ambiguous), full-width
digits, a currency sign (``￥2000``, ``¥2000``), a unit written after the number (``1,234.5万``,
``2000元``, ``0.2万元``), converted to the column's own unit. ``-0`` is 0. Words (``二千元``), a
negative, infinite or absurd amount are bad values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from scoring.common.text import arrow_text, matches

MAX_AMOUNT_YUAN = 1e12  # a trillion yuan: beyond any fine or arrears a provider can send
UNIT_YUAN = {"元": 1.0, "万元": 10_000.0, "万": 10_000.0}
EXCEL_EPOCH = pd.Timestamp("1899-12-30")


def clean_text(s: pd.Series) -> pd.Series:
    t = s.astype("string").str.strip()
    return t.mask(t == "", pd.NA)


# Dates written in plain ASCII as most exports write them: read by Arrow without the text steps
# (normalising, trimming, time and 年月日 forms), which leave such a value as it is.
_PLAIN_DASHED = r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}$"
_PLAIN_DOTTED = r"^[0-9]{4}[./][0-9]{1,2}[./][0-9]{1,2}$"
_PLAIN_COMPACT = r"^[0-9]{8}$"


def parse_dates(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse dates in the formats providers use. Returns (dates, unparseable-but-present mask)."""
    text = arrow_text(s)
    dashed, dotted, compact = (
        matches(text, p) for p in (_PLAIN_DASHED, _PLAIN_DOTTED, _PLAIN_COMPACT)
    )
    plain = dashed | dotted | compact
    if not plain.any():
        return _parse_date_texts(s)
    ymd = pc.if_else(
        pa.array(dotted),
        pc.replace_substring_regex(text, "[./]", "-"),
        pc.if_else(
            pa.array(compact),
            pc.binary_join_element_wise(
                pc.utf8_slice_codeunits(text, 0, 4),
                pc.utf8_slice_codeunits(text, 4, 6),
                pc.utf8_slice_codeunits(text, 6, 8),
                "-",
            ),
            text,
        ),
    )
    quick = pd.to_datetime(
        pd.Series(ymd.filter(pa.array(plain)).to_numpy(zero_copy_only=False), dtype=object),
        format="%Y-%m-%d",
        errors="coerce",
    )
    d = pd.Series(pd.NaT, index=s.index, dtype="datetime64[s]", name=s.name)
    bad = pd.Series(False, index=s.index, dtype=bool, name=s.name)
    d.iloc[np.flatnonzero(plain)] = quick.astype("datetime64[s]").to_numpy()
    bad.iloc[np.flatnonzero(plain)] = quick.isna().to_numpy()
    if not plain.all():
        rest_d, rest_bad = _parse_date_texts(s[~plain])
        d.iloc[np.flatnonzero(~plain)] = rest_d.to_numpy()
        bad.iloc[np.flatnonzero(~plain)] = rest_bad.to_numpy(dtype=bool)
    return d, bad


def _parse_date_texts(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Dates in every form ``parse_dates`` reads, step by step on the text."""
    t = s.astype("string").str.normalize("NFKC").str.strip()
    t = t.mask(t == "", pd.NA)
    # A time of day after the date: kept out of the date, but it must be a real time.
    tm = t.str.extract(r"^(?P<d>.*?[\d日])(?:[ T]+(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2}))?)$")
    has_time = tm["h"].notna()
    bad_time = has_time & (
        (pd.to_numeric(tm["h"], errors="coerce") > 23)
        | (pd.to_numeric(tm["m"], errors="coerce") > 59)
        | (pd.to_numeric(tm["s"], errors="coerce").fillna(0) > 59)
    )
    t = t.where(~has_time, tm["d"])
    t = t.str.replace(r"^(\d{4})年(\d{1,2})月(\d{1,2})日?$", r"\1-\2-\3", regex=True)
    t = t.str.replace(r"^(\d{4})(\d{2})(\d{2})$", r"\1-\2-\3", regex=True)
    t = t.str.replace(r"^(\d{4})[./](\d{1,2})[./](\d{1,2})$", r"\1-\2-\3", regex=True)
    shaped = t.str.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}").fillna(False)
    d = pd.to_datetime(t.where(shaped), format="%Y-%m-%d", errors="coerce")
    serial = t.str.fullmatch(r"\d{5}(?:\.\d+)?").fillna(False)
    if serial.any():
        days = pd.to_numeric(t.where(serial), errors="coerce").floordiv(1)
        d = d.where(~serial, EXCEL_EPOCH + pd.to_timedelta(days, unit="D"))
    d = d.where(~bad_time, pd.NaT)
    return d.astype("datetime64[s]"), t.notna() & d.isna()


def parse_amounts(
    s: pd.Series, max_value: float = MAX_AMOUNT_YUAN, unit: str = "元"
) -> tuple[pd.Series, pd.Series]:
    """Amounts in the column's ``unit`` (元 or 万元). Returns (values, bad mask): a value that is
    not a number, not finite, negative or above ``max_value`` (in the column's unit) is a bad
    value, and its amount is left empty."""
    t = s.astype("string").str.normalize("NFKC").str.replace(r"\s+", "", regex=True)
    t = t.mask(t == "", pd.NA)
    t = t.str.replace(r"^[¥$]|^人民币", "", regex=True)
    written = t.str.extract(r"(万元|万|元)$")[0]
    t = t.str.replace(r"(万元|万|元)$", "", regex=True)
    grouped = t.str.fullmatch(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?").fillna(False)
    t = t.where(~grouped, t.str.replace(",", "", regex=False))
    plain = t.str.fullmatch(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?").fillna(False)
    v = pd.to_numeric(t.where(plain), errors="coerce").astype("float64")
    col_unit = UNIT_YUAN[unit]
    factor = written.map(UNIT_YUAN, na_action="ignore").astype("float64").fillna(col_unit)
    v = v * factor / col_unit + 0.0  # + 0.0: -0 is 0
    absurd = ~np.isfinite(v.fillna(0.0)) | (v < 0).fillna(False) | (v > max_value).fillna(False)
    v = v.mask(absurd)
    return v, t.notna() & v.isna()


def max_amount(cat) -> float:
    return float(cat.gates.get("max_amount_yuan", MAX_AMOUNT_YUAN))
