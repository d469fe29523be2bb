"""Custom Great Expectations (GX 1.x) for what no stock expectation covers.

Each expectation is a map expectation: it answers yes/no per row, so GX reports the offending
row indexes and the pipeline turns them into quarantine reasons. Conditions are computed on
whole columns with numpy/pandas (check digits included), never row by row in Python.
Importing this module registers the metrics and expectations with GX.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import (
    ColumnMapExpectation,
    MulticolumnMapExpectation,
)
from great_expectations.expectations.metrics import (
    ColumnMapMetricProvider,
    column_condition_partial,
)
from great_expectations.expectations.metrics.map_metric_provider import (
    MulticolumnMapMetricProvider,
    multicolumn_condition_partial,
)

from scoring.common import codes


def _series(mask, index) -> pd.Series:
    return pd.Series(np.asarray(mask, dtype=bool), index=index)


# --------------------------------------------------------------------------- identifiers


class ColumnValuesValidUscc(ColumnMapMetricProvider):
    condition_metric_name = "column_values.valid_uscc"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, **kwargs):
        return _series(codes.valid_uscc(column.to_numpy(dtype=object)), column.index)


class ExpectColumnValuesToBeValidUscc(ColumnMapExpectation):
    """Values are Unified Social Credit Codes (GB 32100-2015) whose mod-31 check character and
    embedded GB 11714 organisation-code check character are both right."""

    map_metric = "column_values.valid_uscc"
    success_keys = ("mostly",)
    library_metadata: ClassVar[dict] = {
        "tags": ["credit", "identifier"],
        "contributors": ["public-credit"],
    }


class ColumnValuesValidResidentId(ColumnMapMetricProvider):
    condition_metric_name = "column_values.valid_resident_id"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, **kwargs):
        return _series(codes.valid_id_number(column.to_numpy(dtype=object)), column.index)


class ExpectColumnValuesToBeValidResidentId(ColumnMapExpectation):
    """Values are 18-character resident ID numbers (GB 11643-1999, ISO 7064 MOD 11-2) with a
    real birth date."""

    map_metric = "column_values.valid_resident_id"
    success_keys = ("mostly",)


# --------------------------------------------------------------------------- catalogue


class ColumnValuesInCatalogue(ColumnMapMetricProvider):
    condition_metric_name = "column_values.in_catalogue"
    condition_value_keys = ("item_codes",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, item_codes, **kwargs):
        return column.isin(list(item_codes))


class ExpectColumnValuesToBeCatalogueItems(ColumnMapExpectation):
    """Values are item codes of the information catalogue version in force (identified by its
    sha256); anything else is not public credit information under Art. 18."""

    item_codes: list[str]
    catalogue_sha256: str
    map_metric = "column_values.in_catalogue"
    success_keys = ("item_codes", "catalogue_sha256", "mostly")


class MandatoryFieldsPresent(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.mandatory_present"
    condition_value_keys = ("mandatory", "identity")

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, mandatory, identity, **kwargs):
        df = column_list
        ok = pd.Series(True, index=df.index)
        item = df["item_code"]
        for code, fields in mandatory.items():
            rows = (item == code).fillna(False).to_numpy()
            if not rows.any():
                continue
            present = df[list(fields)].notna().all(axis=1).to_numpy()
            ok &= ~rows | present
        # Subjects are matched by USCC (organisations, individual businesses) or ID number (persons).
        st = df["subject_type"]
        for stype, col in identity.items():
            ok &= ~((st == stype).fillna(False) & df[col].isna())
        ok &= df["subject_type"].notna() | item.isna()
        return ok


class ExpectMandatoryFieldsPresent(MulticolumnMapExpectation):
    """Every field the catalogue marks mandatory for the row's item is present, and the subject
    carries the identifier its type is matched by."""

    mandatory: dict[str, list[str]]
    identity: dict[str, str]
    ignore_row_if: str = "never"
    map_metric = "multicolumn_values.mandatory_present"
    success_keys = ("mandatory", "identity", "mostly")


# --------------------------------------------------------------------------- law


class PublicityWithinBounds(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.publicity_within_bounds"
    condition_value_keys = ("item_severity", "fixed_months", "rules")

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, item_severity, fixed_months, rules, **kwargs):
        df = column_list
        dec = pd.to_datetime(df["decision_date"])
        end = pd.to_datetime(df["publicity_end_date"])
        ok = pd.Series(True, index=df.index)
        both = dec.notna() & end.notna()
        r = pd.DataFrame(rules)
        r["effective_from"] = pd.to_datetime(r["effective_from"])
        starts = np.sort(r["effective_from"].unique())
        # The rule set in force on the decision date (the gate's view; scoring uses the as-of date).
        idx = np.clip(
            np.searchsorted(starts, dec.fillna(starts[0]).to_numpy(), side="right") - 1, 0, None
        )
        severity = df["item_code"].map(item_severity)
        if "grade" in df:  # a graded penalty's own grade (minor/general/severe) decides its bounds
            own = df["grade"].where(df["grade"].isin(["minor", "general", "severe"]))
            severity = own.where(own.notna() & severity.notna(), severity)
        key = pd.DataFrame({"effective_from": starts[idx], "severity": severity}, index=df.index)
        b = (
            key.reset_index()
            .merge(r, on=["effective_from", "severity"], how="left")
            .set_index("index")
        )
        lo = b["min_months"].reindex(df.index)
        hi = b["max_months"].reindex(df.index)
        fixed = df["item_code"].map(fixed_months)
        lo = lo.fillna(fixed.where(fixed.isna(), 0))
        hi = hi.fillna(fixed)
        check = both & lo.notna() & hi.notna()
        bounds = pd.DataFrame({"lo": lo[check].astype(int), "hi": hi[check].astype(int)})
        for (m_lo, m_hi), rows in bounds.groupby(["lo", "hi"]).groups.items():
            d = dec[rows]
            inside = (end[rows] >= d + pd.DateOffset(months=int(m_lo))) & (
                end[rows] <= d + pd.DateOffset(months=int(m_hi))
            )
            ok[rows] = inside.to_numpy()
        return ok


class ExpectPublicityWithinCatalogueBounds(MulticolumnMapExpectation):
    """A negative record's publicity period lies within the catalogue's minimum and maximum for its
    severity, under the publicity rules in force on its decision date."""

    item_severity: dict[str, str]
    fixed_months: dict[str, int]
    rules: list[dict]
    ignore_row_if: str = "never"
    map_metric = "multicolumn_values.publicity_within_bounds"
    success_keys = ("item_severity", "fixed_months", "rules", "mostly")


# --------------------------------------------------------------------------- dates


class DateNotAfterReference(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.date_not_after_reference"
    condition_value_keys = ("as_of",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, as_of, **kwargs):
        d = pd.to_datetime(column_list.iloc[:, 0])
        ref = pd.to_datetime(column_list.iloc[:, 1]).fillna(pd.Timestamp(as_of))
        ref = ref.where(ref <= pd.Timestamp(as_of), pd.Timestamp(as_of))
        return ~(d > ref).fillna(False)


class ExpectDateNotAfterDelivery(MulticolumnMapExpectation):
    """The first column (a decision date) is not after the second (the delivery date) nor after the
    evaluation's as-of date: nobody can deliver a decision that has not been made."""

    as_of: str
    ignore_row_if: str = "never"
    map_metric = "multicolumn_values.date_not_after_reference"
    success_keys = ("as_of", "mostly")


class DatesInOrder(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.dates_in_order"

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, **kwargs):
        a = pd.to_datetime(column_list.iloc[:, 0])
        b = pd.to_datetime(column_list.iloc[:, 1])
        return ~(b < a).fillna(False)


class ExpectDatesInOrder(MulticolumnMapExpectation):
    """Where both are present, the second date is not before the first (e.g. publicity end not before
    the decision; a decision not before the entity's registration)."""

    ignore_row_if: str = "any_value_is_missing"
    map_metric = "multicolumn_values.dates_in_order"
    success_keys = ("mostly",)


# --------------------------------------------------------------------------- duplicates


class FirstOccurrence(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.first_occurrence"

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, **kwargs):
        key = column_list.iloc[:, 0]
        seen = column_list.iloc[:, 1].fillna(False).astype(bool)
        dup = key.duplicated(keep="first") & key.notna()
        return ~(dup | seen)


class ExpectRecordsToBeFirstOccurrence(MulticolumnMapExpectation):
    """The record key (decision document number and subject) appears for the first time: not earlier
    in this batch (column 1) and not in anything already stored (column 2, a boolean)."""

    ignore_row_if: str = "never"
    map_metric = "multicolumn_values.first_occurrence"
    success_keys = ("mostly",)
