"""Administrative penalties graded by procedure and penalty type under the rules in force on the
decision date; the provider's own grade wins; no amount threshold."""

from __future__ import annotations

import pandas as pd
import pytest

from scoring.common.catalogue import Catalogue
from scoring.common.law import grade_penalties

DOC = Catalogue.load().doc

CASES = [
    # category, amount_yuan, subject, procedure, provider grade, decision, publicity end -> grade, basis
    ("警告", None, "legal", None, None, "2026-04-01", None, "simplified", "statutory_simplified"),
    ("罚款", 3000, "legal", None, None, "2026-04-01", None, "simplified", "statutory_simplified"),
    ("罚款", 200, "natural", None, None, "2026-04-01", None, "simplified", "statutory_simplified"),
    ("罚款", 201, "natural", None, None, "2026-04-01", None, "general", "penalty_type"),
    ("罚款", 5000, "legal", "简易程序", None, "2026-04-01", None, "simplified", "procedure"),
    (
        "警告",
        None,
        "legal",
        "一般程序",
        None,
        "2026-04-01",
        None,
        "minor",
        "penalty_type",
    ),  # Order 36
    (
        "警告",
        None,
        "legal",
        "一般程序",
        None,
        "2026-03-31",
        None,
        "general",
        "penalty_type",
    ),  # Order 58
    ("通报批评", None, "legal", None, None, "2026-05-01", None, "minor", "penalty_type"),
    (
        "罚款",
        600_000,
        "legal",
        None,
        None,
        "2026-05-01",
        None,
        "general",
        "penalty_type",
    ),  # no amount rule
    (
        "吊销许可证件;罚款",
        10_000,
        "legal",
        None,
        None,
        "2026-05-01",
        None,
        "severe",
        "penalty_type",
    ),
    ("责令停产停业", None, "legal", None, None, "2022-05-01", None, "severe", "penalty_type"),
    ("罚款", 10_000, "legal", None, "严重", "2026-05-01", None, "severe", "provider_grade"),
    ("吊销许可证件", None, "legal", None, "一般", "2026-05-01", None, "general", "provider_grade"),
    ("罚款", 10_000, "legal", None, None, "2026-05-01", "2028-05-01", "severe", "publicity_period"),
    ("罚款", 10_000, "legal", None, None, "2026-05-01", "2027-05-01", "general", "penalty_type"),
]


@pytest.mark.parametrize("cat,amount,subject,proc,pgrade,dec,end,grade,basis", CASES)
def test_grading(cat, amount, subject, proc, pgrade, dec, end, grade, basis):
    f = pd.DataFrame(
        {
            "penalty_category": [cat],
            "amount_yuan": [amount],
            "subject_type": [subject],
            "procedure": [proc],
            "provider_grade": [pgrade],
            "decision_date": [pd.Timestamp(dec)],
            "publicity_end_date": [pd.Timestamp(end) if end else pd.NaT],
        }
    )
    got = grade_penalties(f, DOC).iloc[0]
    assert (got["grade"], got["grade_basis"]) == (grade, basis)
