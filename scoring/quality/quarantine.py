"""Quarantine rows: where a refused line came from, why, and the provider's own values."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd


def staged_quarantine(
    bad: pd.DataFrame, reasons, raw_values: Callable[[pd.DataFrame], pd.Series]
) -> pd.DataFrame:
    """Quarantine rows of staged rows refused with ``reasons`` (one per row, in row order)."""
    return pd.DataFrame(
        {
            "path": bad["source_file"],
            "line_no": bad["line_no"],
            "provider": bad["provider"],
            "reasons": pd.Series(reasons, index=bad.index, dtype="string"),
            "raw_json": raw_values(bad),
        }
    )


def unparsed_quarantine(unparsed: pd.DataFrame) -> pd.DataFrame:
    """Quarantine rows of the lines the reader could not parse."""
    return pd.DataFrame(
        {
            "path": unparsed["path"],
            "line_no": unparsed["line_no"],
            "provider": unparsed["provider"],
            "reasons": unparsed["reason"],
            "raw_json": unparsed["raw"],
        }
    )
