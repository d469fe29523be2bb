"""Provider feedback on the nights where it is needed most: deliveries rejected at intake."""

import pandas as pd

from scoring.common.catalogue import Catalogue
from scoring.reporting.report import provider_feedback

COLS = ["path", "provider", "feed", "status", "received", "accepted", "quarantined"]


def _files(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLS)


def _quar(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["path", "line_no", "provider", "reasons"])


def test_a_night_whose_only_delivery_was_rejected_still_gets_feedback():
    # A provider re-sent a file that intake rejected, and nothing else arrived.
    files = _files([["court/20260701_resent.csv", "court", "court", "rejected", 0, 0, 0]])
    fb = provider_feedback(files, _quar([]), Catalogue.load()).set_index("provider")
    assert fb.loc["court", "rejected_files"] == 1
    assert fb.loc["court", "received"] == 0 and pd.isna(fb.loc["court", "compliance"])
    assert not fb.loc["court", "compliance_ok"]


def test_a_rejected_resend_beside_accepted_files_is_counted_not_divided():
    files = _files(
        [
            ["court/a.csv", "court", "court", "rejected", 0, 0, 0],
            ["ndrc/b.csv", "ndrc", "credit_record", "loaded", 10_000, 9_990, 10],
        ]
    )
    quar = _quar([["ndrc/b.csv", 7, "ndrc", "invalid_uscc"], ["ndrc/b.csv", 9, "ndrc", "x"]])
    fb = provider_feedback(files, quar, Catalogue.load()).set_index("provider")
    assert list(fb.index) == ["court", "ndrc"]
    assert fb.loc["ndrc", "uscc_error_per_10k"] == 1.0 and fb.loc["ndrc", "compliance"] == 0.999
    assert fb.loc["court", "rejected_files"] == 1 and fb.loc["ndrc", "rejected_files"] == 0
