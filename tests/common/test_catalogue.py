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
        for key in ("behaviour", "provider", "data_source", "nature", "sharing", "opening", "publicity",
                    "update_cycle_days", "subject_types", "severity", "mandatory"):
            assert key in item, (item["code"], key)


def test_required_kinds_of_information_are_present(cat):
    codes = set(cat.item_codes)
    for code in ("REG_BASIC", "COMMENDATION", "COMMITMENT", "COMMITMENT_BREACH", "LICENCE", "PENALTY_GENERAL",
                 "PENALTY_SEVERE", "COURT_JUDGMENT", "DISHONEST_DEBTOR", "TAX_ARREARS",
                 "SOCIAL_INSURANCE_ARREARS", "HOUSING_FUND_ARREARS", "REFUSE_TO_PERFORM", "FALSIFICATION",
                 "INSPECTION_FAIL"):
        assert code in codes


def test_version_is_a_content_hash(cat):
    same = Catalogue.from_doc(copy.deepcopy(cat.doc))
    assert same.sha256 == cat.sha256 and len(cat.sha256) == 64
    changed = copy.deepcopy(cat.doc)
    changed["items"][0]["update_cycle_days"] = 2
    assert Catalogue.from_doc(changed).sha256 != cat.sha256


def test_publicity_rules_change_on_2026_04_01(cat):
    before = cat.rules_in_force(dt.date(2026, 3, 31))
    after = cat.rules_in_force(dt.date(2026, 4, 1))
    assert before["id"] != after["id"]
    assert after["severe"]["min_months"] == 12 and after["severe"]["max_months"] == 36
    assert before["severe"]["min_months"] == 6


def test_duplicate_item_codes_are_refused(cat):
    doc = copy.deepcopy(cat.doc)
    doc["items"].append(copy.deepcopy(doc["items"][0]))
    with pytest.raises(ValueError):
        Catalogue.from_doc(doc)
