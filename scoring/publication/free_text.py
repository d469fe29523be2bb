"""Personal identifiers inside free text (Art. 23): a resident ID number or a mobile number can
sit inside an individual business's name ("哈尔滨市个体店230102198001015018") or any other text
field, where no per-field masking rule sees it, and it may be written apart: "230102 19800101
7021", "230102-19800101-7013", "138\u200b1234\u200b5678", full-width digits. Numbers are found in
the text's normalised form (separators between digits removed, full-width digits folded) and
masked in the original: the digits that are hidden become ``*``, the separators stay where they
were. Over-masking a long number is harmless; publishing one ID is not.

Published text also loses what a reader cannot see or that changes how it is shown: control
characters, bidirectional overrides, zero-width and other format characters, line and paragraph
separators and Unicode non-characters (the original stays in the record history for audit).

Whole columns go through Arrow's RE2 kernels; only values that hold a run of eleven digits
(separated or not) are looked at one by one.
"""

from __future__ import annotations

import re

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# Characters that may stand between the digits of one number: spaces (NBSP, ideographic,
# thin...), hyphens and dashes, dots, and zero-width / bidi format characters.
SEPARATORS = (
    " \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"  # spaces
    "\\-\u00ad\u2010-\u2015\u2212\ufe58\ufe63\uff0d"  # hyphens, dashes, minus, soft hyphen
    ".\u00b7\u2027\u30fb\uff0e\u3002"  # dots
    "\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"  # zero-width, bidi
)
MAX_GAP = 3  # separators between two digits of one number, at most
_DIGIT = "0-9\uff10-\uff19"
_SEP_RE = f"[{SEPARATORS}]"
# A candidate: eleven digits, each pair at most MAX_GAP separators apart (RE2 and Python alike).
CANDIDATE = f"[{_DIGIT}](?:{_SEP_RE}{{0,{MAX_GAP}}}[{_DIGIT}]){{10,}}"
_CANDIDATE = re.compile(CANDIDATE)
# In the normalised digits: 15 or more (old 15-digit and 18-digit IDs, the last may be X) keep
# region (6) and the last four, as the id_number rule does; a mobile keeps 3 and 4.
_ID = re.compile(r"[0-9]{14,}[0-9Xx]|[0-9]{15,}")
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_FOLD = {ord(f): ord(a) for f, a in zip("０１２３４５６７８９ＸｘＸ", "0123456789XxX")}
_SEP_SET = re.compile(_SEP_RE)

# Python scan of published artefacts (tests and reviews): anything that normalises to 11 digits.
ID_LIKE = re.compile(CANDIDATE + "(?:" + _SEP_RE + f"{{0,{MAX_GAP}}}[0-9０-９XxＸｘ])*")
PHONE_LIKE = _MOBILE

# Characters no published text keeps: C0/C1 controls, bidi controls and marks, zero-width and
# other format characters, line/paragraph separators, interlinear annotation, non-characters.
_INVISIBLE_RANGES = [
    (0x00, 0x1F),
    (0x7F, 0x9F),
    (0x061C, 0x061C),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x206F),
    (0xFDD0, 0xFDEF),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0xFFFE, 0xFFFF),
    *[(p * 0x10000 + 0xFFFE, p * 0x10000 + 0xFFFF) for p in range(1, 17)],
]
INVISIBLE = "[" + "".join(f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in _INVISIBLE_RANGES) + "]"
_INVISIBLE_PY = re.compile("[" + "".join(f"{chr(a)}-{chr(b)}" for a, b in _INVISIBLE_RANGES) + "]")
_SPACE_LIKE = "[\\t\\n\\r\\x{2028}\\x{2029}]"  # line structure becomes one space, not nothing

# Columns that hold codes, never free text (a USCC is 18 characters and may be all digits).
CODE_COLUMNS = frozenset(
    {"uscc", "division_code", "industry", "eval_class", "tier", "run_id", "as_of"}
)


