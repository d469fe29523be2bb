"""Providers' correction and revocation deadlines on the working-day calendar.

《黑龙江省社会信用条例》 第三十八条: "公共信用信息提供单位发现公共信用信息错误、失效或者发生变更的，应当
自发现之日起三个工作日内进行更正，并向信用平台推送更正后的信息。……认定失信行为的依据被撤销、确认违法、
确认无效或者变更的，公共信用信息提供单位应当自依据被改变之日起两个工作日内向公共信用工作机构提出更新信息，
公共信用工作机构应当在一个工作日内撤销或者变更该信息。"

Measured from what the store holds for each 更正 (correct) and 撤销 (revoke) row: its 生效日期 (the
day the provider found the error, or the day the basis was changed), the day the provider delivered
it (delivered_on) and the night the platform applied it (the change batch's known_from). A
correction is due from the provider 3 working days after its date; a revocation 2; the platform
applies a revocation within 1 working day of receiving it. A count that needs a year no holiday
arrangement covers gives no due date and ``calendar_unknown`` instead of a guess.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scoring.evaluation.objections import shift_working

CORRECT_DAYS, REVOKE_DAYS, PLATFORM_DAYS = 3, 2, 1
COLUMNS = [
    "record_key",
    "provider",
    "op",
    "basis_date",
    "delivered",
    "applied",
    "provider_due",
    "provider_late",
    "platform_due",
    "platform_late",
    "calendar_unknown",
]
SUMMARY = ["provider", "corrections_late", "revocations_late", "platform_late", "calendar_unknown"]


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame:
        return pd.to_datetime(frame[name]).astype("datetime64[s]")
    return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[s]")


def correction_deadlines(changes: pd.DataFrame | None, as_of) -> pd.DataFrame:
    """One row per correction or revocation known by ``as_of`` with its deadlines and lateness."""
    if changes is None or changes.empty or "op" not in changes:
        return pd.DataFrame(columns=COLUMNS)
    ch = changes[changes["op"].isin(("correct", "revoke"))]
    if ch.empty:
        return pd.DataFrame(columns=COLUMNS)
    applied = _col(ch, "batch_known_from").fillna(_col(ch, "known_from"))
    delivered = _col(ch, "delivered_on").fillna(applied)
    out = pd.DataFrame(
        {
            "record_key": ch["record_key"].astype("string"),
            "provider": (
                ch["provider"] if "provider" in ch else pd.Series(pd.NA, index=ch.index)
            ).astype("string"),
            "op": ch["op"].astype("string"),
            "basis_date": _col(ch, "effective_date"),
            "delivered": delivered,
            "applied": applied,
        }
    )
    revoke = (out["op"] == "revoke").to_numpy()
    days = np.where(revoke, REVOKE_DAYS, CORRECT_DAYS)
    out["provider_due"], unk_p = shift_working(out["basis_date"], days)
    platform_due, unk_f = shift_working(out["delivered"], np.full(len(out), PLATFORM_DAYS))
    # Art. 38 gives the platform's one working day for revocations only.
    out["platform_due"] = platform_due.where(revoke)
    unk_f = unk_f & revoke
    out["provider_late"] = out["provider_due"].notna() & (out["delivered"] > out["provider_due"])
    out["platform_late"] = out["platform_due"].notna() & (out["applied"] > out["platform_due"])
    out["calendar_unknown"] = unk_p | unk_f
    day = pd.Timestamp(str(as_of))
    out = out[out["applied"].isna() | (out["applied"] <= day)]
    return out.sort_values(["provider", "record_key", "op"], ignore_index=True)[COLUMNS]


def late_by_provider(deadlines: pd.DataFrame) -> pd.DataFrame:
    """Art. 38 duties missed per provider: corrections and revocations delivered late, revocations
    the platform applied late, and deadlines no calendar could give."""
    if deadlines.empty:
        return pd.DataFrame(columns=SUMMARY)
    d = deadlines.assign(
        corrections_late=deadlines["provider_late"] & (deadlines["op"] == "correct"),
        revocations_late=deadlines["provider_late"] & (deadlines["op"] == "revoke"),
    )
    flags = ["corrections_late", "revocations_late", "platform_late", "calendar_unknown"]
    d = d[d[flags].any(axis=1)]
    if d.empty:
        return pd.DataFrame(columns=SUMMARY)
    out = d.groupby(d["provider"].fillna("?"))[flags].sum().astype(int)
    return out.rename_axis("provider").reset_index()[SUMMARY]


def night_corrections(store, batches: list[dict], as_of) -> pd.DataFrame:
    """The deadlines of every correction and revocation in the night's change batches."""
    chg = [b for b in batches if b["table_name"] == "changes"]
    return correction_deadlines(store.read_batches(chg, verified=True) if chg else None, as_of)
