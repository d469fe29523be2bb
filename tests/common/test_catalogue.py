import copy
import datetime as dt

import pytest

from scoring.common.catalogue import Catalogue


@pytest.fixture(scope="module")
def cat():
    return Catalogue.load()


def test_at_least_15_items_spanning_the_ten_kinds_of_art_18(cat):
    assert len(cat.items) >= 15
    assert {int(i["kind"]) for i in cat.items} == set(range(1, 11))


def test_every_item_carries_the_art_18_elements(cat):
    for item in cat.items:
        for key in (
            "behaviour",
            "provider",
            "data_source",
            "nature",
            "sharing",
            "opening",
            "publicity",
            "update_cycle_days",
            "subject_types",
            "severity",
            "mandatory",
        ):
            assert key in item, (item["code"], key)


def test_required_kinds_of_information_are_present(cat):
    codes = set(cat.item_codes)
    for code in (
        "REG_BASIC",
        "COMMENDATION",
        "COMMITMENT",
        "COMMITMENT_BREACH",
        "LICENCE",
        "PENALTY_GENERAL",
        "PENALTY_SEVERE",
        "COURT_JUDGMENT",
        "DISHONEST_DEBTOR",
        "TAX_ARREARS",
        "SOCIAL_INSURANCE_ARREARS",
        "HOUSING_FUND_ARREARS",
        "REFUSE_TO_PERFORM",
        "FALSIFICATION",
        "INSPECTION_FAIL",
    ):
        assert code in codes


def test_version_is_a_content_hash(cat):
    same = Catalogue.from_doc(copy.deepcopy(cat.doc))
    assert same.sha256 == cat.sha256 and len(cat.sha256) == 64
    changed = copy.deepcopy(cat.doc)
    changed["items"][0]["update_cycle_days"] = 2
    assert Catalogue.from_doc(changed).sha256 != cat.sha256


def test_three_period_sets_by_effective_date(cat):
    """2019 notice until 2023-04-30, NDRC Order 58 from 2023-05-01, NDRC Order 36 from 2026-04-01."""
    ids = [
        cat.rules_in_force(dt.date.fromisoformat(d))["id"]
        for d in ("2023-04-30", "2023-05-01", "2026-03-31", "2026-04-01")
    ]
    assert ids == ["ndrc-2019", "ndrc-order-58-2023", "ndrc-order-58-2023", "ndrc-order-36-2025"]
    r2019, o58, o36 = (
        cat.rules_in_force(dt.date.fromisoformat(d))
        for d in ("2022-01-01", "2024-01-01", "2026-05-01")
    )
    assert (
        r2019["severe"]["min_months"],
        o58["severe"]["min_months"],
        o36["severe"]["min_months"],
    ) == (6, 3, 12)
    assert {r["general"]["min_months"] for r in (r2019, o58, o36)} == {3}
    # Order 58: every penalty 3 months to 3 years, no split by grade; one year for the named fields.
    assert (r2019["general"]["max_months"], o58["general"]["max_months"]) == (12, 36)
    assert o36["general"]["max_months"] == 12
    assert {r["severe"]["max_months"] for r in (r2019, o58, o36)} == {36}
    assert o58["field_minimum"]["min_months"] == 12 and "安全生产" in o58["field_minimum"]["fields"]
    assert o36["minor"]["max_months"] == 3 and o36["minor_class"] and not o58["minor_class"]


def test_duplicate_item_codes_are_refused(cat):
    doc = copy.deepcopy(cat.doc)
    doc["items"].append(copy.deepcopy(doc["items"][0]))
    with pytest.raises(ValueError):
        Catalogue.from_doc(doc)
