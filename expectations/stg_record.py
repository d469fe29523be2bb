"""Contract for ``stg_record``: one row is one catalogue record about one subject (a market
entity or a natural person), as one provider delivered it on one line of one file, typed and
renamed. A row that breaks an expectation is quarantined with the reason in the expectation's
``meta["reason"]``; it never reaches the store or a score."""

from __future__ import annotations

import great_expectations as gx

from expectations import custom

SUITE_NAME = "stg_record"
PENALTY_ITEMS = ["PENALTY_GENERAL", "PENALTY_SEVERE"]
IDENTITY = {"legal": "uscc", "individual": "uscc", "natural": "id_number"}
SUBJECT_TYPES = ["legal", "individual", "natural"]


def build_suite(catalogue, as_of: str) -> gx.ExpectationSuite:
    items = catalogue.items
    suite = gx.ExpectationSuite(
        name=SUITE_NAME, meta={"catalogue_sha256": catalogue.sha256, "as_of": as_of}
    )
    add = suite.add_expectation
    add(
        gx.expectations.ExpectColumnValuesToBeNull(
            column="bad_values",
            meta={"reason": "bad_value"},
            description="Dates and amounts that are present can be parsed",
        )
    )
    add(
        custom.ExpectColumnValuesToBeCatalogueItems(
            column="item_code",
            item_codes=sorted(i["code"] for i in items),
            catalogue_sha256=catalogue.sha256,
            meta={"reason": "unknown_item"},
        )
    )
    add(
        custom.ExpectMandatoryFieldsPresent(
            column_list=[
                "item_code",
                "subject_type",
                "subject_name",
                "uscc",
                "id_number",
                "doc_number",
                "decision_date",
                "authority_name",
                "penalty_category",
                "amount_yuan",
            ],
            mandatory={i["code"]: sorted(set(i["mandatory"]) - {"uscc"}) for i in items},
            identity=IDENTITY,
            meta={"reason": "missing_field"},
        )
    )
    add(
        gx.expectations.ExpectColumnValuesToBeInSet(
            column="subject_type", value_set=SUBJECT_TYPES, meta={"reason": "bad_subject_type"}
        )
    )
    add(custom.ExpectColumnValuesToBeValidUscc(column="uscc", meta={"reason": "invalid_uscc"}))
    add(
        custom.ExpectColumnValuesToBeValidResidentId(
            column="id_number", meta={"reason": "invalid_id_number"}
        )
    )
    add(
        custom.ExpectDateNotAfterDelivery(
            column_list=["decision_date", "delivered_on"],
            as_of=as_of,
            meta={"reason": "future_date"},
        )
    )
    add(
        custom.ExpectDatesInOrder(
            column_list=["decision_date", "publicity_end_date"],
            meta={"reason": "publicity_before_decision"},
        )
    )
    add(
        custom.ExpectDatesInOrder(
            column_list=["registered_date", "decision_date"], meta={"reason": "before_registration"}
        )
    )
    add(
        custom.ExpectDatesInOrder(
            column_list=["decision_date", "removal_date"],
            meta={"reason": "removal_before_listing"},
            description="a listing is not removed before it was published",
        )
    )
    add(
        custom.ExpectPublicityWithinCatalogueBounds(
            column_list=["item_code", "decision_date", "publicity_end_date", "grade"],
            item_severity={
                i["code"]: i["severity"] for i in items if i.get("publicity") == "rules"
            },
            fixed_months={
                i["code"]: int(i["publicity"]["months"])
                for i in items
                if isinstance(i.get("publicity"), dict)
            },
            rules=[
                {
                    "effective_from": str(r["effective_from"]),
                    "severity": sev,
                    "min_months": int(r[sev]["min_months"]),
                    "max_months": int(r[sev]["max_months"]),
                }
                for r in catalogue.doc["publicity_rules"]
                for sev in ("minor", "general", "severe")
            ],
            meta={"reason": "publicity_out_of_range"},
        )
    )
    add(
        custom.ExpectRecordsToBeFirstOccurrence(
            column_list=["record_key", "seen_before"], meta={"reason": "duplicate"}
        )
    )
    return suite
