"""The run report's sections that read no scores: first screen, gates, files, provider feedback
and Data Docs links; ``report.write_run_report`` assembles them."""

from __future__ import annotations

import base64
import html
import io
import json

import pandas as pd
import sqlalchemy as sa

from scoring.history.store import landed_files, runs
from scoring.reporting.exchange_section import exchange_section
from scoring.reporting.lifecycle import calendar_notice


def png_img(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "<img src='data:image/png;base64," + base64.b64encode(buf.getvalue()).decode() + "'/>"


def html_table(df: pd.DataFrame, max_rows: int = 50) -> str:
    return df.head(max_rows).to_html(index=False, escape=True, border=0)


def first_screen(store, run: dict, files: pd.DataFrame, cat) -> list[str]:
    """What an operator must see before anything else: waivers, tonight's deliveries (or that
    there were none), problems in the landing folder, and each provider's freshness."""
    from scoring.quality.freshness import feed_freshness

    rdir = store.run_folder(run["run_id"])
    out = calendar_notice(run["as_of"], rdir.objections)
    waivers = json.loads(rdir.waivers.read_text(encoding="utf-8")) if rdir.waivers.exists() else []
    for w in waivers:
        covered = ", ".join(w["covered"]) or "nothing (no such gate failed)"
        out.append(
            f"<p class='fail'>豁免 WAIVER for this run only: gate <b>{html.escape(w['gate'])}</b> scope "
            f"<b>{html.escape(w['scope'])}</b> approved by <b>{html.escape(w['approver'])}</b> — "
            f"{html.escape(w['reason'])}; covered: {html.escape(covered)}</p>"
        )
    landing = json.loads(rdir.landing.read_text(encoding="utf-8")) if rdir.landing.exists() else {}
    ok = files[files["status"] != "rejected"] if len(files) else files
    if not len(files):
        out.append(
            "<p><b>无新到文件 No new deliveries</b> tonight: evaluated as of its own date from the stored "
            "history (decay, ends of publicity periods and deadlines move with the date).</p>"
        )
    else:
        same = int((files["status"] == "same_content").sum())
        rejected = int((files["status"] == "rejected").sum())
        corr = int(files["message"].fillna("").str.startswith("correction of").sum())
        notes = (
            ([f"{same} with the same content as an earlier file (no new rows)"] if same else [])
            + ([f"{corr} corrections of files sent before"] if corr else [])
            + ([f"{rejected} rejected"] if rejected else [])
        )
        out.append(
            f"<p>{len(files)} new deliveries, {int(ok['received'].sum()):,} rows received"
            + ("; " + "; ".join(notes) if notes else "")
            + ".</p>"
        )
    problems = landing.get("problems") or []
    if problems:
        out.append(
            "<h2>到货问题 Landing folder</h2><ul>"
            + "".join(
                f"<li class='fail'>{html.escape(p['kind'])}: {html.escape(p['path'])} — {html.escape(p['message'])}</li>"
                for p in problems
            )
            + "</ul>"
        )
    out += exchange_section(store, run)
    with store.engine.connect() as conn:
        hist = pd.read_sql(
            sa.select(landed_files.c.provider, landed_files.c.feed, landed_files.c.delivered_on)
            .select_from(landed_files.join(runs, runs.c.run_id == landed_files.c.run_id))
            .where(landed_files.c.status.in_(["stored", "same_content"]))
            .where(runs.c.as_of <= run["as_of"]),
            conn,
        )
    if len(ok):
        hist = pd.concat([hist, ok[["provider", "feed", "delivered_on"]]], ignore_index=True)
    fr = feed_freshness(cat, hist, run["as_of"])
    fr.to_csv(rdir.freshness, index=False, encoding="utf-8-sig")
    late = fr[~fr["ok"]]
    out.append(
        "<h2>数据时效 Provider freshness (Chinese working days)</h2>"
        f"<p>{len(fr) - len(late)} of {len(fr)} feeds within their update cycle plus grace"
        + (
            f"; <span class='fail'>overdue: {html.escape(', '.join(late['provider'] + '/' + late['feed']))}</span>"
            if len(late)
            else ""
        )
        + "</p>"
        + html_table(fr.drop(columns=["provider_name", "calendar_covered"]), 100)
    )
    return out


def provider_feedback(
    files: pd.DataFrame, quar: pd.DataFrame, catalogue, staged: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per provider: rows received/accepted, 双公示 compliance vs 98%, USCC errors in ‱ vs 1‱,
    timeliness against the feed's update cycle, and the top reasons with an example line."""
    if files.empty:
        return pd.DataFrame()
    f = files[files["status"] != "rejected"]
    counts = ["received", "accepted", "quarantined"]
    # Every provider that delivered, those whose only files were rejected included (counted 0).
    g = (
        f.assign(files=1)[["provider", "files", *counts]]
        .astype({c: "int64" for c in ("files", *counts)})
        .groupby("provider")
        .sum()
        .reindex(sorted(files["provider"].unique()), fill_value=0)
        .rename_axis("provider")
    )
    received = g["received"].where(g["received"] > 0).astype("float64")
    uscc_err = quar[quar["reasons"].str.contains("invalid_uscc")].groupby("provider").size()
    g["compliance"] = (g["accepted"] / received).round(4)
    g["compliance_ok"] = g["compliance"] >= float(catalogue.gates["compliance_target"])
    errors = uscc_err.reindex(g.index, fill_value=0).astype("float64")
    g["uscc_error_per_10k"] = (errors / received * 10_000).round(2)
    g["uscc_ok"] = g["uscc_error_per_10k"] <= float(catalogue.gates["uscc_error_target_per_10k"])
    rejected = files[files["status"] == "rejected"].groupby("provider").size()
    g["rejected_files"] = rejected.reindex(g.index, fill_value=0).astype("int64")
    if staged is not None and len(staged):
        feed_of = files.set_index("path")["feed"]
        lag = (
            pd.to_datetime(staged["delivered_on"]) - pd.to_datetime(staged["decision_date"])
        ).dt.days
        limit = (
            staged["source_file"]
            .map(feed_of)
            .map(
                {f: int(c["cycle_days"]) + int(c["grace_days"]) for f, c in catalogue.feeds.items()}
            )
        )
        t = pd.DataFrame(
            {"provider": staged["provider"], "lag": lag, "timely": lag <= limit}
        ).dropna(subset=["lag"])
        tg = t.groupby("provider").agg(
            median_lag_days=("lag", "median"), timely_share=("timely", "mean")
        )
        g["median_lag_days"] = tg["median_lag_days"].reindex(g.index)
        g["timely_share"] = tg["timely_share"].reindex(g.index).round(4)
    top = (
        quar.assign(reason=quar["reasons"].str.split(","))
        .explode("reason")
        .groupby(["provider", "reason"])
        .agg(n=("line_no", "size"), example=("line_no", "min"), path=("path", "first"))
        .reset_index()
    )
    top = top.sort_values(["provider", "n"], ascending=[True, False])
    tops = {
        prov: "; ".join(
            f"{r.reason} ×{r.n} (e.g. {r.path}:{r.example})" for r in t.head(3).itertuples()
        )
        for prov, t in top.groupby("provider", sort=True)
    }
    g["top_reasons"] = g.index.map(tops)
    return g.reset_index()


def gates_section(gates: pd.DataFrame) -> list[str]:
    """Every gate, failed ones first."""
    out = ["<h2>闸门 Gates</h2>"]
    if len(gates):
        g = gates.assign(result=gates["passed"].map({True: "pass", False: "FAIL"}))
        failed = g[~g["passed"]]
        out.append(
            f"<p>{len(g)} gates, <span class='{'fail' if len(failed) else 'ok'}'>{len(failed)} failed</span></p>"
        )
        out.append(
            html_table(
                pd.concat([failed, g[g["passed"]]])[
                    ["gate", "scope", "hard", "result", "observed", "threshold", "message"]
                ],
                200,
            )
        )
    return out


FILE_COLUMNS = [
    "path",
    "provider",
    "feed",
    "encoding",
    "status",
    "received",
    "accepted",
    "quarantined",
    "excluded",
    "withdrawn",
    "reject_code",
    "message",
]


def files_section(files: pd.DataFrame) -> list[str]:
    """Tonight's files and how their rows were reconciled."""
    return [
        "<h2>文件对账 Files and reconciliation (received + withdrawn = accepted + quarantined + excluded (repeats, snapshot rows unchanged) + simplified procedure)</h2>",
        html_table(files.reindex(columns=FILE_COLUMNS), 500)
        if len(files)
        else "<p>无新到文件 No new deliveries tonight.</p>",
    ]


def feedback_section(files: pd.DataFrame, quar: pd.DataFrame, cat, rdir) -> list[str]:
    """Provider feedback, also written beside the report as a CSV for the providers."""
    staged_path = rdir.staged_table("stg_record")
    want = ["source_file", "provider", "delivered_on", "decision_date"]
    staged = None
    if staged_path.exists():
        import pyarrow.parquet as pq

        if set(want) <= set(pq.read_schema(staged_path).names):  # a quiet night stages nothing
            staged = pd.read_parquet(staged_path, columns=want)
    fb = provider_feedback(files, quar, cat, staged)
    if not len(fb):
        return []
    fb.to_csv(rdir.provider_report, index=False, encoding="utf-8-sig")
    return [
        "<h2>数据提供单位反馈 Provider feedback</h2><p>双公示 compliance target ≥ 98%; USCC error "
        "rate target ≤ 1‱; timeliness = share of records delivered within the feed's "
        "update cycle (plus grace) after their decision date.</p>" + html_table(fb, 100)
    ]


def data_docs_section(rdir) -> list[str]:
    """Links to the Great Expectations Data Docs of this run, when it has some."""
    docs = rdir.data_docs
    if not docs.exists():
        return []
    links = {k: v for k, v in json.loads(docs.read_text()).items() if v}
    if not links:
        return []
    return [
        "<h2>GX Data Docs</h2><ul>"
        + "".join(
            f"<li><a href='{html.escape(v)}'>{html.escape(k)}</a></li>"
            for k, v in sorted(links.items())
        )
        + "</ul>"
    ]