def mask_numbers_in(text: str) -> str:
    """One text with every ID and mobile number in it masked, wherever its digits are apart."""
    out = list(text)
    for m in _CANDIDATE.finditer(text):
        start = m.start()
        # the digits of this run (and an X right after it) with their places in the original
        places = [start + i for i, ch in enumerate(m.group()) if not _SEP_SET.fullmatch(ch)]
        end = m.end()
        while end < len(text) and _SEP_SET.fullmatch(text[end]):
            end += 1
        if end < len(text) and text[end] in "XxＸｘ":
            places.append(end)
        digits = "".join(text[p] for p in places).translate(_FOLD)
        hidden = [False] * len(digits)
        for idm in _ID.finditer(digits):
            for i in range(idm.start() + 6, idm.end() - 4):
                hidden[i] = True
        masked = "".join("*" if h else d for d, h in zip(digits, hidden))
        for mob in _MOBILE.finditer(masked):
            for i in range(mob.start() + 3, mob.end() - 4):
                hidden[i] = True
        for i, h in enumerate(hidden):
            if h:
                out[places[i]] = "*"
    return "".join(out)


def clean_text(arr: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Text without invisible and direction-changing characters (line breaks become spaces)."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return arr
    hit = pc.fill_null(pc.match_substring_regex(arr, INVISIBLE), False)
    if not pc.any(hit).as_py():
        return arr
    out = pc.replace_substring_regex(arr, _SPACE_LIKE, " ")
    return pc.if_else(hit, pc.replace_substring_regex(out, INVISIBLE, ""), arr)


def clean_name(text: str) -> str:
    """The same for one value (Python side)."""
    return _INVISIBLE_PY.sub("", re.sub("[\t\n\r\u2028\u2029]", " ", text))


def mask_identifiers(arr: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """ID numbers and mobile numbers inside text, masked; everything else unchanged. Only the
    values holding eleven digits (separated or not) are masked one by one."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return arr
    if isinstance(arr, pa.ChunkedArray):
        chunks = [mask_identifiers(c) for c in arr.chunks]
        return (
            arr
            if all(a is b for a, b in zip(chunks, arr.chunks))
            else pa.chunked_array(chunks, type=arr.type)
        )
    hit = pc.fill_null(pc.match_substring_regex(arr, CANDIDATE), False)
    if not pc.any(hit).as_py():  # the common case: nothing to do, nothing copied
        return arr
    masked = pa.array([mask_numbers_in(v) for v in arr.filter(hit).to_pylist()], type=arr.type)
    return pc.replace_with_mask(arr, hit, masked)


_EITHER = f"{INVISIBLE}|{CANDIDATE}"


def published_text(arr: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A text column as it may be published: cleaned, then identifiers masked. One scan decides
    whether there is anything to do (the common case: nothing, nothing copied)."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return arr
    if not pc.any(pc.fill_null(pc.match_substring_regex(arr, _EITHER), False)).as_py():
        return arr
    return mask_identifiers(clean_text(arr))


def mask_text_columns(table: pa.Table, skip: frozenset[str] = CODE_COLUMNS) -> pa.Table:
    """Every text column of a table except code columns, cleaned and with identifiers masked."""
    cols = [
        table[name] if name in skip else published_text(table[name]) for name in table.column_names
    ]
    return pa.table(cols, names=table.column_names)


def mask_text_frame(frame: pd.DataFrame, skip: frozenset[str] = CODE_COLUMNS) -> pd.DataFrame:
    """The same for a frame (a copy; the input is left untouched)."""
    out = frame.copy(deep=False)
    for col in out.columns:
        if col in skip or not (out[col].dtype == object or pd.api.types.is_string_dtype(out[col])):
            continue
        arr = pa.array(out[col].astype("string").array, type=pa.large_string())
        masked = published_text(arr)
        if masked is not arr:
            out[col] = pd.Series(pd.arrays.ArrowStringArray(masked), index=out.index)
    return out


def scan_text(text: str) -> list[str]:
    """Identifier-like substrings left in a text (for the published-artefact scan): a run that
    normalises to a resident ID with a valid check character (GB 11643), to exactly 15 digits (an
    old ID) or that holds a mobile number. (Masking is broader: it hides any run of 15 or more.)"""
    from scoring.common.codes import valid_id_number

    hits = []
    for m in ID_LIKE.finditer(text):
        digits = "".join(ch for ch in m.group() if not _SEP_SET.fullmatch(ch)).translate(_FOLD)
        windows = [digits[i : i + 18].upper() for i in range(max(len(digits) - 17, 0))]
        if (
            len(digits) == 15
            or (windows and bool(valid_id_number(windows).any()))
            or _MOBILE.search(digits)
        ):
            hits.append(m.group())
    return hits
