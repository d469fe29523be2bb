"""Desensitising natural persons' data wherever it is published (Arts. 17, 20, 23).

Which fields are personal and how each is masked is catalogue data (``personal_data``), so a
new catalogue version can tighten it without a code change.
"""
from __future__ import annotations

import pandas as pd

RULES = ("name", "id_number", "phone")


def mask_name(s: pd.Series) -> pd.Series:
    """张三 → 张*, 欧阳娜娜 → 欧***: the surname character only."""
    t = s.astype("string").str.strip()
    return (t.str.slice(0, 1) + t.str.len().sub(1).clip(lower=0).map(lambda k: "*" * int(k), na_action="ignore"))


def mask_id_number(s: pd.Series) -> pd.Series:
    """230102198001010129 → 230102********0129: region and the last four only."""
    t = s.astype("string").str.strip()
    return t.str.slice(0, 6) + "********" + t.str.slice(-4)


def mask_phone(s: pd.Series) -> pd.Series:
    """13812345678 → 138****5678."""
    t = s.astype("string").str.strip()
    return t.str.slice(0, 3) + "****" + t.str.slice(-4)


MASKERS = {"name": mask_name, "id_number": mask_id_number, "phone": mask_phone}


def mask_personal_data(frame: pd.DataFrame, personal_fields: dict[str, str]) -> pd.DataFrame:
    """A copy with every personal field present masked by its rule; the input is left untouched."""
    out = frame.copy()
    for col, rule in personal_fields.items():
        if col in out.columns:
            if rule not in MASKERS:
                raise ValueError(f"unknown masking rule {rule!r} for {col}")
            out[col] = MASKERS[rule](out[col]).where(out[col].notna(), pd.NA)
    return out
