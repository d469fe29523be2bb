"""HTML of the console's pages, server-rendered from what scoring.console returns: Chinese first,
English second, times in Asia/Shanghai, plain forms in keyboard order, print styles. No Airflow
plugin is defined here (the plugin manager imports every file of the plugins folder)."""

from __future__ import annotations

import html
import json

CSS = """
body{font-family:'Noto Sans CJK SC','Noto Sans',sans-serif;margin:0;color:#1a1a1a}
header{background:#0b3d62;color:#fff;padding:.6em 1.2em}header a{color:#fff;margin-right:1.2em}
main{padding:1em 1.5em;max-width:72em}h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.4em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:3px 8px;
text-align:left;font-size:.92em}th{background:#eef2f6}.num{text-align:right}
.error{color:#a00;font-weight:bold}.ok{color:#060;font-weight:bold}.warn{background:#fde8e8}
a:focus,button:focus,input:focus,select:focus{outline:3px solid #f5a623}
.skip{position:absolute;left:-999px}.skip:focus{left:1em;top:1em;background:#fff;color:#000}
code{font-size:.85em;word-break:break-all}label{margin-right:1em}
@media print{header,nav,form,button,.noprint{display:none}main{max-width:none}}
"""


def esc(v) -> str:
    return html.escape("" if v is None else str(v))


def page(root: str, title: str, body: str, user: str = "", pages: list[str] = ()) -> str:
    from scoring.console.access import PAGE_TITLES

    nav = "".join(f'<a href="{root}/{p}">{esc(PAGE_TITLES[p])}</a>' for p in pages)
    who = f'<span style="float:right">{esc(user)}</span>' if user else ""
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        '<a class="skip" href="#main">跳到正文 Skip to content</a>'
        f'<header><nav aria-label="控制台 Console"><a href="{root}/">控制台 Console</a>'
        f"{nav}{who}</nav></header>"
        f'<main id="main"><h1>{esc(title)}</h1>{body}</main></body></html>'
    )


