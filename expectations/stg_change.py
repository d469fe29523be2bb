"""Contract for ``stg_change``: one row is one correction (更正), revocation (撤销), objection mark
or closure (异议标注/办结) or credit repair (信用修复) of one record already in the history,
identified by its decision document number and subject."""

from __future__ import annotations

import great_expectations as gx

from expectations import custom

SUITE_NAME = "stg_change"
OPS = [
    "correct",
    "revoke",
    "objection_filed",
    "objection",
    "objection_closed",
    "repair",
    "positive_optout",
    "positive_optin",
]


def build_suite(catalogue, as_of: str) -> gx.ExpectationSuite:
    suite = gx.ExpectationSuite(
        name=SUITE_NAME, meta={"catalogue_sha256": catalogue.sha256, "as_of": as_of}
    )
    add = suite.add_expectation
    for col in ("op", "doc_number", "subject_code", "effective_date"):
        add(
            gx.expectations.ExpectColumnValuesToNotBeNull(
                column=col, meta={"reason": "missing_field"}
            )
        )
    add(
        gx.expectations.ExpectColumnValuesToBeNull(
            column="bad_values", meta={"reason": "bad_value"}
        )
    )
    add(
        gx.expectations.ExpectColumnValuesToBeInSet(
            column="op", value_set=OPS, meta={"reason": "bad_value"}
        )
    )
    add(
        gx.expectations.ExpectColumnValuesToBeInSet(
            column="record_known",
            value_set=[True],
            meta={"reason": "unknown_record"},
            description="the change refers to a record already accepted into the history",
        )
    )
    add(
        gx.expectations.ExpectColumnValuesToBeInSet(
            column="repair_allowed",
            value_set=[True],
            meta={"reason": "not_repairable"},
            description="repairs only for items the catalogue marks repairable (Art. 40)",
        )
    )
    add(
        custom.ExpectDatesInOrder(
            column_list=["repair_earliest_date", "effective_date"],
            meta={"reason": "repair_too_early"},
            description="repair only after the minimum publicity period in force",
        )
    )
    add(
        gx.expectations.ExpectColumnValuesToBeInSet(
            column="objection_opened",
            value_set=[True],
            meta={"reason": "objection_decision_without_filing"},
            description="an objection decision follows a filing or mark of the same record (Art. 39)",
        )
    )
    add(
        gx.expectations.ExpectColumnValuesToBeInSet(
            column="result_known",
            value_set=[True],
            meta={"reason": "unknown_objection_result"},
            description="an objection decision says upheld (采纳/更正), partly (部分采纳) or rejected (维持/驳回)",
        )
    )
    add(
        gx.expectations.ExpectColumnValuesToBeInSet(
            column="new_item_known",
            value_set=[True],
            meta={"reason": "unknown_item"},
            description="a correction that changes the item names a catalogue item",
        )
    )
    add(
        custom.ExpectDatesInOrder(
            column_list=["record_decision_date", "effective_date"],
            meta={"reason": "dates_out_of_order"},
            description="a change takes effect on or after the record's decision",
        )
    )
    add(
        custom.ExpectDatesInOrder(
            column_list=["new_decision_date", "new_publicity_end_date"],
            meta={"reason": "dates_out_of_order"},
            description="a corrected publicity end is not before the corrected decision",
        )
    )
    add(
        custom.ExpectDateNotAfterDelivery(
            column_list=["effective_date", "delivered_on"],
            as_of=as_of,
            meta={"reason": "future_date"},
        )
    )
    add(
        custom.ExpectRecordsToBeFirstOccurrence(
            column_list=["change_key", "seen_before"], meta={"reason": "duplicate"}
        )
    )
    return suite
