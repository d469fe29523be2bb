"""Properties of record identity and of the value parsers, over generated inputs."""

from __future__ import annotations

import datetime as dt
import unicodedata

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.common.text import identity_one, identity_text, shown
from scoring.intake.values import _parse_date_texts, parse_amounts, parse_dates

FULLWIDTH = {ord(c): ord(c) + 0xFEE0 for c in "0123456789"}
PREFIXES = st.sampled_from(["哈市监罚", "黑环罚", "（2026）黑01执", "京税稽罚", "ABC"])
SPELL = [
    lambda s: s,
    lambda s: s.replace("〔", "[").replace("〕", "]"),
    lambda s: s.replace("〔", "（").replace("〕", "）"),
    lambda s: s.replace("〔", "(").replace("〕", ")"),
    lambda s: s.replace("〔", "【").replace("〕", "】"),
    lambda s: s.translate(FULLWIDTH),
    lambda s: s[:2] + "\u200b" + s[2:],
    lambda s: s[:1] + "\u202d" + s[1:] + "\u2069",
    lambda s: s.replace("号", "號"),
    lambda s: "\u3000" + s + " \t",
    lambda s: s[:3] + "\u3000" + s[3:],
]


@settings(max_examples=200, deadline=None)
@given(PREFIXES, st.integers(1990, 2030), st.integers(0, 99999), st.lists(st.sampled_from(SPELL)))
def test_every_spelling_of_a_document_number_has_one_identity(prefix, year, n, spellings):
    doc = f"{prefix}〔{year}〕{n}号"
    spelled = doc
    for f in spellings:
        spelled = f(spelled)
    assert identity_one(spelled) == identity_one(doc)
    assert identity_one(identity_one(spelled)) == identity_one(spelled), "idempotent"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_identity_keeps_every_digit_and_letter(s):
    """Two numbers that differ in a digit or a letter never get one identity: normalising only
    drops spaces, invisible characters and bracket shapes."""

    def alnum(t):
        return "".join(ch for ch in t if ch.isalnum())

    assert alnum(identity_one(s)) == alnum(unicodedata.normalize("NFKC", s)).replace("號", "号")


@given(st.text(max_size=40))
def test_messages_show_text_without_hidden_characters(s):
    out = identity_text(pd.Series([s, None, ""], dtype="string"))
    assert out.isna()[1] and out.isna()[2]
    assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in shown(s))
    plain = "".join(ch for ch in s if ch.isprintable() and unicodedata.category(ch)[0] in "LN")
    assert all(ch in shown(s) for ch in plain), "letters and digits (Chinese too) stay readable"


@settings(max_examples=300, deadline=None)
@given(st.dates(dt.date(1950, 1, 1), dt.date(2150, 12, 31)), st.integers(0, 6))
def test_every_written_form_of_a_date_reads_back(d, form):
    text = [
        d.isoformat(),
        f"{d.year}-{d.month}-{d.day}",
        f"{d.year}/{d.month}/{d.day}",
        f"{d.year}年{d.month}月{d.day}日",
        d.strftime("%Y%m%d"),
        f"{d.isoformat()} 23:59:59",
        str((d - dt.date(1899, 12, 30)).days),  # an Excel serial day
    ][form]
    if form == 6 and not 10_000 <= int(text) <= 99_999:
        return
    got, bad = parse_dates(pd.Series([text]))
    assert not bad[0] and got[0].date() == d, text


@given(st.integers(24, 99), st.integers(0, 99))
def test_an_impossible_time_is_a_bad_value(h, m):
    got, bad = parse_dates(pd.Series([f"2026-06-30 {h}:{m:02d}"]))
    assert bad[0] and pd.isna(got[0])


DATE_BITS = st.sampled_from(
    [
        "2026",
        "1999",
        "06",
        "6",
        "30",
        "31",
        "13",
        "0",
        "-",
        "/",
        ".",
        "年",
        "月",
        "日",
        " ",
        "T",
        ":",
        "\n",
        "\u3000",
        "２",
        "０",
        "46203",
        "20260630",
        "12:00",
        "x",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(st.none(), st.lists(DATE_BITS, max_size=7).map("".join)), max_size=12))
def test_plain_dates_read_by_arrow_as_the_text_steps_read_them(texts):
    """The quick reading of plain ASCII dates gives what every text step gives, for any mix."""
    s = pd.Series(texts, dtype=object, index=pd.RangeIndex(3, 3 + len(texts)), name="d")
    got, bad = parse_dates(s)
    want, want_bad = _parse_date_texts(s)
    pd.testing.assert_series_equal(got, want)
    pd.testing.assert_series_equal(bad, want_bad.astype(bool))


def test_impossible_dates_and_words_are_bad_values():
    got, bad = parse_dates(pd.Series(["2026-02-30", "20261340", "二〇二六年六月", "", None]))
    assert bad.tolist() == [True, True, True, False, False]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**9), st.integers(0, 99), st.sampled_from(["", "￥", "¥"]))
def test_amounts_with_separators_currency_and_units(whole, cents, sign):
    value = whole + cents / 100
    grouped = f"{whole:,}.{cents:02d}"
    for text, unit, expect in (
        (f"{sign}{grouped}", "元", value),
        (f"{sign}{whole}.{cents:02d}", "元", value),
        (f"{grouped}万", "元", value * 10_000),
        (f"{grouped}万元", "元", value * 10_000),
        (f"{grouped}元", "万元", value / 10_000),
        (grouped.translate(FULLWIDTH), "元", value),
    ):
        got, bad = parse_amounts(pd.Series([text]), max_value=1e15, unit=unit)
        assert not bad[0] and abs(got[0] - expect) <= 1e-6 * max(1.0, expect), text


def test_amount_forms_that_are_not_numbers_are_bad_values():
    got, bad = parse_amounts(pd.Series(["二千元", "1,5", "12,34.5", "-3", "inf", "1e400", "-0"]))
    assert bad.tolist() == [True, True, True, True, True, True, False]
    assert got[6] == 0.0 and str(got[6]) == "0.0", "-0 is 0"
