"""The entity's own public credit information report (公共信用信息报告), Art. 24 and Art. 35.

《黑龙江省社会信用条例》 第二十四条第二款: "信用主体有权不限次数免费查询自身的公共信用信息。"
第三十五条第一款: "信用主体有权知晓与其相关的社会信用信息的采集、归集、共享、开放、应用情况，以及其信用
报告载明的信息来源和变动等情况。"

One bilingual HTML page (and a PDF where Debian's headless chromium is installed) an entity can be
handed: identity, evaluation and tier with its reasons, the records in force by type with their
dates and end dates, the records that stopped counting and why, objections and their status, and
which repair is possible from when. Third parties' personal data is masked with the catalogue's
rules. Every report is logged as a read (read_log, channel ``entity_report``).
"""

from __future__ import annotations

import html
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from scoring.common.catalogue import Catalogue
from scoring.common.errors import PipelineError
from scoring.evaluation.explain import entity_explanation
from scoring.history.store import Store, artifacts, read_log, runs
from scoring.publication.masking import mask_personal_data

CHANNEL = "entity_report"
TIER_TEXT = {
    "A": "信用风险低 / low risk",
    "B": "信用风险一般 / general risk",
    "C": "信用风险较高 / elevated risk",
    "D": "信用风险高 / high risk",
}
CSS = """
body{font-family:'Noto Sans CJK SC','Noto Sans',sans-serif;margin:28px;color:#1d2733;font-size:13px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:15px;border-bottom:2px solid #2c5282;padding-bottom:3px;
margin-top:22px}table{border-collapse:collapse;width:100%;margin:6px 0}th,td{border:1px solid #c8d1dc;
padding:4px 6px;text-align:left;vertical-align:top}th{background:#edf2f7}.tier{font-size:30px;
font-weight:bold;padding:4px 14px;border-radius:6px;color:#fff;display:inline-block}.A{background:#2f855a}
.B{background:#2b6cb0}.C{background:#c05621}.D{background:#c53030}.mark{color:#c53030;font-weight:bold}
.muted{color:#5a6878}.box{border:1px solid #c8d1dc;padding:8px 12px;border-radius:6px;background:#f7fafc}
"""


def _run_for(store: Store, as_of) -> str:
    """The scored run of the as-of date (or the latest scored run when none is given)."""
    with store.engine.connect() as conn:
        q = sa.select(runs.c.run_id, runs.c.as_of).where(
            runs.c.manifest_json.is_not(None) & (runs.c.kind == "nightly")
        )
        rows = [(r.run_id, str(r.as_of)) for r in conn.execute(q)]
    if as_of is not None:
        day = str(pd.Timestamp(as_of).date())
        rows = [r for r in rows if r[1][:10] == day]
    if not rows:
        raise PipelineError(
            f"no scored run as of {pd.Timestamp(as_of).date()}" if as_of else "no scored run"
        )
    return sorted(rows, key=lambda r: (r[1], r[0]))[-1][0]


def _catalogue(store: Store, sha: str) -> Catalogue:
    import json

    with store.engine.connect() as conn:
        row = conn.execute(sa.select(artifacts).where(artifacts.c.sha256 == sha)).first()
    return Catalogue.from_doc(json.loads(row.content_json))


def _identity(store: Store, uscc: str, cat: Catalogue, name: str) -> dict:
    """Registration facts of the entity, third parties' personal data masked."""
    ident = {"uscc": uscc, "name": name, "legal_rep_name": None, "legal_rep_id_number": None}
    with store.engine.connect() as conn:
        batches = store.visible_batches(conn, "entities", "9999-12-31")
    ent = store.read_batches(batches) if batches else pd.DataFrame()
    if len(ent) and "uscc" in ent:
        mine = ent[ent["uscc"] == uscc].tail(1)
        if len(mine):
            masked = mask_personal_data(mine, cat.doc.get("personal_data", {})).iloc[0]
            for c in ("legal_rep_name", "legal_rep_id_number", "entity_type", "registered_date"):
                if c in masked and not pd.isna(masked[c]):
                    ident[c] = str(masked[c])[:10] if c == "registered_date" else str(masked[c])
    return ident


