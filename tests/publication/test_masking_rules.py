"""Masking rules are checked against the published columns when loaded (a rule for a column the
published table lacks masks nothing, silently: an error), and an individual business whose name is
its operator's own is masked in the name column too (Arts. 17, 23)."""

import pandas as pd
import pytest

from scoring.common.catalogue import Catalogue
from scoring.publication.masking import (
    check_rules,
    mask_personal_data,
    positive_optouts,
    withhold_positive,
)
from scoring.publication.publish import PUBLISHED_COLUMNS


def test_every_catalogue_rule_names_a_published_column():
    for as_of in ("2026-01-01", "2026-06-30"):
        check_rules(Catalogue.in_force(as_of).doc["personal_data"], PUBLISHED_COLUMNS)
    with pytest.raises(ValueError, match="no such column"):
        check_rules({"subject_name_natural": "name"}, PUBLISHED_COLUMNS)
    with pytest.raises(ValueError, match="unknown masking rule"):
        check_rules({"name": "blur"}, PUBLISHED_COLUMNS)


def test_individual_business_names_that_are_person_names_are_masked():
    rows = pd.DataFrame(
        {
            "name": ["王小明", "大庆市信信商贸店", "欧阳娜娜", "张三"],
            "eval_class": [
                "individual_business",
                "individual_business",
                "individual",
                "legal_person",
            ],
            "legal_rep_name": ["王小明", "武强", "欧阳娜娜", "张三"],
        }
    )
    out = mask_personal_data(rows, Catalogue.in_force("2026-06-30").doc["personal_data"])
    assert out["name"].tolist() == ["王**", "大庆市信信商贸店", "欧***", "张三"]
    assert out["legal_rep_name"].tolist() == ["王**", "武*", "欧***", "张*"]
    assert rows["name"].iloc[0] == "王小明"  # the input is untouched


def test_positive_optout_follows_the_latest_request():
    chg = pd.DataFrame(
        {
            "op": ["positive_optout", "positive_optout", "positive_optin", "repair"],
            "subject_code": ["A", "B", "B", "C"],
            "effective_date": pd.to_datetime(
                ["2026-06-01", "2026-06-01", "2026-06-20", "2026-06-01"]
            ),
        }
    )
    assert positive_optouts(chg, "2026-06-10") == {"A", "B"}
    assert positive_optouts(chg, "2026-06-30") == {"A"}
    res = pd.DataFrame(
        {
            "uscc": ["A", "B"],
            "reasons": ["R030 无 / none | R001 表彰奖励1 条 / 1 commendation"] * 2,
            "flags": ["", "objection_pending"],
        }
    )
    out = withhold_positive(res, {"A"}, ["R001"])
    assert (
        out.loc[0, "reasons"] == "R030 无 / none"
        and out.loc[0, "flags"] == "positive_not_published"
    )
    assert (
        out.loc[1, "reasons"] == res.loc[1, "reasons"]
        and out.loc[1, "flags"] == "objection_pending"
    )
