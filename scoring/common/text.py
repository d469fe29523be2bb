"""Text as operators read it and as records are identified.

``shown`` is for every message an operator reads: Chinese stays Chinese; only what a terminal or
a log would hide or reorder (control, format/bidi, unpaired surrogates from undecodable file
names) is escaped. ``identity_text`` is for record identity only: two spellings of one document
number (full-width digits, a zero-width space, ``[ ]`` for ``〔 〕``, ``號`` for ``号``) give one
key, while the provider's original text is what is kept and published.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# Characters that can hide or reorder text without being visible: zero-width, bidi controls,
# BOM, soft hyphen, word joiner, the Mongolian vowel separator.
INVISIBLE = "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff\u00ad\u180e"
_INVISIBLE_RE = re.compile(f"[{INVISIBLE}]")

# Bracket families providers use around a document number's year, mapped to the standard 〔〕
# (GB/T 9704 writes the year of a document number in 六角括号).
_BRACKETS = str.maketrans({"[": "〔", "]": "〕", "(": "〔", ")": "〕", "【": "〔", "】": "〕"})
_SPACES = re.compile(r"[\s\u3000]+")
_VARIANTS = str.maketrans({"號": "号"})


def shown(text: object, limit: int | None = None) -> str:
    """``text`` for a message: printable characters (CJK included) as they are; control, format
    and surrogate characters as ``\\uXXXX`` / ``\\xNN`` escapes; cut at ``limit`` characters."""
    s = str(text)
    cut = limit is not None and len(s) > limit
    if cut:
        s = s[:limit]
    out = []
    for ch in s:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:  # a byte that was not valid UTF-8 (surrogateescape)
            out.append(f"\\x{o - 0xDC00:02x}")
        elif ch == " " or (
            ch.isprintable() and unicodedata.category(ch) not in ("Cf", "Cs", "Co", "Cn")
        ):
            out.append(ch)
        elif o <= 0xFF:
            out.append(f"\\x{o:02x}")
        else:
            out.append(f"\\u{o:04x}")
    return "".join(out) + ("…" if cut else "")


def identity_one(text: str) -> str:
    """One document or case number as an identity (see ``identity_text``)."""
    s = unicodedata.normalize("NFKC", text)
    s = _INVISIBLE_RE.sub("", s)
    s = _SPACES.sub("", s)
    return s.translate(_BRACKETS).translate(_VARIANTS)


# Text that is its own identity: ASCII letters and digits, the common CJK ideographs except 號,
# 〔〕 and a few separators. Only other values go through identity_one (a Python call each).
_CANONICAL = "^[0-9A-Za-z〔〕\u4e00-\u865e\u8660-\u9fff_./-]*$"


def identity_text(s: pd.Series) -> pd.Series:
    """Document or case numbers normalised for identity: NFKC (full-width digits and letters,
    full-width brackets), zero-width and bidi characters removed, every space (ideographic too)
    removed, the bracket families 〔〕[]（）()【】 as 〔〕, 號 as 号. Blank stays missing."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = s.astype("string")
    arr = pa.array(t.array, type=pa.large_string())
    done = pc.fill_null(pc.match_substring_regex(arr, _CANONICAL), True).to_numpy(
        zero_copy_only=False
    )
    out = t.copy()
    if not done.all():
        out[~done] = t[~done].map(identity_one, na_action="ignore")
    out = out.astype("string")
    return out.mask(out == "", pd.NA)


def arrow_text(s: pd.Series) -> pa.Array:
    """A text column as an Arrow string array (NA as null), for Arrow's string kernels."""
    return pa.array(s.astype("string").to_numpy(dtype=object, na_value=None), pa.string())


def matches(text: pa.Array, pattern: str) -> np.ndarray:
    """Per value whether the RE2 ``pattern`` matches it (null: False), as a numpy bool array."""
    hit = pc.fill_null(pc.match_substring_regex(text, pattern), False)
    return hit.to_numpy(zero_copy_only=False)