def _repair_from(r: dict, cat: Catalogue) -> str:
    spec = next((i for i in cat.items if i["code"] == r["item_code"]), {})
    if not spec.get("repairable", False):
        if spec.get("publicity") == "listed":
            return "由列入单位移出（人民法院、认定单位）/ removed by the listing body"
        return "不适用 / not applicable"
    start = pd.Timestamp(r["decision_date"])
    earliest = (start + pd.DateOffset(months=r["min_months"])).date()
    return f"{earliest} 起可申请 / may apply from {earliest} (最短公示期 {r['min_months']} 个月)"


def _e(v) -> str:
    return html.escape("" if v is None else str(v))


def _rows_table(headers: list[str], rows: list[list]) -> str:
    if not rows:
        return "<p class='muted'>无 / none</p>"
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _mark(r: dict) -> str:
    o = r.get("objection")
    if not o:
        return ""
    if not o["open"]:
        return (
            f"{_e(o['text'])}<br><span class='muted'>受理 filed {_e(o['received'])} · 办结 decided "
            f"{_e(o['decided'] or '—')} · 期限 due {_e(o['due'] or '—')}</span>"
        )
    due = "日历未知 / calendar unknown" if o["calendar_unknown"] else (o["due"] or "—")
    return (
        f"<span class='mark'>{_e(o['text'])}</span><br>"
        f"<span class='muted'>受理 filed {_e(o['received'])} · 办结期限 due {_e(due)}</span>"
    )


def _sections(e: dict, cat: Catalogue) -> list[str]:
    recs = e["records"]
    in_force = [r for r in recs if r["counts"]]
    stopped = [r for r in recs if not r["counts"]]
    objections = [r for r in recs if r.get("objection")]
    out = [
        "<h2>在计信息 Records in force (by type)</h2>",
        _rows_table(
            [
                "信息项 Item",
                "文书号 Document",
                "决定日期 Decided",
                "公示截止 Published until",
                "计分 Points",
                "异议 Objection",
            ],
            [
                [
                    _e(r["item"]),
                    _e(r["doc_number"]),
                    _e(r["decision_date"]),
                    _e(r["publicity_until"] or "由列入单位移出 / until removed"),
                    _e(f"{r['points']:+.1f}"),
                    _mark(r),
                ]
                for r in sorted(in_force, key=lambda r: (r["item_code"], r["decision_date"]))
            ],
        ),
        "<h2>已不计入的信息 Records that stopped counting, and why</h2>",
        _rows_table(
            ["信息项 Item", "文书号 Document", "决定日期 Decided", "原因 Why"],
            [
                [
                    _e(r["item"]),
                    _e(r["doc_number"]),
                    _e(r["decision_date"]),
                    _e(r["why_not"]) + ("<br>" + _mark(r) if r.get("objection") else ""),
                ]
                for r in stopped
            ],
        ),
        "<h2>异议 Objections (第三十五、三十九条 Arts. 35, 39)</h2>",
        _rows_table(
            ["信息项 Item", "文书号 Document", "状态 Status"],
            [[_e(r["item"]), _e(r["doc_number"]), _mark(r)] for r in objections],
        ),
        "<h2>信用修复 Repair (第四十条 Art. 40; 国家发展改革委令第58号、2025年第36号)</h2>",
        _rows_table(
            ["信息项 Item", "文书号 Document", "可申请修复 Repair possible"],
            [
                [_e(r["item"]), _e(r["doc_number"]), _e(_repair_from(r, cat))]
                for r in in_force
                if r["points"] < 0
            ],
        ),
    ]
    return out


