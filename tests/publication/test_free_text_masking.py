"""Identifiers inside free text are masked however they are written (Art. 23 of the regulation:
personal information is published desensitised): any resident ID or mobile number, with any
pattern of separators between its digits and full-width digits, inside any name (Hypothesis).
Published text also loses invisible and direction-changing characters."""

from __future__ import annotations

import re

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.publication import free_text as ft

SEPS = [
    " ",
    "\u00a0",
    "\u3000",
    "-",
    "－",
    "\u2014",
    ".",
    "·",
    "\u200b",
    "\u200c",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\u202e",
]
FULL = {str(i): chr(0xFF10 + i) for i in range(10)}
NOT_DIGITS = st.text(
    alphabet=st.characters(blacklist_categories=("Nd", "Cs"), blacklist_characters="XxＸｘ").filter(
        lambda c: not c.isdigit()
    ),
    max_size=6,
)


def _id_numbers():
    return st.tuples(
        st.from_regex(r"[1-6][0-9]{5}", fullmatch=True),
        st.from_regex(r"(19|20)[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9])", fullmatch=True),
        st.from_regex(r"[0-9]{3}[0-9X]", fullmatch=True),
    ).map("".join)


def _mobiles():
    return st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)


@st.composite
def written_apart(draw, number):
    """The number with 0-2 separators drawn between any two characters, some digits full-width."""
    out = []
    for i, ch in enumerate(number):
        if i:
            out += draw(st.lists(st.sampled_from(SEPS), max_size=2))
        out.append(FULL[ch] if ch in FULL and draw(st.booleans()) else ch)
    return "".join(out)


def _digits(text: str) -> str:
    """What a reader recovers from a text: its digits and X, separators dropped, folded."""
    return re.sub(
        "[^0-9X]",
        "",
        "".join(ch for ch in text if not re.fullmatch(ft._SEP_RE, ch)).translate(ft._FOLD),
    )


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(_id_numbers(), _mobiles()).flatmap(lambda n: st.tuples(st.just(n), written_apart(n))),
    NOT_DIGITS,
    NOT_DIGITS,
)
def test_any_id_or_mobile_written_any_way_inside_any_name_is_masked(number, before, after):
    plain, written = number
    name = before + written + after
    out = ft.published_text(pa.array([name], type=pa.large_string())).to_pylist()[0]
    left = _digits(out)
    assert plain not in left
    assert not re.search(r"[0-9]{11}", left)  # no run long enough to be either
    assert not ft.scan_text(out)
    # the region / prefix and the last four stay readable (the rules' own shape)
    keep_head, keep_tail = (6, 4) if len(plain) == 18 else (3, 4)
    assert left.startswith(plain[:keep_head]) or not left
    assert left.endswith(plain[-keep_tail:])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=20)), max_size=30), st.integers(0, 30))
def test_chunked_or_not_the_same_and_text_without_numbers_untouched(vals, cut):
    arr = pa.array(vals, type=pa.large_string())
    want = ft.mask_identifiers(arr)
    cut = min(cut, len(vals))
    chunked = pa.chunked_array([arr.slice(0, cut), arr.slice(cut)], type=pa.large_string())
    assert ft.mask_identifiers(chunked).combine_chunks().equals(want)
    for v, w in zip(vals, want.to_pylist()):
        if v is None or not ft._CANDIDATE.search(v):
            assert w == v


def test_the_hostile_round_s_names():
    cases = {
        "张三230102 19800101 7021个体店": "张三230102 ******** 7021个体店",
        "230102-19800101-7013": "230102-********-7013",
        "138\u200b1234\u200b5678": "138****5678",
        "230102\u00a019800101\u00a0701X": "230102\u00a0********\u00a0701X",
        "138-1234-5678": "138-****-5678",
        "\u202e店名\u202c": "店名",
        "a\x1b[31mb\x08": "a[31mb",
        "甲\u2028乙\ufffe": "甲 乙",
        "\u200b\u200b\u200b": "",
        "2024-03-05 至 2025-03-05": "2024-03-05 至 2025-03-05",  # dates stay
    }
    got = ft.published_text(pa.array(list(cases), type=pa.large_string())).to_pylist()
    assert dict(zip(cases, got)) == cases
