"""Contract for ``stg_entity``: one row is one market entity's registration (登记) as the register
delivered it: its USCC, name, type, industry, division and registration date."""

from __future__ import annotations

import great_expectations as gx

from expectations import custom

SUITE_NAME = "stg_entity"


def build_suite(catalogue, as_of: str) -> gx.ExpectationSuite:
    suite = gx.ExpectationSuite(
        name=SUITE_NAME, meta={"catalogue_sha256": catalogue.sha256, "as_of": as_of}
    )
    add = suite.add_expectation
    for col in (
        "uscc",
        "subject_name",
        "entity_type",
        "division_code",
        "registered_date",
        "entity_status",
    ):
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
    add(custom.ExpectColumnValuesToBeValidUscc(column="uscc", meta={"reason": "invalid_uscc"}))
    add(
        custom.ExpectColumnValuesToBeValidResidentId(
            column="legal_rep_id_number", meta={"reason": "invalid_id_number"}
        )
    )
    add(
        gx.expectations.ExpectColumnValuesToNotBeNull(
            column="eval_class",
            meta={"reason": "bad_value"},
            description="entity type is one the register knows",
        )
    )
    add(
        gx.expectations.ExpectColumnValuesToMatchRegex(
            column="division_code", regex=r"^\d{6}$", meta={"reason": "bad_value"}
        )
    )
    add(
        custom.ExpectDateNotAfterDelivery(
            column_list=["registered_date", "delivered_on"],
            as_of=as_of,
            meta={"reason": "future_date"},
        )
    )
    add(
        custom.ExpectRecordsToBeFirstOccurrence(
            column_list=["uscc", "seen_before"], meta={"reason": "duplicate"}
        )
    )
    return suite
