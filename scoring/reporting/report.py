"""Run report (HTML): tiers, scores, gates, reconciliation, quarantine and provider feedback."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from scoring.common.catalogue import Catalogue
from scoring.common.config import coverage_targets
from scoring.common.plots import use_cjk_font
from scoring.evaluation.evaluate import category_codes, positions
from scoring.history.folders import RunFolder
from scoring.history.store import (
    entity_results,
    gate_results,
    landed_files,
    quarantine,
    runs,
    sha256_file,
)
from scoring.reporting.lifecycle import (  # noqa: F401 (re-exported)
    calendar_notice,
    excluded_by_provider,
    lifecycle_sections,
    overdue_by_provider,
)
from scoring.reporting.policy_section import (
    policy_change_section,
    previous_policy,
    run_registry,
)
from scoring.reporting.report_sections import (  # noqa: F401 (re-exported)
    data_docs_section,
    feedback_section,
    files_section,
    first_screen,
    gates_section,
    html_table,
    png_img,
    provider_feedback,
)

CSS = """body{font-family:"Noto Sans CJK SC","Source Han Sans SC","PingFang SC","Microsoft YaHei",
"WenQuanYi Micro Hei",sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}th{background:#f3f3f3}
.fail{color:#b00;font-weight:bold}.ok{color:#070}h2{border-bottom:2px solid #c00;padding-bottom:4px}"""


def random_hit_rate_by_tier(
    inspections: pd.DataFrame, results: pd.DataFrame, as_of
) -> tuple[pd.DataFrame | None, str]:
    """Problem-finding rate by tier over the year after ``as_of``, from randomly drawn inspections
    only (those with a double-random ``plan_id``): complaint-driven or targeted inspections find
    more problems by design and would flatter the tiers. None when none is tagged."""
    if "plan_id" not in inspections.columns:
        return (
            None,
            "No inspection is tagged with a double-random plan (plan_id), so no hit rate is shown: "
            "untagged and complaint-driven inspections are not a random sample.",
        )
    asof = pd.Timestamp(as_of)
    when = pd.to_datetime(inspections["inspection_date"])
    later = inspections[(when > asof) & (when <= asof + pd.Timedelta(days=365))]
    drawn = later[later["plan_id"].fillna("").astype(str).str.strip() != ""]
    hit = (
        drawn.merge(results[["uscc", "tier"]].astype({"tier": str}), on="uscc")
        .groupby("tier")["problem_found"]
        .agg(["mean", "size"])
        .reindex(list("ABCD"))
    )
    return (
        hit,
        f"{len(drawn)} randomly drawn inspections; {len(later) - len(drawn)} others left out.",
    )


# The provincial plan's evaluation coverage targets (公共信用评价覆盖率): config/coverage_targets.yaml.
COVERAGE_TARGETS = coverage_targets()
STATUS_MARK = "<!--status-->{status}<!--/status-->"  # publish rewrites it once the run is published


TIER_ROWS = ["A", "B", "C", "D", "new"]
TIER_COLUMNS = ["A", "B", "C", "D", "gone"]


def migration_matrix(previous: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """Entities by tier in the previous run (rows) and this run (columns); new and gone included,
    as a crosstab has them (a row or column appears when some entity is in it). USCCs are matched
    with one Arrow hash lookup, not a pandas merge of two provinces."""
    pos = positions(current["uscc"], previous["uscc"])
    gone = np.ones(len(previous), dtype=bool)
    gone[pos[pos >= 0]] = False
    # A-D as 0-3, anything else -1 (left out)
    prev_codes = category_codes(previous["tier"], TIER_ROWS[:4]).astype(np.int64)
    now_codes = category_codes(current["tier"], TIER_ROWS[:4]).astype(np.int64)
    was = np.full(len(pos), 4, dtype=np.int64)  # 4: new (row) or gone (column)
    was[pos >= 0] = prev_codes[pos[pos >= 0]]
    row = np.concatenate([was, prev_codes[gone]])
    col = np.concatenate([now_codes, np.full(int(gone.sum()), 4, dtype=np.int64)])
    keep = (row >= 0) & (col >= 0)
    counts = np.bincount(row[keep] * 5 + col[keep], minlength=25).reshape(5, 5)
    had, has = counts.sum(axis=1) > 0, counts.sum(axis=0) > 0
    return pd.DataFrame(
        counts[had][:, has],
        index=pd.Index(np.array(TIER_ROWS)[had], name="tier_prev"),
        columns=pd.Index(np.array(TIER_COLUMNS)[has], name="tier_now"),
    )


def coverage(results: pd.DataFrame, registered: pd.DataFrame) -> pd.DataFrame:
    """Share of active registered entities per class with an evaluation based on information."""
    evaluated = results[~results["flags"].astype(str).str.contains("insufficient_information")]
    reg = registered.groupby("eval_class").size().rename("active_registered")
    ev = evaluated.groupby("eval_class").size().rename("evaluated")
    c = pd.concat([reg, ev], axis=1).fillna(0).astype(int)
    c["coverage"] = (c["evaluated"] / c["active_registered"].clip(lower=1)).round(4)
    c["target"] = c.index.map(COVERAGE_TARGETS)
    c["meets_target"] = np.where(c["target"].isna(), None, c["coverage"] >= c["target"].fillna(0))
    return c.reset_index().rename(columns={"index": "eval_class"})


REPORT_COLUMNS = ["uscc", "eval_class", "score", "tier", "flags"]


def read_lean(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A result file with its text as Arrow-backed strings (≈ 30 bytes a USCC instead of ≈ 75 as
    Python objects: a province's identifiers are gigabytes as objects)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    strings = pd.StringDtype("pyarrow")
    return pq.read_table(path, columns=columns).to_pandas(
        types_mapper={pa.string(): strings, pa.large_string(): strings}.get
    )


def _previous_tiers(store, conn, run_id: str) -> pd.DataFrame:
    """The previous run's tier per entity: from its result file when it is there and intact (a
    province's rows read back from the database cost more than the rest of the report)."""
    path = store.run_folder(run_id).entity_score
    manifest = conn.execute(sa.select(runs.c.manifest_json).where(runs.c.run_id == run_id)).scalar()
    expected = (
        (json.loads(manifest).get("result_files") or {}).get(RunFolder.ENTITY_SCORE)
        if manifest
        else None
    )
    if path.exists() and expected and sha256_file(path) == expected:
        return read_lean(path, ["uscc", "tier"])
    return pd.read_sql(
        sa.select(entity_results.c.uscc, entity_results.c.tier)
        .where(entity_results.c.run_id == run_id)
        .order_by(entity_results.c.uscc),
        conn,
    )


def _load(store, run_id: str) -> tuple[dict, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The run's row, its landed files, gate results and quarantined lines."""
    with store.engine.connect() as conn:
        run = dict(conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()._mapping)
        files = pd.read_sql(
            sa.select(landed_files)
            .where(landed_files.c.run_id == run_id)
            .order_by(landed_files.c.path),
            conn,
        )
        gates = pd.read_sql(
            sa.select(gate_results)
            .where(gate_results.c.run_id == run_id)
            .order_by(gate_results.c.gate, gate_results.c.scope),
            conn,
        )
        quar = pd.read_sql(
            sa.select(
                quarantine.c.path, quarantine.c.line_no, quarantine.c.provider, quarantine.c.reasons
            )
            .where(quarantine.c.run_id == run_id)
            .order_by(quarantine.c.path, quarantine.c.line_no),  # stored chunk by chunk
            conn,
        )
    return run, files, gates, quar


def _header(run: dict, run_id: str) -> list[str]:
    """Title, dates and status (with a marker ``publish`` rewrites), and the run's message."""
    parts = [
        f"<html><head><meta charset='utf-8'><title>公共信用综合评价 运行报告 {html.escape(run_id)}</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>公共信用综合评价 运行报告 / Run report — {html.escape(run_id)}</h1>",
        f"<p>评价基准日 as-of <b>{run['as_of']}</b> · 知识截止 knowledge cutoff <b>{run['knowledge_cutoff']}</b> · "
        f"状态 status <b class='{'ok' if run['status'] in ('published', 'scored') else 'fail'}'>"
        f"{STATUS_MARK.format(status=html.escape(run['status']))}</b>"
        + (
            " (publication is the next and last step; `credit status` shows whether it happened)"
            if run["status"] == "scored"
            else ""
        )
        + "</p>",
    ]
    if run.get("message"):
        parts.append(f"<p class='fail'>{html.escape(run['message'])}</p>")
    return parts


def _tier_section(res: pd.DataFrame, plt) -> list[str]:
    """Tier counts and the score histogram."""
    tiers = res["tier"].astype(str).value_counts().reindex(list("ABCD"), fill_value=0)
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.2))
    ax[0].bar(tiers.index, tiers.values, color=["#2a9d8f", "#8ab17d", "#f4a261", "#e76f51"])
    ax[0].set_title("信用风险分类 Tier distribution (A 低 … D 高)")
    for x, v in zip(tiers.index, tiers.values):
        ax[0].annotate(f"{v:,}", (x, v), ha="center", va="bottom", fontsize=8)
    ax[1].hist(res["score"], bins=50, color="#264653")
    ax[1].set_title("综合评价得分 Score distribution (0–1000)")
    return [
        "<h2>等级分布 Tiers</h2>" + png_img(fig),
        html_table(
            pd.DataFrame(
                {
                    "tier": tiers.index,
                    "entities": tiers.values,
                    "share": (tiers.values / max(1, len(res))).round(4),
                }
            )
        ),
    ]


def _migration_section(store, run: dict, res: pd.DataFrame, plt) -> list[str]:
    """The tier migration matrix against the previous scored run of the same kind."""
    with store.engine.connect() as conn:
        prev = conn.execute(
            sa.select(runs.c.run_id)
            .where(
                (runs.c.as_of < run["as_of"])
                & runs.c.status.in_(["scored", "published"])
                & (runs.c.kind == run["kind"])
            )
            .order_by(runs.c.as_of.desc())
            .limit(1)
        ).first()
        prev_res = _previous_tiers(store, conn, prev.run_id) if prev else None
    if prev_res is None or not len(prev_res):
        return ["<h2>等级迁移 Migration</h2><p>No earlier run to compare with.</p>"]
    mm = migration_matrix(prev_res, res)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.imshow(np.log1p(mm.to_numpy()), cmap="Reds")
    ax.set_xticks(range(len(mm.columns)), mm.columns)
    ax.set_yticks(range(len(mm.index)), mm.index)
    ax.set_xlabel(f"本次 this run ({run['run_id']})")
    ax.set_ylabel(f"上次 previous run ({prev.run_id})")
    for i in range(mm.shape[0]):
        for j in range(mm.shape[1]):
            dark = np.log1p(mm.iat[i, j]) > 0.6 * np.log1p(mm.to_numpy().max())
            ax.text(
                j,
                i,
                f"{mm.iat[i, j]:,}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if dark else "black",
            )
    ax.set_title("等级迁移矩阵 Tier migration")
    return [
        "<h2>等级迁移 Migration against the previous run</h2>"
        + png_img(fig)
        + html_table(mm.reset_index().rename(columns={"tier_prev": "previous \\ now"}))
    ]


def _hit_rate_section(run: dict, res: pd.DataFrame, landing: Path | None, plt) -> list[str]:
    """Later randomly drawn inspections' hit rate by tier, when the demo's ground truth is there."""
    truth = (landing.parent / "ground_truth" / "inspections.csv") if landing else None
    if truth is None or not truth.exists():
        return []
    hit, note = random_hit_rate_by_tier(
        pd.read_csv(truth, dtype={"uscc": str, "plan_id": str}), res, run["as_of"]
    )
    head = "<h2>分级有效性 Hit rate of later randomly drawn inspections by tier (demo ground truth)</h2>"
    if hit is None:
        return [head + f"<p>{html.escape(note)}</p>"]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(hit.index, hit["mean"].fillna(0), color="#e76f51")
    ax.set_title("后续双随机检查问题发现率 Problem-finding rate by tier")
    return [
        head
        + f"<p>{html.escape(note)}</p>"
        + png_img(fig)
        + html_table(hit.reset_index().rename(columns={"mean": "hit_rate", "size": "inspections"}))
    ]


def _scored_sections(store, run: dict, rdir, landing: Path | None, plt) -> list[str]:
    """Sections that read the run's scores: tiers, migration, a new policy, coverage, hit rate."""
    use_cjk_font()
    # Only the columns the report reads (a province's names and reasons are gigabytes), all of
    # them in a new policy's first month, whose section lists movers with their reasons.
    first_month = (
        previous_policy(
            pd.Timestamp(str(run["as_of"])), run.get("policy_sha256"), run_registry(store, run)
        )
        is not None
    )
    res = read_lean(rdir.entity_score, None if first_month else REPORT_COLUMNS)
    parts = _tier_section(res, plt) + _migration_section(store, run, res, plt)
    parts.append(policy_change_section(store, run, res, rdir))  # a new policy's first month
    reg_path = rdir.active_entities
    if reg_path.exists():
        cov = coverage(res, read_lean(reg_path))
        parts.append(
            "<h2>覆盖率 Coverage</h2><p>The provincial plan's targets: composite evaluation for "
            "≥80% of legal persons and ≥70% of unincorporated organisations.</p>" + html_table(cov)
        )
    return parts + _hit_rate_section(run, res, landing, plt)


def write_run_report(store, run_id: str, landing: Path | None = None) -> Path:
    import matplotlib  # lazy: only the reports draw, and matplotlib is slow to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rdir = store.run_folder(run_id)
    rdir.path.mkdir(parents=True, exist_ok=True)
    run, files, gates, quar = _load(store, run_id)
    cat = Catalogue.in_force(run["as_of"])
    parts = _header(run, run_id) + first_screen(store, run, files, cat)
    if rdir.entity_score.exists() and run["status"] in ("scored", "published"):
        parts += _scored_sections(store, run, rdir, landing, plt)
    parts += gates_section(gates) + files_section(files)
    parts += lifecycle_sections(gates, files, rdir)
    parts += feedback_section(files, quar, cat, rdir) + data_docs_section(rdir)
    parts.append("</body></html>")
    path = rdir.report
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
