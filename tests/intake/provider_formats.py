"""A corpus of provider files shaped as provincial systems really export them.

Where each header layout comes from (public sources; the layouts themselves are in
config/layouts/v1.yaml):

- 2016 national 双公示 penalty layout (行政处罚决定书文号, 处罚名称, 处罚类别1, 处罚类别2, 处罚事由, 处罚依据,
  行政相对人名称, 行政相对人代码_1..._5, 法定代表人姓名, 处罚结果, 处罚决定日期, 处罚机关, 当前状态, 地方编码,
  数据更新时间戳, 备注): the field list a crawler of the Changchun credit site maps, GitHub
  ZhouForrest/Spider, carSpider/carSpider/spiders/qyxg_xzcf_credit_changchun.py; the same list in
  the domain brief (/work/shared/domain/README.md, "Real provider formats and exchange").
- 2016 licence layout (行政许可决定书文号, 项目名称, 审批类别, 许可内容, ..., 许可决定日期, 许可截止期, 许可机关,
  当前状态, 地方编码, 数据更新时间戳, 备注) and its XK_* field codes (XK_WSH, XK_XMMC, XK_SPLB, XK_NR, XK_XDR,
  XK_XDR_SHXYM, XK_XDR_ZDM, XK_XDR_GSDJ, XK_XDR_SWDJ, XK_XDR_SFZ, XK_FR, XK_JDRQ, XK_JZQ, XK_XZJG,
  XK_ZT, DFBM, SJC, BZ): a Wuhan exchange bean that pairs each code with its Chinese header
  (package com.whcis.data.ap.oldtemplate, PermissonBean.java, found by exact-string search of
  public GitHub code); the labels also in GitHub chengzhongxie/JiChuKu,
  DLL/Dtos/FAdministrativeLicensingDto.cs.
- Penalty exchange codes CF_WSH, CF_CFMC, CF_CFLB1, CF_CFLB2, CF_SY, CF_YJ, CF_XDR_MC,
  CF_XDR_SHXYM, CF_XDR_ZDM, CF_XDR_GSDJ, CF_XDR_SWDJ, CF_XDR_SFZ, CF_FR, CF_JG, CF_JDRQ, CF_XZJG,
  CF_ZT, DFBM, SJC, BZ: the column list of public loaders into 前置机 tables (an INSERT into
  tab_penaly_wuhan_month, and a Guangdong 司法厅 exchange message pairing each code with its
  meaning, both found by exact-string search of public GitHub code), as in the domain brief.
- 2021 layouts: the 2021 penalty fields (行政相对人类别, 行政相对人代码_1(统一社会信用代码) ... _6
  (社会组织登记证号), 违法行为类型, 罚款金额（万元）, 公示截止期, 数据来源单位 ...) and their lower-case codes
  (cf_xdr_lb, cf_xdr_gszc, cf_xdr_zzjg, cf_nr_fk, cf_gsjzq, cf_sjly...) from a public exchange table
  definition (tr_t_gajhgx_xzcfxxzb_new, exact-string search of public GitHub code); licences:
  GitHub dragdream/cc, src/com/beidasoft/zfjd/permission/bean/PermissionList.java (XK_XDR_MC,
  XK_XDR_SHXYM, XK_XDR_GSZC 工商注册号, XK_XDR_ZZJG, XK_XDR_SYDW, XK_XDR_SHZZ).

The values are synthetic: valid check digits, made-up names.
"""

from __future__ import annotations

import csv
import io

import openpyxl

from scoring.common import codes

HEADERS_2016_PENALTY = [
    "行政处罚决定书文号",
    "处罚名称",
    "处罚类别1",
    "处罚类别2",
    "处罚事由",
    "处罚依据",
    "行政相对人名称",
    "行政相对人代码_1(统一社会信用代码)",
    "行政相对人代码_2(组织机构代码)",
    "行政相对人代码_3(工商登记码)",
    "行政相对人代码_4(税务登记号)",
    "行政相对人代码_5(居民身份证号)",
    "法定代表人姓名",
    "处罚结果",
    "处罚决定日期",
    "处罚机关",
    "当前状态",
    "地方编码",
    "数据更新时间戳",
    "备注",
]
CODES_2016_PENALTY = [
    "CF_WSH",
    "CF_CFMC",
    "CF_CFLB1",
    "CF_CFLB2",
    "CF_SY",
    "CF_YJ",
    "CF_XDR_MC",
    "CF_XDR_SHXYM",
    "CF_XDR_ZDM",
    "CF_XDR_GSDJ",
    "CF_XDR_SWDJ",
    "CF_XDR_SFZ",
    "CF_FR",
    "CF_JG",
    "CF_JDRQ",
    "CF_XZJG",
    "CF_ZT",
    "DFBM",
    "SJC",
    "BZ",
]
HEADERS_2016_LICENCE = [
    "行政许可决定书文号",
    "项目名称",
    "审批类别",
    "许可内容",
    "行政相对人名称",
    "行政相对人代码_1(统一社会信用代码)",
    "行政相对人代码_2(组织机构代码)",
    "行政相对人代码_3(工商登记码)",
    "行政相对人代码_4(税务登记号)",
    "行政相对人代码_5 (居民身份证号)",
    "法定代表人姓名",
    "许可决定日期",
    "许可截止期",
    "许可机关",
    "当前状态",
    "地方编码",
    "数据更新时间戳",
    "备注",
]
CODES_2016_LICENCE = [
    "XK_WSH",
    "XK_XMMC",
    "XK_SPLB",
    "XK_NR",
    "XK_XDR",
    "XK_XDR_SHXYM",
    "XK_XDR_ZDM",
    "XK_XDR_GSDJ",
    "XK_XDR_SWDJ",
    "XK_XDR_SFZ",
    "XK_FR",
    "XK_JDRQ",
    "XK_JZQ",
    "XK_XZJG",
    "XK_ZT",
    "DFBM",
    "SJC",
    "BZ",
]


