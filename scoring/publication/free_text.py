"""Personal identifiers inside free text (Art. 23): a resident ID number or a mobile number can
sit inside an individual business's name ("哈尔滨市个体店230102198001015018") or any other text
field, where no per-field masking rule sees it. Every published text column goes through these
patterns, in Arrow's RE2 kernels (no per-row Python). Over-masking a long number is harmless;
publishing one ID is not.
"""

from __future__ import annotations

import re

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_D = "[0-9０-９]"
# 15 digits or more (old 15-digit and current 18-digit IDs, last character may be X): keep the
# region (6) and the last four, as the id_number rule does.
ID_RUN = f"({_D}{{6}}){_D}{{5,}}({_D}{{3}}[0-9０-９XxＸｘ])"
ID_MASK = r"\1********\2"
# Mainland mobile numbers, bare or written 138-1234-5678 / 138 1234 5678.
PHONE = f"([1１][3-9３-９]{_D})[-\\s－]?{_D}{{4}}[-\\s－]?({_D}{{4}})"
PHONE_MASK = r"\1****\2"
# Python equivalents, for scanning published artefacts in tests and reviews.
ID_LIKE = re.compile(r"[0-9０-９]{14,}[0-9０-９XxＸｘ]")
PHONE_LIKE = re.compile(r"[1１][3-9３-９][0-9０-９][-\s－]?[0-9０-９]{4}[-\s－]?[0-9０-９]{4}")

# Columns that hold codes, never free text (a USCC is 18 characters and may be all digits).
CODE_COLUMNS = frozenset(
    {"uscc", "division_code", "industry", "eval_class", "tier", "run_id", "as_of"}
)


def mask_identifiers(arr: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """ID numbers and mobile numbers inside text, masked; everything else unchanged. Only the
    values that can hold one (a run of 11 digits, or a mobile number) go through the replacements."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return arr
    if isinstance(arr, pa.ChunkedArray):
        chunks = [mask_identifiers(c) for c in arr.chunks]
        return (
            arr
            if all(a is b for a, b in zip(chunks, arr.chunks))
            else pa.chunked_array(chunks, type=arr.type)
        )
    hit = pc.fill_null(pc.match_substring_regex(arr, f"{_D}{{11}}|{PHONE}"), False)
    if not pc.any(hit).as_py():  # the common case: nothing to do, nothing copied
        return arr
    # An ID run (15+ digits) or a mobile number contains the 11 digits looked for: a value without
    # them is left as the replacements would leave it.
    out = pc.replace_substring_regex(arr.filter(hit), ID_RUN, ID_MASK)
    return pc.replace_with_mask(arr, hit, pc.replace_substring_regex(out, PHONE, PHONE_MASK))


def mask_text_columns(table: pa.Table, skip: frozenset[str] = CODE_COLUMNS) -> pa.Table:
    """Every text column of a table except code columns, with identifiers masked."""
    cols = [
        table[name] if name in skip else mask_identifiers(table[name])
        for name in table.column_names
    ]
    return pa.table(cols, names=table.column_names)


def mask_text_frame(frame: pd.DataFrame, skip: frozenset[str] = CODE_COLUMNS) -> pd.DataFrame:
    """The same for a frame (a copy; the input is left untouched)."""
    out = frame.copy(deep=False)
    for col in out.columns:
        if col in skip or not (out[col].dtype == object or pd.api.types.is_string_dtype(out[col])):
            continue
        arr = pa.array(out[col].astype("string").array, type=pa.large_string())
        masked = mask_identifiers(arr)
        if masked is not arr:
            out[col] = pd.Series(pd.arrays.ArrowStringArray(masked), index=out.index)
    return out


def scan_text(text: str) -> list[str]:
    """Identifier-like substrings left in a text (for the published-artefact scan)."""
    return ID_LIKE.findall(text) + PHONE_LIKE.findall(text)
