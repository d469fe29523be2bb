"""Check characters of Chinese identifiers, computed on whole arrays at once.

- USCC, GB 32100-2015: 18 characters over a 31-letter alphabet, mod-31 check; positions 9-17
  embed a GB 11714 organisation code with its own mod-11 check.
- Resident ID, GB 11643-1999: ISO 7064 MOD 11-2.

Validators take any sequence of strings (or None) and return a boolean numpy array; nothing
loops over rows in Python.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scoring.common.text import arrow_text, matches

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = np.array([pow(3, i, 31) for i in range(17)], dtype=np.int64)
ORG_WEIGHTS = np.array([3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
ID_CHECK = "10X98765432"
USCC_FIRST = set("123456789ANY")

_USCC_VAL = np.full(256, -1, dtype=np.int64)
for _i, _c in enumerate(USCC_ALPHABET):
    _USCC_VAL[ord(_c)] = _i
_ORG_VAL = np.full(256, -1, dtype=np.int64)
for _i in range(10):
    _ORG_VAL[ord(str(_i))] = _i
for _i in range(26):
    _ORG_VAL[ord("A") + _i] = 10 + _i
_DIGIT_VAL = np.full(256, -1, dtype=np.int64)
for _i in range(10):
    _DIGIT_VAL[ord(str(_i))] = _i
_FIRST_OK = np.zeros(256, dtype=bool)
for _c in USCC_FIRST:
    _FIRST_OK[ord(_c)] = True


def _as_byte_matrix(values, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (rows × width uint8 matrix, mask of rows that are ASCII strings of that width)."""
    s = pd.Series(values, dtype="object")
    ok = s.map(lambda v: isinstance(v, str), na_action="ignore").fillna(False).astype(bool)
    strs = s.where(ok, "")
    lens = strs.str.len().to_numpy()
    ok = ok.to_numpy() & (lens == width)
    # Non-ASCII strings of the right length are rejected before the byte view.
    ascii_ok = strs.str.isascii().to_numpy()
    ok &= ascii_ok
    padded = np.where(ok, strs.to_numpy(dtype=object), "0" * width)
    buf = "".join(padded).encode("ascii")
    mat = (
        np.frombuffer(buf, dtype=np.uint8).reshape(-1, width)
        if len(padded)
        else np.zeros((0, width), np.uint8)
    )
    return mat, ok


def uscc_check_char(first17: np.ndarray) -> np.ndarray:
    """Check-character values (0-30) for a rows × 17 matrix of USCC values."""
    return (31 - (first17 @ USCC_WEIGHTS) % 31) % 31


def org_check_value(first8: np.ndarray) -> np.ndarray:
    """GB 11714 check values (0-10, 10 = 'X') for a rows × 8 matrix of character values."""
    c = 11 - (first8 @ ORG_WEIGHTS) % 11
    return np.where(c == 11, 0, c)


def valid_uscc(values) -> np.ndarray:
    """True where the value is a well-formed USCC with both check characters right."""
    mat, ok = _as_byte_matrix(values, 18)
    vals = _USCC_VAL[mat]
    ok &= (vals >= 0).all(axis=1)
    ok &= _FIRST_OK[mat[:, 0]]
    ok &= (_DIGIT_VAL[mat[:, 2:8]] >= 0).all(axis=1)  # division code is numeric
    ok &= uscc_check_char(np.where(vals[:, :17] < 0, 0, vals[:, :17])) == vals[:, 17]
    org = _ORG_VAL[mat[:, 8:16]]
    ok &= (org >= 0).all(axis=1)
    expect = org_check_value(np.where(org < 0, 0, org))
    last = mat[:, 16]
    last_val = np.where(last == ord("X"), 10, _DIGIT_VAL[last])
    ok &= expect == last_val
    return ok


def valid_id_number(values) -> np.ndarray:
    """True where the value is an 18-character resident ID with a right check and a real birth date."""
    mat, ok = _as_byte_matrix(values, 18)
    digits = _DIGIT_VAL[mat[:, :17]]
    ok &= (digits >= 0).all(axis=1)
    r = (np.where(digits < 0, 0, digits) @ ID_WEIGHTS) % 11
    check = np.frombuffer(ID_CHECK.encode(), dtype=np.uint8)[r]
    ok &= check == mat[:, 17]
    birth_text = pd.Series(np.ascontiguousarray(mat[:, 6:14]).view("S8").ravel()).str.decode(
        "ascii"
    )
    birth = pd.to_datetime(birth_text, format="%Y%m%d", errors="coerce")
    ok &= birth.notna().to_numpy()
    return ok


def _chars(vals: np.ndarray, alphabet: str) -> np.ndarray:
    table = np.frombuffer(alphabet.encode(), dtype=np.uint8)
    return table[vals]


def make_uscc(
    first_char: np.ndarray, kind_char: np.ndarray, division: np.ndarray, org_body: np.ndarray
) -> np.ndarray:
    """Build valid USCCs from parts (vectorised). ``org_body`` is rows × 8 values 0-9 (digits)."""
    n = len(division)
    org_check = org_check_value(org_body)
    org_chars = np.frombuffer(b"0123456789X", dtype=np.uint8)[org_check]
    mat = np.zeros((n, 18), dtype=np.uint8)
    mat[:, 0] = np.frombuffer("".join(first_char).encode(), dtype=np.uint8)
    mat[:, 1] = np.frombuffer("".join(kind_char).encode(), dtype=np.uint8)
    mat[:, 2:8] = np.frombuffer("".join(division).encode(), dtype=np.uint8).reshape(n, 6)
    mat[:, 8:16] = org_body.astype(np.uint8) + ord("0")
    mat[:, 16] = org_chars
    vals = _USCC_VAL[mat[:, :17]]
    mat[:, 17] = _chars(uscc_check_char(vals), USCC_ALPHABET)
    return mat.view("S18").ravel().astype(str)


def make_id_number(division: np.ndarray, birth_yyyymmdd: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """Build valid resident ID numbers (vectorised); ``seq`` is 0-999."""
    body = np.char.add(
        np.char.add(division.astype(str), birth_yyyymmdd.astype(str)),
        np.char.zfill(seq.astype(str), 3),
    )
    n = len(body)
    mat = np.frombuffer("".join(body).encode(), dtype=np.uint8).reshape(n, 17) - ord("0")
    r = (mat.astype(np.int64) @ ID_WEIGHTS) % 11
    check = np.array(list(ID_CHECK))[r]
    return np.char.add(body, check)


def normalise_code(s: pd.Series) -> pd.Series:
    """Upper-case, strip spaces (incl. full-width) and map full-width ASCII to half-width."""
    text = s.astype("string")
    # Most codes arrive as plain upper-case ASCII, which every step leaves as it is: only the
    # others take the steps (Python's per-value string work, the bulk of staging a file).
    plain = matches(arrow_text(text), "^[0-9A-Z]+$")
    if plain.all():
        return text
    if not plain.any():
        return _normalise_code_texts(text)
    out = text.copy()
    rest = np.flatnonzero(~plain)
    out.iloc[rest] = _normalise_code_texts(text.iloc[rest])
    return out


def _normalise_code_texts(s: pd.Series) -> pd.Series:
    """``normalise_code`` step by step on the text."""
    s = s.str.translate(_FULLWIDTH).str.replace(r"[\s\u3000]+", "", regex=True).str.upper()
    return s.mask(s == "", pd.NA)


_FULLWIDTH = {0xFF01 + i: 0x21 + i for i in range(94)}
_FULLWIDTH[0x3000] = 0x20
