"""Desensitising natural persons' data wherever it is published (Arts. 17, 20, 23).

Which fields are personal and how each is masked is catalogue data (``personal_data``), so a
new catalogue version can tighten it without a code change. The maskers run in Arrow's C++
kernels: a province publishes millions of rows a night.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

RULES = ("name", "id_number", "phone")
_EMPTY = pa.scalar("", pa.large_string())


def _strings(s: pd.Series) -> pa.Array:
    arr = pa.array(s.astype("string").array, type=pa.large_string())
    return pc.utf8_trim_whitespace(arr)


def _series(arr, like: pd.Series) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(arr.cast(pa.large_string())), index=like.index)


def _keep_ends(s: pd.Series, head: int, stars: str, tail: int) -> pd.Series:
    t = _strings(s)
    return _series(
        pc.binary_join_element_wise(
            pc.utf8_slice_codeunits(t, 0, head),
            pa.scalar(stars, pa.large_string()),
            pc.utf8_slice_codeunits(t, -tail),
            _EMPTY,
        ),
        s,
    )


def mask_name(s: pd.Series) -> pd.Series:
    """张三 → 张*, 欧阳娜娜 → 欧***: the surname character only."""
    t = _strings(s)
    rest = pc.max_element_wise(pc.subtract(pc.utf8_length(t), 1), 0)
    return _series(
        pc.binary_join_element_wise(
            pc.utf8_slice_codeunits(t, 0, 1),
            pc.binary_repeat(pa.scalar("*", pa.large_string()), rest),
            _EMPTY,
        ),
        s,
    )


def mask_id_number(s: pd.Series) -> pd.Series:
    """230102198001010129 → 230102********0129: region and the last four only."""
    return _keep_ends(s, 6, "********", 4)


def mask_phone(s: pd.Series) -> pd.Series:
    """13812345678 → 138****5678."""
    return _keep_ends(s, 3, "****", 4)


MASKERS = {"name": mask_name, "id_number": mask_id_number, "phone": mask_phone}
# A 个体工商户 registered under its operator's own name: the name column is a natural person's name.
INDIVIDUAL_NAME = "individual_name"
PERSON_NAME = r"[\u4e00-\u9fff·]{2,4}"


def individual_person_names(frame: pd.DataFrame) -> pd.Series:
    """Rows of individual businesses whose name is a person's: the operator's own name, or a bare
    two-to-four-character Chinese name with no business words."""
    name = frame["name"].astype("string").str.strip()
    indiv = frame["eval_class"].astype("string").isin(["individual", "individual_business"])
    indiv = indiv.fillna(False)
    own = (
        (name == frame["legal_rep_name"].astype("string").str.strip()).fillna(False)
        if "legal_rep_name" in frame
        else False
    )
    return indiv & (own | name.str.fullmatch(PERSON_NAME).fillna(False))


def check_rules(personal_fields: dict[str, str], columns) -> None:
    """Every masking rule names a column the published table has and a known masker (checked when
    the rules are loaded, so a rule that silently masks nothing cannot pass)."""
    for col, rule in personal_fields.items():
        if rule not in MASKERS and rule != INDIVIDUAL_NAME:
            raise ValueError(f"unknown masking rule {rule!r} for {col}")
        if col not in columns:
            raise ValueError(f"masking rule for {col!r}: the published table has no such column")


def mask_personal_data(frame: pd.DataFrame, personal_fields: dict[str, str]) -> pd.DataFrame:
    """A copy with every personal field present masked by its rule; the input is left untouched."""
    out = frame.copy()
    for col, rule in personal_fields.items():  # before the operator's own name is masked
        if rule == INDIVIDUAL_NAME and col in out.columns and "eval_class" in out.columns:
            person = individual_person_names(out.rename(columns={col: "name"})).to_numpy()
            out[col] = out[col].astype("string").where(~person, mask_name(out[col]))
    for col, rule in personal_fields.items():
        if col in out.columns and rule != INDIVIDUAL_NAME:
            if rule not in MASKERS:
                raise ValueError(f"unknown masking rule {rule!r} for {col}")
            out[col] = MASKERS[rule](out[col])
    return out


# Art. 37 ¶1: "信用主体的守信信息可以依法长期公示，但信用主体提出不公示自身守信信息的，不得公示。"
POSITIVE_FLAG = "positive_not_published"
OPTOUT_OPS = {"positive_optout": True, "positive_optin": False}


def positive_optouts(changes: pd.DataFrame, as_of) -> set[str]:
    """Entities whose latest request in force on ``as_of`` is not to publish their positive
    information."""
    if changes is None or not len(changes) or "op" not in changes:
        return set()
    c = changes[changes["op"].isin(list(OPTOUT_OPS))]
    c = c[pd.to_datetime(c["effective_date"]) <= pd.Timestamp(as_of)]
    if c.empty:
        return set()
    order = [x for x in ("effective_date", "known_from", "line_no") if x in c]
    last = c.sort_values(order, kind="stable").drop_duplicates("subject_code", keep="last")
    return set(last.loc[last["op"].map(OPTOUT_OPS).astype(bool), "subject_code"])


def withhold_positive(frame: pd.DataFrame, optouts: set[str], positive_codes) -> pd.DataFrame:
    """A copy where opted-out entities' reasons lose every positive item's text (by its reason
    code) and their flags say so; everyone else's rows are unchanged."""
    if not optouts or not len(frame):
        return frame
    out = frame.copy()
    hit = out["uscc"].isin(optouts).to_numpy()
    codes = tuple(f"{c} " for c in positive_codes)
    keep = lambda text: " | ".join(  # noqa: E731
        p for p in str(text).split(" | ") if not p.startswith(codes)
    )
    out["reasons"] = out["reasons"].astype("string")
    out.loc[hit, "reasons"] = out.loc[hit, "reasons"].map(keep)
    flags = out["flags"].astype("string").fillna("")
    out["flags"] = flags.where(~hit, (flags + ";" + POSITIVE_FLAG).str.strip(";"))
    return out