def usccs(n: int, start: int = 1) -> list[str]:
    import numpy as np

    seq = np.arange(start, start + n)
    body = (seq[:, None] // 10 ** np.arange(7, -1, -1)) % 10  # the sequence as 8 digits
    return list(codes.make_uscc(np.full(n, "9"), np.full(n, "1"), np.full(n, "230100"), body))


def rows_2016_penalty(n: int = 5) -> list[list[str]]:
    ids = usccs(n)
    return [
        [
            f"哈市监罚〔2026〕{100 + i}号",
            "违反广告法案",
            "罚款",
            "没收违法所得" if i % 2 else "",
            "发布虚假广告",
            "《中华人民共和国广告法》第五十五条",
            f"哈尔滨示例商贸有限公司{i}",
            ids[i],
            "",
            "",
            "",
            "",
            "张三",
            "罚款人民币五万元",
            f"2026/6/{10 + i}",
            "哈尔滨市市场监督管理局",
            "0",
            "230100",
            "2026-06-20 10:00:00",
            "",
        ]
        for i in range(n)
    ]


def rows_2016_licence(n: int = 5) -> list[list[str]]:
    ids = usccs(n, 50)
    return [
        [
            f"哈市监许〔2026〕{200 + i}号",
            "食品经营许可",
            "普通",
            "预包装食品销售",
            f"哈尔滨示例食品有限公司{i}",
            ids[i],
            "",
            "",
            "",
            "",
            "李四",
            f"2026年6月{10 + i}日",
            "2031年6月9日",
            "哈尔滨市市场监督管理局",
            "0",
            "230100",
            "2026-06-20 10:00:00",
            "",
        ]
        for i in range(n)
    ]


def csv_bytes(rows: list[list[str]], encoding: str = "utf-8-sig") -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    return buf.getvalue().encode(encoding)


def xlsx_bytes(sheets: list[tuple[str, list[list[str]]]], merges: dict | None = None) -> bytes:
    """A workbook with these sheets (name, rows); ``merges``: sheet name -> ranges to merge."""
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, rows in sheets:
        ws = wb.create_sheet(name)
        for r in rows:
            ws.append([v if v != "" else None for v in r])
        for rng in (merges or {}).get(name, []):
            ws.merge_cells(rng)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def merged_2021_licence_header(row: int = 1) -> tuple[list[str], list[str], list[str]]:
    """Two header rows as a WPS/Excel export with merged cells writes them: the 行政相对人代码 group
    over six columns with the six code names below it; every other column merged down two rows."""
    top, sub = [], []
    for h in [
        "行政相对人名称",
        "行政相对人类别",
        "CODES",
        "法定代表人",
        "行政许可决定文书名称",
        "行政许可决定文书号",
        "许可类别",
        "许可决定日期",
        "有效期自",
        "有效期至",
        "许可机关",
        "当前状态",
        "数据来源单位",
    ]:
        if h == "CODES":
            names = [
                "统一社会信用代码",
                "工商注册号",
                "组织机构代码",
                "税务登记号",
                "事业单位证书号",
            ]
            names.append("社会组织登记证号")
            top += ["行政相对人代码"] + [""] * 5
            sub += names
        else:
            top.append(h)
            sub.append("")
    letter = openpyxl.utils.get_column_letter
    merges = [f"C{row}:H{row}"] + [
        f"{letter(i + 1)}{row}:{letter(i + 1)}{row + 1}" for i, s in enumerate(sub) if not s
    ]
    return top, sub, merges


def rows_2021_licence_merged(n: int = 4) -> list[list[str]]:
    ids = usccs(n, 80)
    return [
        [
            f"哈尔滨示例药房有限公司{i}",
            "法人及非法人组织",
            ids[i],
            "",
            "",
            "",
            "",
            "",
            "王五",
            "药品经营许可证",
            f"黑药许〔2026〕{300 + i}号",
            "普通",
            "2026-06-12",
            "2026-06-12",
            "2031-06-11",
            "黑龙江省药品监督管理局",
            "1",
            "黑龙江省药品监督管理局",
        ]
        for i in range(n)
    ]


# A provider registry with one court and one market regulator; OVERRIDES is line 9.
REGISTRY_TEMPLATE = """versions:
  - effective_from: "2016-01-01"
    providers:
      - id: court
        name: 法院
        folder: court
        feeds: [dishonest_debtor]
      - id: samr
        OVERRIDES
        name: 市场监管
        folder: samr
        feeds: [penalty]
"""


def file_head(raw) -> tuple:
    """What a reader says of a file beside its rows (chunked and whole-file reading compared)."""
    return (
        "read",
        raw.encoding,
        raw.file_format,
        raw.layout.id,
        raw.header,
        raw.mapping,
        raw.missing_required,
        raw.sha256,
        raw.n_bytes,
        raw.where,
    )
