"""Art. 38 of 《黑龙江省社会信用条例》 on the working-day calendar: "公共信用信息提供单位发现公共信用信息
错误、失效或者发生变更的，应当自发现之日起三个工作日内进行更正……认定失信行为的依据被撤销、确认违法、确认
无效或者变更的，公共信用信息提供单位应当自依据被改变之日起两个工作日内向公共信用工作机构提出更新信息，
公共信用工作机构应当在一个工作日内撤销或者变更该信息。" (The CLI cases are in test_boundaries_cli.py.)"""

from __future__ import annotations

import pandas as pd

from scoring.evaluation.provider_deadlines import correction_deadlines, late_by_provider


def test_deadlines_lateness_and_unknown_calendar_per_provider():
    ch = pd.DataFrame(
        {
            "op": ["correct", "correct", "revoke", "revoke", "revoke", "correct", "repair"],
            "record_key": list("abcdefg"),
            "provider": ["samr", "samr", "ndrc", "ndrc", "ndrc", "court", "ndrc"],
            "effective_date": [
                "2026-06-22",  # Mon: due Thu 06-25, delivered that day
                "2026-06-22",  # delivered Fri 06-26: late
                "2026-06-24",  # Wed: due Fri 06-26; delivered 06-26, applied Tue 06-30: platform late
                "2026-06-24",  # delivered Mon 06-29: late; applied 06-30 within one working day
                "2026-06-25",  # Thu: due Mon 06-29, delivered 06-30: late
                "2027-12-30",  # no holiday arrangement for 2028 is known: no guess
                "2026-06-01",  # a repair has no Art. 38 deadline
            ],
            "delivered_on": ["2026-06-25", "2026-06-26", "2026-06-26", "2026-06-29"]
            + ["2026-06-30"] * 3,
            "batch_known_from": pd.to_datetime(["2026-06-30"] * 7),
        }
    )
    before = ch.copy()
    d = correction_deadlines(ch, "2026-06-30").set_index("record_key")
    pd.testing.assert_frame_equal(ch, before)
    assert list(d.index) == ["f", "c", "d", "e", "a", "b"]
    assert (
        d.loc["a", "provider_due"] == pd.Timestamp("2026-06-25") and not d.loc["a", "provider_late"]
    )
    assert d.loc["b", "provider_late"]
    assert d.loc["c", "platform_due"] == pd.Timestamp("2026-06-29") and d.loc["c", "platform_late"]
    assert d.loc["d", "provider_late"] and not d.loc["d", "platform_late"]
    assert d.loc["f", "calendar_unknown"] and pd.isna(d.loc["f", "provider_due"])
    late = late_by_provider(d.reset_index()).set_index("provider")
    assert late.to_dict("index") == {
        "court": {
            "corrections_late": 0,
            "revocations_late": 0,
            "platform_late": 0,
            "calendar_unknown": 1,
        },
        "ndrc": {
            "corrections_late": 0,
            "revocations_late": 2,
            "platform_late": 1,
            "calendar_unknown": 0,
        },
        "samr": {
            "corrections_late": 1,
            "revocations_late": 0,
            "platform_late": 0,
            "calendar_unknown": 0,
        },
    }
    assert late_by_provider(correction_deadlines(None, "2026-06-30")).empty
