"""Contract for ``entity_score``: one row is one active market entity's composite public credit
evaluation in one run: its score on 0–1000, its tier A–D and the reasons. Breaking it is a hard
gate: nothing is published."""

from __future__ import annotations

import great_expectations as gx

from expectations import custom

SUITE_NAME = "entity_score"


def build_suite(catalogue, as_of: str) -> gx.ExpectationSuite:
    suite = gx.ExpectationSuite(name=SUITE_NAME, meta={"as_of": as_of})
    add = suite.add_expectation
    add(gx.expectations.ExpectColumnValuesToBeUnique(column="uscc", meta={"reason": "duplicate"}))
    add(custom.ExpectColumnValuesToBeValidUscc(column="uscc", meta={"reason": "invalid_uscc"}))
    add(
        gx.expectations.ExpectColumnValuesToBeBetween(
            column="score", min_value=0, max_value=1000, meta={"reason": "score_out_of_range"}
        )
    )
    add(
        gx.expectations.ExpectColumnValuesToBeInSet(
            column="tier", value_set=["A", "B", "C", "D"], meta={"reason": "bad_tier"}
        )
    )
    for col in ("uscc", "score", "tier", "reasons"):
        add(
            gx.expectations.ExpectColumnValuesToNotBeNull(
                column=col, meta={"reason": "missing_field"}
            )
        )
    return suite
