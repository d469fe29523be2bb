"""Feed freshness in Chinese working days.

Each provider's feed is measured against its catalogue update cycle. The catalogue states cycles
and grace periods in days; a cycle of c calendar days is due every round(c × 5/7) working days
(at least 1: a daily feed is due every working day, a weekly one every 5, a monthly one every 21),
and the grace period counts working days. Weekends, public holidays and the State Council's
adjusted working days come from the pinned calendar (scoring.common.workdays), so a provider that
delivers on working days only is never overdue over a weekend or the Spring Festival.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from scoring.common import workdays
from scoring.quality.validate import GateResult


def cycle_working_days(cycle_days: int) -> int:
    return max(1, round(int(cycle_days) * 5 / 7))


def feed_freshness(catalogue, deliveries: pd.DataFrame, as_of) -> pd.DataFrame:
    """One row per (provider, feed) in the catalogue: last delivery, working days since it, the
    working days allowed (cycle + grace), working days overdue (past the cycle) and whether the
    feed is within its allowance. ``deliveries``: provider, feed, delivered_on."""
    as_of = pd.Timestamp(as_of).date()
    d = deliveries.dropna(subset=["delivered_on"]) if len(deliveries) else deliveries
    last = (
        pd.to_datetime(d["delivered_on"]).groupby([d["provider"], d["feed"]]).max()
        if len(d)
        else pd.Series(dtype="datetime64[ns]")
    )
    rows = []
    for prov in catalogue.providers:
        for feed in prov["feeds"]:
            cyc = catalogue.feeds[feed]
            cycle = cycle_working_days(cyc["cycle_days"])
            allowed = cycle + int(cyc["grace_days"])
            when = last.get((prov["id"], feed))
            if when is None or pd.isna(when):
                since, overdue, ok, last_day = None, None, False, None
                # A feed new in this catalogue version is not missing before its first cycle is over.
                due_from = (
                    pd.Timestamp(str(cyc["due_from"])).date() if cyc.get("due_from") else None
                )
                if due_from is not None and (
                    due_from >= as_of or workdays.working_days_between(due_from, as_of) <= allowed
                ):
                    ok = True
            else:
                last_day = pd.Timestamp(when).date()
                since = workdays.working_days_between(last_day, as_of) if last_day <= as_of else 0
                overdue = max(0, since - cycle)
                ok = since <= allowed
            rows.append(
                {
                    "provider": prov["id"],
                    "provider_name": prov["name"],
                    "feed": feed,
                    "last_delivery": last_day,
                    "working_days_since": since,
                    "cycle_working_days": cycle,
                    "allowed_working_days": allowed,
                    "overdue_working_days": overdue,
                    "ok": ok,
                    "calendar_covered": workdays.covered(as_of),
                }
            )
    return pd.DataFrame(rows)


def gate_feeds_present(catalogue, deliveries: pd.DataFrame, as_of) -> list[GateResult]:
    """Hard gate: each provider's feeds have a delivery within their cycle + grace (working days)."""
    out = []
    for r in feed_freshness(catalogue, deliveries, as_of).itertuples(index=False):
        if r.last_delivery is None:
            observed = (
                "not due yet (a feed new in this catalogue version)" if r.ok else "never delivered"
            )
        else:
            observed = f"{r.working_days_since} working days since {r.last_delivery}"
        out.append(
            GateResult(
                "feed_present",
                f"{r.provider}/{r.feed}",
                True,
                bool(r.ok),
                observed=observed,
                threshold=f"<= {r.allowed_working_days} working days",
                message=""
                if r.ok
                else (
                    f"{r.provider_name} {r.feed}: no delivery within {r.allowed_working_days} "
                    f"working days"
                    + (
                        ""
                        if r.calendar_covered
                        else " (calendar data missing for this year: Mon-Fri assumed)"
                    )
                ),
            )
        )
    return out


def as_of_date(v) -> dt.date:
    return pd.Timestamp(v).date()
