"""The run report's lifecycle sections: simplified-procedure exclusions per provider, where every
objection stands (Arts. 35, 39) and the duties missed per provider, and the first-screen notice of
a year without a holiday calendar."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def table_html(df: pd.DataFrame, max_rows: int = 50) -> str:
    return df.head(max_rows).to_html(index=False, escape=True, border=0)


def excluded_by_provider(gates: pd.DataFrame, files: pd.DataFrame) -> pd.DataFrame:
    """Simplified-procedure penalties excluded (Art. 18) per provider: counted, never quarantined."""
    g = gates[gates["gate"] == "excluded_simplified_procedure"]
    if g.empty:
        return pd.DataFrame(columns=["provider", "excluded", "reason"])
    g = g.merge(files[["path", "provider"]], left_on="scope", right_on="path", how="left")
    out = (
        g.assign(excluded=g["observed"].astype(int))
        .groupby("provider", as_index=False)["excluded"]
        .sum()
    )
    return out.assign(reason=g["message"].iloc[0]).sort_values("provider", ignore_index=True)


def overdue_by_provider(objections: pd.DataFrame) -> pd.DataFrame:
    """Art. 39 duties missed, per provider of the record: marks not made within one working day,
    decisions pending past their deadline, decisions made late, assisting units' late replies."""
    cols = [
        "provider",
        "overdue",
        "marks_late",
        "decided_late",
        "assist_late",
        "oldest_received",
        "earliest_due",
    ]
    if objections.empty:
        return pd.DataFrame(columns=cols)
    o = objections.assign(
        overdue=objections["state"] == "overdue",
        marks_late=objections.get("mark_late", False),
        decided_late=objections.get("decision_late", False) & objections["decided"].notna(),
        assist_late=objections.get("assist_late", False),
    )
    o = o[o[["overdue", "marks_late", "decided_late", "assist_late"]].any(axis=1)]
    if o.empty:
        return pd.DataFrame(columns=cols)
    od = o[o["overdue"]]
    return (
        o.groupby("record_provider", dropna=False)
        .agg(
            overdue=("overdue", "sum"),
            marks_late=("marks_late", "sum"),
            decided_late=("decided_late", "sum"),
            assist_late=("assist_late", "sum"),
        )
        .join(
            od.groupby("record_provider", dropna=False)["received"].min().rename("oldest_received")
        )
        .join(
            od.groupby("record_provider", dropna=False)["decision_due"].min().rename("earliest_due")
        )
        .reset_index()
        .rename(columns={"record_provider": "provider"})[cols]
    )


def missing_calendar_years(as_of, objections: pd.DataFrame | None) -> list[int]:
    """Years a deadline of this night needs but no holiday arrangement covers: the as-of year, the
    next one in the last month of a year (deadlines run into it), and those of objections whose
    deadline could not be computed."""
    from scoring.common import workdays

    day = pd.Timestamp(str(as_of))
    years = {day.year, (day + pd.Timedelta(days=31)).year}
    if objections is not None and len(objections) and "calendar_unknown" in objections:
        unk = objections[objections["calendar_unknown"].fillna(False).astype(bool)]
        for r in pd.to_datetime(unk["received"]).dropna():
            years |= {r.year, (r + pd.Timedelta(days=31)).year}
    return sorted(y for y in years if workdays.source_of(y) is None)


def calendar_notice(as_of, path: Path) -> list[str]:
    """The first screen's notice of a year without a holiday calendar (``path``: the night's
    objections.parquet)."""
    obj = pd.read_parquet(path) if path.exists() else None
    missing = missing_calendar_years(as_of, obj)
    if not missing:
        return []
    n = int(obj["calendar_unknown"].sum()) if obj is not None and "calendar_unknown" in obj else 0
    years = ", ".join(map(str, missing))
    files = ", ".join(f"config/calendar/{y}.yaml" for y in missing)
    return [
        f"<p class='fail'>工作日历缺失 CALENDAR UNKNOWN for {years}: no State Council holiday notice "
        f"for {years} is in {files} or in the calendar package; {n} objection deadline(s) are "
        "marked 'calendar unknown' and none is guessed. Add the notice (国务院办公厅关于…年部分"
        "节假日安排的通知) as data with its source.</p>"
    ]


def lifecycle_sections(gates: pd.DataFrame, files: pd.DataFrame, rdir) -> list[str]:
    parts = []
    exc = excluded_by_provider(gates, files)
    parts.append(
        "<h2>排除 Excluded: simplified-procedure penalties (Art. 18, not public credit information)</h2>"
        + (table_html(exc) if len(exc) else "<p>None.</p>")
    )
    obj_path = rdir.objections
    if obj_path.exists():
        obj = pd.read_parquet(obj_path)
        od = overdue_by_provider(obj)
        states = (
            obj["state"]
            .value_counts()
            .reindex(
                ["pending", "overdue", "referred", "upheld", "partly", "rejected"], fill_value=0
            )
        )
        parts.append(
            "<h2>异议 Objections (Art. 39: mark within 1 working day, decide within 3, or 7 with "
            "assistance; Art. 35: severe listings within 3; a court listing is referred to the "
            "court; a pending objection marks the record and never suspends it)</h2>"
            + table_html(states.rename_axis("state").reset_index(name="records"))
        )
        parts.append(
            "<h3 class='fail'>逾期 Overdue marks and decisions, per provider (duties to act on)</h3>"
            if len(od)
            else "<h3>逾期 Overdue marks and decisions</h3>"
        )
        parts.append(table_html(od, 100) if len(od) else "<p>None.</p>")
        if len(od):
            od.to_csv(rdir.objections_overdue, index=False, encoding="utf-8-sig")
    parts += corrections_section(rdir)
    return parts


def corrections_section(rdir) -> list[str]:
    """Art. 38's deadlines missed per provider, beside the objections'."""
    from scoring.evaluation.provider_deadlines import late_by_provider

    if not rdir.corrections.exists():
        return []
    late = late_by_provider(pd.read_parquet(rdir.corrections))
    head = (
        "更正撤销 Corrections and revocations (Art. 38: the provider corrects within 3 working "
        "days of finding the error, proposes a revocation within 2 of the basis changing; the "
        "platform revokes within 1 of receiving it), late per provider"
    )
    if late.empty:
        return [f"<h3>{head}</h3><p>None.</p>"]
    late.to_csv(rdir.corrections_late, index=False, encoding="utf-8-sig")
    return [f"<h3 class='fail'>{head}</h3>", table_html(late, 100)]