def render_html(e: dict, ident: dict, cat: Catalogue) -> str:
    tier = e["tier"]
    reasons = "".join(f"<li>{_e(x)}</li>" for x in str(e["reasons"]).split(" | "))
    flags = str(e.get("flags") or "")
    mark = (
        "<p class='mark'>本主体有信息处于异议处理中（异议标注）/ a record of this entity is under "
        "objection (marked)</p>"
        if "objection_pending" in flags
        else ""
    )
    head = f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<title>公共信用信息报告 {_e(e["uscc"])}</title><style>{CSS}</style></head><body>
<h1>公共信用信息报告 · Public credit information report</h1>
<p class="muted">依据《黑龙江省社会信用条例》第二十四条（信用主体有权不限次数免费查询自身的公共信用信息）
· Art. 24: an entity may query its own information free and without limit. 评价基准日 as of
{_e(e["as_of"])} · 运行 run {_e(e["run_id"])} · 目录 catalogue {_e(e["catalogue_sha256"][:12])}
· 评价规则 policy {_e(e["policy_sha256"][:12])}</p>
<h2>主体 Identity</h2><div class="box">
<b>{_e(ident["name"])}</b><br>统一社会信用代码 USCC: {_e(ident["uscc"])}<br>
法定代表人 Legal representative: {_e(ident.get("legal_rep_name") or "—")}
（证件 ID {_e(ident.get("legal_rep_id_number") or "—")}）<br>
成立日期 Registered: {_e(ident.get("registered_date") or "—")}</div>
<h2>综合评价 Evaluation</h2><div class="box">
<span class="tier {tier}">{_e(tier)}</span> &nbsp; {_e(TIER_TEXT.get(tier, ""))}
&nbsp; · 分值 score <b>{_e(e["score"])}</b> / 1000
{" · 调整 override: " + _e(e["override"]) if e["override"] else ""}
{mark}<p>理由 Reasons:</p><ul>{reasons}</ul></div>"""
    foot = (
        "<h2>说明 Notes</h2><p class='muted'>第三方自然人个人信息已脱敏（第十七、二十三条）/ third "
        "parties' personal data masked (Arts. 17, 23). 对信息有异议的，可书面提出异议申请（第三十九条）"
        "/ to object to a record, apply in writing (Art. 39). 失信信息公示期限届满的，停止公示（第三十"
        "七条）/ a record stops being published when its period ends (Art. 37).</p></body></html>"
    )
    return head + "".join(_sections(e, cat)) + foot


def render_pdf(html_path: Path) -> Path | None:
    """A PDF of the page with Debian's headless chromium, or None where it is not installed."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        return None
    pdf = html_path.with_suffix(".pdf")
    subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-pdf-header-footer",
            f"--print-to-pdf={pdf}",
            html_path.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return pdf if pdf.exists() else None


def log_read(store: Store, uscc: str, run_id: str, n_records: int) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            read_log.insert().values(
                agency_id=f"self:{uscc}",
                run_id=run_id,
                rows=n_records,
                channel=CHANNEL,
                query=f"entity report {uscc} ({run_id})",
            )
        )


def write_entity_report(store: Store, uscc: str, as_of, out_dir) -> Path:
    """Write the entity's own report for the run of ``as_of`` (latest scored run when None) to
    ``out_dir``: ``<USCC>_<as-of>.html`` (returned) and a PDF beside it where chromium is
    installed. Logs the read. PipelineError (one line) for an unknown run or entity."""
    uscc = str(uscc).strip().upper()
    run_id = _run_for(store, as_of)
    e = entity_explanation(store, uscc, run_id)
    cat = _catalogue(store, e["catalogue_sha256"])
    ident = _identity(store, uscc, cat, e["name"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{uscc}_{e['as_of']}.html"
    path.write_text(render_html(e, ident, cat), encoding="utf-8")
    render_pdf(path)
    log_read(store, uscc, run_id, len(e["records"]))
    return path