def table(headers: list[str], rows: list[list], cls: list[str] | None = None) -> str:
    head = "".join(f"<th scope='col'>{esc(h)}</th>" for h in headers)
    body = "".join(
        f"<tr{' class=' + repr(cls[i]) if cls and cls[i] else ''}>"
        + "".join(f"<td>{c}</td>" for c in row)
        + "</tr>"
        for i, row in enumerate(rows)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def message(text: str | None, ok: bool = False) -> str:
    if not text:
        return '<p id="message" role="status"></p>'
    return f'<p id="message" role="alert" class="{"ok" if ok else "error"}">{esc(text)}</p>'


def index(root: str, user: str, pages: list[str]) -> str:
    from scoring.console.access import PAGE_TITLES

    items = "".join(f'<li><a href="{root}/{p}">{esc(PAGE_TITLES[p])}</a></li>' for p in pages)
    return page(
        root,
        "公共信用综合评价控制台 Credit console",
        f"<ul>{items or '<li>您的角色没有可用页面 No page for your roles</li>'}</ul>",
        user,
        pages,
    )


PLANNER_JS = """
const f=document.getElementById('ratios');
function q(){const p=new URLSearchParams({agency:f.agency.value,period:f.period.value});
 for(const t of 'ABCD'){p.set(t,f['r'+t].value)}return p}
let seq=0;
async function update(){const my=++seq;const r=await fetch(ROOT+'/api/planner/consequences?'+q());
 const d=await r.json();if(my!==seq){return}const m=document.getElementById('message');
 if(!r.ok||!d.ok){m.className='error';m.setAttribute('role','alert');
  m.textContent=(d.error||d.detail||r.status);}else{m.className='';m.textContent='';}
 if(d.tiers){for(const t of d.tiers){document.getElementById('k'+t.tier).textContent=t.inspections;
  document.getElementById('e'+t.tier).textContent=t.expected_findings+' ('+t.findings_interval[0]+'–'+t.findings_interval[1]+')'}
  document.getElementById('total').textContent=d.inspections;
  document.getElementById('found').textContent=d.expected_findings+' ('+d.findings_interval[0]+'–'+d.findings_interval[1]+')';}
 else{for(const t of 'ABCD'){document.getElementById('k'+t).textContent='—';document.getElementById('e'+t).textContent='—'}
  document.getElementById('total').textContent='—';document.getElementById('found').textContent='—';}
 document.getElementById('commit').disabled=!(r.ok&&d.ok);}
for(const t of 'ABCD'){f['r'+t].addEventListener('input',update)}
const adopt=document.getElementById('adopt');
if(adopt){adopt.addEventListener('click',()=>{for(const t of 'ABCD'){f['r'+t].value=PROPOSAL[t]}update()})}
f.addEventListener('submit',async(ev)=>{ev.preventDefault();const ratios={};
 for(const t of 'ABCD'){ratios[t]=f['r'+t].value}
 const r=await fetch(ROOT+'/api/plans',{method:'POST',headers:{'Content-Type':'application/json'},
  body:JSON.stringify({agency:f.agency.value,period:f.period.value,ratios:ratios,task:f.task.value})});
 const d=await r.json();const out=document.getElementById('committed');
 if(!r.ok){out.className='error';out.setAttribute('role','alert');out.textContent=d.detail;return}
 out.className='ok';out.innerHTML='';const a=document.createElement('a');
 a.href=ROOT+'/plans/'+encodeURIComponent(d.plan_id);a.textContent=d.plan_id;
 out.append('已提交计划 Committed plan ',a,' — 承诺哈希 commitment sha256 ');
 const c=document.createElement('code');c.id='commitment';c.textContent=d.commitment_sha256;out.append(c);});
update();
"""


def _tier_grid(b: dict, start: dict) -> str:
    """The tiers with their counts, bounds, hit rates and the editable ratio per tier."""
    rows = []
    for t in b["tiers"]:
        iv = t["hit_interval"]
        rows.append(
            [
                f"{esc(t['tier'])} {esc(t['label'])}",
                f"<span class='num'>{t['population']:,}</span>",
                f"{esc(t['bounds'][0])} – {esc(t['bounds'][1])}",
                f"{t['hit_rate']:.1%} ({t['inspected']} 次)"
                + (f" 95%: {iv[0]:.1%}–{iv[1]:.1%}" if iv else " —"),
                f'<input id="r{t["tier"]}" name="r{t["tier"]}" value="{esc(start[t["tier"]])}" '
                f'size="8" inputmode="decimal" aria-label="{esc(t["tier"])} 级抽查比例 ratio">',
                f'<span id="k{t["tier"]}">—</span>',
                f'<span id="e{t["tier"]}">—</span>',
            ]
        )
    rows.append(
        ["合计 Total", "", "", "", "", '<span id="total">—</span>', '<span id="found">—</span>']
    )
    return table(
        [
            "等级 Tier",
            "主体数 Entities",
            "比例范围 Bounds",
            "问题发现率 Hit rate",
            "抽查比例 Ratio",
            "检查次数 Inspections",
            "预计发现问题 Expected findings",
        ],
        rows,
    )


def _plans_table(root: str, plans: list[dict]) -> str:
    """The department's committed plans, each linked to its draw and verification."""
    return (
        table(
            ["计划 Plan", "期间 Period", "状态 Status", "承诺哈希 Commitment"],
            [
                [
                    f'<a href="{root}/plans/{esc(p["plan_id"])}">{esc(p["plan_id"])}</a>',
                    esc(p["period"]),
                    esc(p["status"]),
                    f"<code>{esc(p['commitment_sha256'])}</code>",
                ]
                for p in plans
            ],
        )
        if plans
        else "<p>尚无计划 No plans yet</p>"
    )


def planner(root: str, user: str, pages: list[str], agencies: list[dict], b: dict | None, err):
    pick = "".join(
        f'<option value="{esc(a["id"])}"{" selected" if b and b["agency"]["id"] == a["id"] else ""}>'
        f"{esc(a['name'])} ({esc(a['id'])})</option>"
        for a in agencies
    )
    chooser = (
        f'<form method="get" action="{root}/planner" class="noprint">'
        f'<label>部门 Department <select name="agency">{pick}</select></label>'
        f'<label>期间 Period <input name="period" value="{esc(b["period"] if b else "")}" '
        'placeholder="YYYY-MM" size="8"></label><button>查看 Show</button></form>'
    )
    if b is None:
        return page(root, "抽查比例设置 Ratio planner", chooser + message(err), user, pages)
    start = b["proposal"] or {t["tier"]: t["bounds"][0] for t in b["tiers"]}
    grid = _tier_grid(b, start)
    proposal = (
        f"<p>建议 Advisor: {esc(', '.join(f'{k}={v}' for k, v in b['proposal'].items()))} "
        '<button type="button" id="adopt">采用建议 Adopt</button></p>'
        if b["proposal"]
        else f"<p class='error'>{esc(b['proposal_note'])}</p>"
    )
    plans = _plans_table(root, b["plans"])
    body = (
        chooser + f"<p>{esc(b['agency']['name'])} — 依据 {esc(b['run_id'])}（{esc(b['as_of'])}）；"
        f"期间 {esc(b['period'])}；能力 capacity {b['capacity']:,}，其他计划 other plans "
        f"{b['other_plans']:,}，剩余 left <b id='left'>{b['capacity_left']:,}</b></p>"
        f"<p>比例范围依据 Bounds: {esc(b['bounds']['source'])}（{esc(b['bounds']['from'])} 起）</p>"
        f"<p>发现率依据 Hit rates: {esc(b['hit_basis'])}</p>"
        f'<form id="ratios"><input type="hidden" name="agency" value="{esc(b["agency"]["id"])}">'
        f'<input type="hidden" name="period" value="{esc(b["period"])}">'
        + grid
        + proposal
        + '<label>任务 Task <input name="task" value="routine" size="12"></label>'
        '<button id="commit" type="submit">提交计划 Commit plan</button></form>'
        + message(err)
        + '<p id="committed" aria-live="polite"></p>'
        + "<h2>本部门计划 Plans</h2>"
        + plans
        + f"<script>const ROOT={json.dumps(root)};const PROPOSAL={json.dumps(b['proposal'] or start)};"
        f"{PLANNER_JS}</script>"
    )
    return page(root, "抽查比例设置 Ratio planner", body, user, pages)


def plan(root: str, user: str, pages: list[str], s: dict) -> str:
    v = s["verification"]
    checks = ", ".join(f"{k} {'✓' if ok else '✗'}" for k, ok in sorted(v["checks"].items()))
    targets = (
        table(
            ["统一社会信用代码 USCC", "名称 Name", "等级 Tier", "检查人员 Inspectors"],
            [
                [esc(t["uscc"]), esc(t["name"]), esc(t["tier"]), esc("、".join(t["inspectors"]))]
                for t in s["targets"]
            ],
        )
        if s["targets"]
        else (
            "<p>尚未抽取：种子为计划依据批次之后首个发布批次的输出哈希 Not drawn yet: the seed is the "
            "output hash of the first publication after the plan's base run.</p>"
        )
    )
    files = "".join(
        f'<li><a href="{root}/plans/{esc(s["plan_id"])}/files/{esc(n)}" download>{esc(n)}</a></li>'
        for n in s["public_files"]
    )
    body = (
        f"<p>{esc(s['agency_name'])} — {esc(s['period'])} {esc(s['task'])} — 状态 status "
        f"<b id='status'>{esc(s['status'])}</b></p>"
        f"<p>比例 Ratios: {esc(', '.join(f'{k}={x}' for k, x in s['ratios'].items()))}</p>"
        f"<p>承诺哈希 Commitment sha256: <code id='commitment'>{esc(s['commitment_sha256'])}</code></p>"
        f"<p>依据批次 Base run: {esc(s['base']['run_id'])}（{esc(s['base']['as_of'])}）</p>"
        + (
            f"<p>种子来源 Seed: {esc(s['seed_source']['run_id'])} "
            f"<code>{esc(s['seed_source']['value'])}</code></p>"
            if s.get("seed_source")
            else ""
        )
        + "<h2>抽取结果与检查人员 Draw and inspectors</h2>"
        + targets
        + f"<h2>核验 Verification</h2><p id='verified' class='{'ok' if v['verified'] else 'error'}'>"
        + ("通过 verified" if v["verified"] else "未通过 NOT verified")
        + f"</p><p>{esc(checks)}</p>"
        + f"<h2>一公开 Public file</h2><ul>{files}</ul>"
    )
    return page(root, f"抽查计划 Plan {s['plan_id']}", body, user, pages)


def audit(root, user, pages, past: list[dict], chosen: str, mode: str, manifest, result, err):
    opts = "".join(
        f'<option value="{esc(r["run_id"])}"{" selected" if r["run_id"] == chosen else ""}>'
        f"{esc(r['run_id'])}（{esc(r['as_of'])}，{esc(r['status'])}）</option>"
        for r in past
    )
    modes = "".join(
        f'<option value="{m}"{" selected" if m == mode else ""}>{label}</option>'
        for m, label in (
            ("as-known-then", "按当时所知 as known then"),
            ("as-known-now", "按现在所知 as known now"),
        )
    )
    form = (
        '<form id="rerun" class="noprint">'
        f'<label>批次 Run <input name="run_id" list="runs" value="{esc(chosen)}" size="28"></label>'
        f'<datalist id="runs">{opts}</datalist>'
        f'<label>方式 Mode <select name="mode">{modes}</select></label>'
        '<button type="submit">复算 Rerun</button></form>'
    )
    verdict = ""
    if result:
        verdict = (
            f"<p id='verdict' class='{'ok' if result['identical'] else 'error'}'>"
            f"{esc(result['verdict'])}</p><p>输出哈希 now <code>{esc(result['output_sha256'])}</code>"
            f"，原 original <code>{esc(result['original_output_sha256'])}</code>；"
            f"{result['changed_entities']} 个主体不同 entities differ；{esc(result['rerun_seconds'])} s</p>"
        )
        if result["differences"]:
            cols = list(result["differences"][0])
            verdict += "<h2>差异 Differences</h2>" + table(
                cols, [[esc(r[c]) for c in cols] for r in result["differences"]]
            )
        if result["causes"]:
            cols = list(result["causes"][0])
            verdict += "<h2>原因 Causes</h2>" + table(
                cols, [[esc(r[c]) for c in cols] for r in result["causes"]]
            )
    mf = (
        "<h2>运行清单 Manifest</h2>"
        + table(
            ["项目 Item", "值 Value"],
            [[f"{esc(r['zh'])} {esc(r['en'])}", esc(r["value"])] for r in manifest],
        )
        if manifest
        else ""
    )
    js = (
        f"<script>const ROOT={json.dumps(root)};const f=document.getElementById('rerun');"
        "f.addEventListener('submit',async(ev)=>{ev.preventDefault();const m=document.getElementById('message');"
        "m.className='';m.textContent='复算中… rerunning';"
        "const r=await fetch(ROOT+'/api/audit/reruns',{method:'POST',headers:{'Content-Type':'application/json'},"
        "body:JSON.stringify({run_id:f.run_id.value,mode:f.mode.value})});const d=await r.json();"
        "if(!r.ok){m.className='error';m.setAttribute('role','alert');m.textContent=d.detail;return}"
        "const p=new URLSearchParams({run_id:f.run_id.value,mode:f.mode.value});"
        "for(;;){m.textContent='审计DAG运行 audit DAG run '+(d.dag_run_id||'')+': '+d.state;"
        "await new Promise(x=>setTimeout(x,2000));const s=await (await fetch(ROOT+'/api/audit/reruns?'+p)).json();"
        "d.state=s.state;d.dag_run_id=s.dag_run_id||d.dag_run_id;"
        "if(s.state==='done'){location.href=ROOT+'/audit?'+p;return}"
        "if(s.state==='failed'){m.className='error';m.textContent=s.error;return}}});</script>"
    )
    body = form + message(err) + verdict + mf + js
    return page(root, "审计复算 Auditor view", body, user, pages)


def _shares_svg(nights: list[dict]) -> str:
    """Tier shares night by night as stacked bars (oldest left), with a text alternative."""
    colours = {"A": "#2e7d32", "B": "#9ccc65", "C": "#ffb300", "D": "#c62828"}
    w, h, bar = 24, 160, 18
    parts = []
    for i, n in enumerate(reversed(nights)):
        y = 0.0
        for t in "ABCD":
            share = n["tier_shares"].get(t, 0)
            parts.append(
                f'<rect x="{i * w}" y="{y * h:.1f}" width="{bar}" height="{share * h:.1f}" '
                f'fill="{colours[t]}"><title>{esc(n["as_of"])} {t} {share:.1%}</title></rect>'
            )
            y += share
    legend = " ".join(f'<span style="color:{c}">■</span> {t}' for t, c in colours.items())
    return (
        f'<svg role="img" aria-label="各等级占比 tier shares by night" width="{max(1, len(nights)) * w}" '
        f'height="{h}">{"".join(parts)}</svg><p>{legend}</p>'
    )


def _overdue_cell(run_id: str, late: list[dict]) -> str:
    """A night's objections pending past their decision deadline, by provider."""
    text = "、".join(f"{x['provider']} {x['overdue']}" for x in late)
    return (
        f"<span class='error' data-overdue='{esc(run_id)}'>{esc(text)}</span>"
        if late
        else f"<span data-overdue='{esc(run_id)}'>—</span>"
    )


def nights(root: str, user: str, pages: list[str], rows: list[dict], late: dict) -> str:
    """``late``: each night's overdue objections by its run id."""
    body_rows, cls = [], []
    for n in rows:
        deliveries = (
            "<br>".join(
                f"{esc(d['provider'])}: {d['files']} 文件 files, {d['received']:,} 行 rows, "
                f"{d['quarantined']:,} 隔离 quarantined（{esc(d['arrived'])}）"
                for d in n["deliveries"]
            )
            or "—"
        )
        body_rows.append(
            [
                esc(n["as_of"]),
                esc(n["status"])
                + (f"<br><small>{esc(n['message'])}</small>" if n["message"] else ""),
                esc("、".join(n["hard_failed"]) or "—"),
                esc("；".join(n["waived"]) or "—"),
                f"<span class='error'>{esc('、'.join(n['overdue']))}</span>"
                if n["overdue"]
                else "—",
                deliveries,
                " ".join(f"{t} {v:.1%}" for t, v in n["tier_shares"].items()),
                str(n["objections_pending"]),
                _overdue_cell(n["run_id"], late.get(n["run_id"], [])),
            ]
        )
        cls.append("warn" if n["overdue"] or n["hard_failed"] or late.get(n["run_id"]) else "")
    grid = table(
        [
            "日期 Night",
            "状态 Status",
            "未通过门禁 Hard gates failed",
            "豁免 Waivers",
            "逾期报送 Overdue feeds",
            "报送 Deliveries",
            "等级占比 Tier shares",
            "异议待处理 Objections pending",
            "逾期异议 Overdue objections",
        ],
        body_rows,
        cls,
    )
    latest = late.get(rows[0]["run_id"], []) if rows else []
    overdue = (
        "<p id='overdue-objections' class='error'>最近一夜逾期未处理异议 Overdue objections on the "
        "latest night: "
        + esc("、".join(f"{x['provider']} {x['overdue']}" for x in latest))
        + "</p>"
        if latest
        else "<p id='overdue-objections'>最近一夜无逾期异议 No overdue objections on the latest night</p>"
    )
    body = (
        "<p>最近 30 个夜间运行（时间为北京时间 Asia/Shanghai）</p>"
        + overdue
        + _shares_svg(rows)
        + grid
    )
    return page(root, "夜间运行 Night overview", body, user, pages)


def entity(root: str, user: str, pages: list[str], uscc: str, run_id: str, e, err, report: bool):
    form = (
        f'<form method="get" action="{root}/entity" class="noprint">'
        f'<label>统一社会信用代码 USCC <input name="uscc" value="{esc(uscc)}" size="20"></label>'
        f'<label>批次 Run <input name="run_id" value="{esc(run_id)}" size="22" '
        'placeholder="最新 latest"></label><button>查询 Look up</button></form>'
    )
    if not e:
        return page(root, "主体查询 Entity lookup", form + message(err), user, pages)
    dims = table(
        ["维度 Dimension", "得分 Score"],
        [[esc(d["name"]), esc(d["score"])] for d in e["dimensions"]],
    )
    recs = (
        table(
            [
                "日期 Date",
                "事项 Item",
                "文书号 Document",
                "计分 Counts",
                "分值 Points",
                "说明 Why not",
                "异议 Objection",
                "来源 Source",
            ],
            [
                [
                    esc(r["decision_date"]),
                    esc(r["item"]),
                    esc(r["doc_number"]),
                    "是 yes" if r["counts"] else "否 no",
                    esc(r["points"]),
                    esc(r["why_not"] or ""),
                    esc(r["objection"] or ""),
                    esc(r["source"]),
                ]
                for r in e["records"]
            ],
        )
        if e["records"]
        else "<p>无记录 No records</p>"
    )
    rep = "".join(f"<li>{esc(k)}：{esc(v)}</li>" for k, v in e["legal_rep"].items())
    download = (
        f'<p><a id="report" href="{root}/entity/report?uscc={esc(e["uscc"])}&amp;run_id={esc(e["run_id"])}" '
        "download>下载信用报告 Download the credit report</a></p>"
        if report
        else "<p>信用报告尚不可用 The entity credit report is not available in this version.</p>"
    )
    body = (
        form + f"<h2>{esc(e['name'])}（{esc(e['uscc'])}）</h2>"
        f"<p>批次 {esc(e['run_id'])}（评价日期 {esc(e['as_of'])}）— {esc(e['eval_class'])}</p>"
        f"<p>综合评价得分 Score <b id='score'>{esc(e['score'])}</b>；信用风险等级 Tier "
        f"<b id='tier'>{esc(e['tier_label'])}</b>"
        + (f"；调整 override {esc(e['override'])}" if e["override"] else "")
        + (f"；标记 flags {esc(e['flags'])}" if e["flags"] else "")
        + f"</p><p>评价理由 Reasons: {esc(e['reasons'])}</p>"
        f"<h2>法定代表人（已遮蔽，第二十三条）Legal representative, masked</h2><ul>{rep}</ul>"
        "<h2>维度得分 Dimensions</h2>"
        + dims
        + "<h2>信用记录 Records</h2>"
        + recs
        + f"<h2>异议 Objections</h2><p>{len(e['objections'])} 条 records under objection</p>"
        + download
        + "<p><small>本次查询已记入查询日志 This lookup is recorded in the read log.</small></p>"
    )
    return page(root, "主体查询 Entity lookup", body, user, pages)
