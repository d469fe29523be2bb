"""``credit layout suggest FILE``: for a file whose header matches no layout, the nearest layout,
the columns matched and not, and a provider override the operator can review and commit to
config/providers.yaml. Chinese first: the operator who must fix the file reads it."""

from __future__ import annotations

import csv
import difflib
from dataclasses import replace

from scoring.common.text import shown
from scoring.intake.layouts import (
    HEADER_SEARCH_ROWS,
    LayoutSet,
    best_match,
    header_key,
    merged_header,
)
from scoring.intake.readers import DEFAULT_LIMITS, UnusableFile, check_bytes, decode, physical_lines
from scoring.intake.xlsx import read_xlsx


def head_rows(data: bytes, name: str) -> list[tuple[str | None, list[list[str]]]]:
    """The first rows of the file (of each sheet of a workbook) as (sheet, rows)."""
    if data[:4] == b"PK\x03\x04":
        seen: list[list[list[str]]] = []

        def capture(rows):
            seen.append([[str(c) for c in r] for r in rows])
            return None

        read_xlsx(data, replace(DEFAULT_LIMITS), capture)
        return [(f"#{i + 1}", rows) for i, rows in enumerate(seen)]
    check_bytes(data)
    _enc, text = decode(data)
    lines = physical_lines(text[: 1 << 20])[:HEADER_SEARCH_ROWS]
    return [(None, [next(csv.reader([ln.rstrip("\r\n")]), []) for ln in lines])]


def suggest(data: bytes, name: str, layouts: LayoutSet | None = None) -> dict:
    """The nearest layout and a proposed override. Raises UnusableFile if the file is unreadable."""
    layouts = layouts or LayoutSet.latest()
    best = None
    for sheet, rows in head_rows(data, name):
        for i, row in enumerate(rows):
            candidates = [(1, [c.strip() for c in row])]
            if i + 1 < len(rows):
                candidates.append((2, merged_header(row, rows[i + 1])))
            for n_rows, header in candidates:
                if not any(header):
                    continue
                m = best_match(header, layouts, require_signature=False)
                if m.layout is not None and (best is None or len(m.mapping) > len(best[3].mapping)):
                    best = (sheet, i + 1, n_rows, m, header)
    if best is None:
        raise UnusableFile("unknown_layout", "no row of the file resembles any layout's header")
    sheet, line, n_rows, m, header = best
    lay = m.layout
    found = set(m.mapping.values())
    unmatched = [h for h in header if h and h not in m.mapping]
    free = [c for c in lay.columns if c not in found]
    override: dict[str, str] = {}
    for h in unmatched:
        scored = [
            (difflib.SequenceMatcher(None, header_key(h), header_key(a)).ratio(), c)
            for c in free
            for a in lay.names(c)
        ]
        if scored:
            ratio, canon = max(scored)
            if ratio >= 0.5 and canon not in override.values():
                override[h] = canon
    still_missing = [c for c in lay.required if c not in found and c not in override.values()]
    return {
        "layout": lay.id,
        "title": lay.title,
        "feed": lay.feed,
        "sheet": sheet,
        "header_line": line,
        "header_rows": n_rows,
        "matched": dict(m.mapping),
        "unmatched": unmatched,
        "missing_required": [c for c in lay.required if c not in found],
        "missing_signature": [c for c in lay.signature if c not in found],
        "override": override,
        "still_missing": still_missing,
        "layouts_sha256": layouts.sha256,
    }


def render(s: dict, provider: str = "PROVIDER") -> str:
    """The suggestion for the operator: Chinese first, then English; the override as YAML."""
    where = f"第 {s['header_line']} 行" + (
        f"（与第 {s['header_line'] + 1} 行合并）" if s["header_rows"] == 2 else ""
    )
    sheet = f"，工作表 {s['sheet']}" if s["sheet"] else ""
    lines = [
        f"最接近的格式：{s['title']}（{s['layout']}，数据项 {s['feed']}），表头在{where}{sheet}",
        f"已匹配的列（{len(s['matched'])}）："
        + "，".join(f"{shown(h)} → {c}" for h, c in s["matched"].items()),
        f"未匹配的列（{len(s['unmatched'])}）：" + "，".join(shown(h) for h in s["unmatched"]),
        "缺少的必需列：" + ("，".join(s["missing_required"]) or "无"),
    ]
    if s["override"]:
        lines += [
            "建议的提供单位覆盖（请审核后加入 config/providers.yaml 中该单位的条目，作为新版本）：",
            "        overrides:",
            f"          {s['layout']}:",
            *(f"            {shown(h)}: {c}" for h, c in s["override"].items()),
        ]
    else:
        lines.append("没有可建议的覆盖：请对照格式说明修改文件表头。")
    if s["still_missing"]:
        lines.append("覆盖之后仍缺少的必需列：" + "，".join(s["still_missing"]))
    lines += [
        "",
        f"Nearest layout: {s['layout']} ({s['feed']}), header at line {s['header_line']}"
        + (" (two merged rows)" if s["header_rows"] == 2 else "")
        + (f", sheet {s['sheet']}" if s["sheet"] else "")
        + f"; {len(s['matched'])} columns matched, {len(s['unmatched'])} not; "
        + f"proposed override for provider {provider}: {len(s['override'])} headers"
        + (f"; still missing: {', '.join(s['still_missing'])}" if s["still_missing"] else ""),
    ]
    return "\n".join(lines)
