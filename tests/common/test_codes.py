import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.common import codes

# Real organisations' codes (publicly listed on their business licences).
REAL_USCC = [
    "91330100799655058B",  # 阿里巴巴（中国）有限公司
    "9144030071526726XG",  # 深圳市腾讯计算机系统有限公司
    "914403001922038216",  # 华为技术有限公司
    "91110000802100433B",  # 北京百度网讯科技有限公司
    "91110108551385082Q",  # 小米科技有限责任公司
    "91440300708461136T",  # 中国平安保险（集团）股份有限公司
]
ID_EXAMPLES = ["11010519491231002X", "440524188001010014"]  # GB 11643-1999 examples


def test_real_codes_pass_both_check_characters():
    assert codes.valid_uscc(REAL_USCC).all()


def test_every_single_character_substitution_of_a_real_code_is_rejected():
    variants = []
    for code in REAL_USCC:
        for pos in range(18):
            for ch in codes.USCC_ALPHABET:
                if ch != code[pos]:
                    variants.append(code[:pos] + ch + code[pos + 1 :])
    ok = codes.valid_uscc(variants)
    assert len(variants) == len(REAL_USCC) * 18 * 30
    assert not ok.any(), [v for v, k in zip(variants, ok) if k][:5]


def test_codes_with_letters_in_the_first_eight_positions_are_accepted():
    # Libraries that demand digits in positions 1-8 reject valid N/Y codes; we must not.
    made = codes.make_uscc(
        np.array(["N", "Y", "5"]),
        np.array(["2", "1", "1"]),
        np.array(["231202", "230102", "230623"]),
        np.array([[1, 2, 3, 4, 5, 6, 7, 8]] * 3),
    )
    assert codes.valid_uscc(made).all()
    assert [m[0] for m in made] == ["N", "Y", "5"]


def test_malformed_values_are_rejected_not_crashing():
    bad = [
        None,
        "",
        "abc",
        "91330100799655058",
        "91330100799655058BB",
        "９1330100799655058B",
        "I1330100799655058B",
        123,
        float("nan"),
    ]
    assert not codes.valid_uscc(bad).any()
    assert not codes.valid_id_number(bad).any()


def test_resident_id_examples_and_substitutions():
    assert codes.valid_id_number(ID_EXAMPLES).all()
    variants = [
        c[:i] + d + c[i + 1 :]
        for c in ID_EXAMPLES
        for i in range(18)
        for d in "0123456789X"
        if d != c[i] and not (i < 17 and d == "X")
    ]
    # A substitution in the birth date may make an impossible date; every variant must fail anyway.
    assert not codes.valid_id_number(variants).any()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(sorted(codes.USCC_FIRST)),
            st.sampled_from("123"),
            st.integers(0, 99_999_999),
        ),
        min_size=1,
        max_size=50,
    )
)
def test_generated_codes_are_valid(parts):
    first = np.array([p[0] for p in parts])
    kind = np.array([p[1] for p in parts])
    body = np.array([[int(c) for c in f"{p[2]:08d}"] for p in parts])
    made = codes.make_uscc(first, kind, np.array(["230102"] * len(parts)), body)
    assert codes.valid_uscc(made).all()


def test_normalise_code_handles_case_spaces_and_full_width():
    import pandas as pd

    s = pd.Series([" 91330100799655058b ", "９１３３０１００７９９６５５０５８Ｂ", "", None])
    out = codes.normalise_code(s)
    assert out.iloc[0] == "91330100799655058B"
    assert out.iloc[1] == "91330100799655058B"
    assert out.isna().iloc[2] and out.isna().iloc[3]


CODE_BITS = st.sampled_from(
    ["9133", "0100", "X", "b", "Ｂ", "９", " ", "\u3000", "\t", "ß", "-", "é", "", "ｘ"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.none(), st.lists(CODE_BITS, max_size=6).map("".join)), max_size=10))
def test_plain_codes_pass_through_as_the_text_steps_leave_them(texts):
    """Plain upper-case ASCII codes skip the text steps; the result is what every step gives."""
    import pandas as pd

    s = pd.Series(texts, dtype=object, index=pd.RangeIndex(5, 5 + len(texts)), name="uscc")
    slow = codes._normalise_code_texts(s.astype("string"))
    pd.testing.assert_series_equal(codes.normalise_code(s), slow)


@pytest.mark.parametrize("n", [0, 1, 10_000])
def test_vectorised_on_any_length(n):
    assert codes.valid_uscc(REAL_USCC * n).sum() == len(REAL_USCC) * n
