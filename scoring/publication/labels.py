"""What a clerk sees in an agency's CSV/XLSX: Chinese column headers and Chinese labels for codes
by default, or the machine variant (snake_case headers and codes) for agencies that load the files
into their own systems (``labels: machine`` in config/agencies.yaml). Every delivery carries a
data dictionary (字段说明.csv) naming each column as it appears in that delivery. Parquet files
always keep the machine names and codes: they are for programs, not for clerks.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

VARIANTS = ("zh", "machine")
DICTIONARY_FILE = "字段说明.csv"

# column: (Chinese header, English name, what it holds)
COLUMNS: dict[str, tuple[str, str, str]] = {
    "uscc": ("统一社会信用代码", "USCC", "18位统一社会信用代码（GB 32100）"),
    "name": ("主体名称", "entity name", "市场主体登记名称"),
    "division_code": ("行政区划代码", "division code", "GB/T 2260 行政区划代码"),
    "industry": ("行业门类", "industry section", "GB/T 4754 国民经济行业门类"),
    "eval_class": ("主体类别", "entity class", "法人 / 非法人组织 / 个体工商户"),
    "legal_rep_name": (
        "法定代表人（负责人）",
        "legal representative",
        "自然人姓名已按条例第二十三条遮蔽",
    ),
    "legal_rep_id_number": (
        "法定代表人证件号码",
        "legal representative ID",
        "身份证号已遮蔽（前6位、后4位）",
    ),
    "phone": ("联系电话", "phone", "手机号已遮蔽（前3位、后4位）"),
    "score": ("综合评价得分", "composite score", "0–1000，一位小数"),
    "tier": (
        "信用风险等级",
        "risk tier",
        "信用风险低 / 一般 / 较高 / 高（内部监管参考，不对社会公开）",
    ),
    "dim_law_abiding": ("遵纪守法得分", "law-abiding", "维度得分，一位小数"),
    "dim_contracts_promises": ("履约践诺得分", "contracts and promises", "维度得分，一位小数"),
    "dim_qualifications_honours": (
        "资质荣誉得分",
        "qualifications and honours",
        "维度得分，一位小数",
    ),
    "dim_social_responsibility": ("社会责任得分", "social responsibility", "维度得分，一位小数"),
    "dim_supervisory_risk": ("监管风险得分", "supervisory risk", "维度得分，一位小数"),
    "override": (
        "等级调整原因",
        "tier override",
        "空 = 未调整；严重失信主体名单或严重记录等级上限",
    ),
    "flags": ("标记", "flags", "信息不足 / 异议处理中（多项以“；”分隔）"),
    "reasons": ("评价理由", "reasons", "影响得分最大的记录类别"),
}

# Chinese header -> machine name, for a program that reads a Chinese delivery back.
MACHINE_NAMES = {zh: name for name, (zh, _, _) in COLUMNS.items()}

# code column: {machine code: Chinese label}; codes not listed are delivered as they are.
CODES: dict[str, dict[str, str]] = {
    "tier": {"A": "信用风险低", "B": "信用风险一般", "C": "信用风险较高", "D": "信用风险高"},
    "eval_class": {
        "legal_person": "法人",
        "unincorporated": "非法人组织",
        "individual_business": "个体工商户",
    },
    "override": {
        "severe_dishonesty_list": "列入严重失信主体名单",
        "severe_record_cap": "严重违法记录等级上限",
    },
    "flags": {
        "insufficient_information": "信息不足",
        "objection_pending": "异议处理中",
        "insufficient_information;objection_pending": "信息不足；异议处理中",
    },
}


def variant(agency: dict) -> str:
    """The agency's file variant: ``zh`` unless config/agencies.yaml says ``labels: machine``."""
    v = agency.get("labels", "zh")
    if v not in VARIANTS:
        raise ValueError(f"agency {agency.get('id')}: labels must be one of {', '.join(VARIANTS)}")
    return v


def header(name: str, variant_: str) -> str:
    return COLUMNS[name][0] if variant_ == "zh" and name in COLUMNS else name


def _label_column(col, codes: dict[str, str]):
    keys = pa.array(sorted(codes), pa.string())
    at = pc.index_in(col.cast(pa.string()), value_set=keys)
    labels = pa.array([codes[k] for k in sorted(codes)], pa.string()).take(at)
    return pc.if_else(pc.is_null(at), col.cast(pa.string()), labels)


def labelled(table: pa.Table, variant_: str) -> pa.Table:
    """The table as the agency's CSV/XLSX shows it: Chinese headers and code labels (``zh``), or
    unchanged (``machine``)."""
    if variant_ == "machine":
        return table
    cols = [
        _label_column(table[n], CODES[n]) if n in CODES else table[n] for n in table.column_names
    ]
    return pa.table(cols, names=[header(n, variant_) for n in table.column_names])


def dictionary_table(columns: list[str], variant_: str) -> pa.Table:
    """字段说明: one row per column of the delivery, in file order, with its codes' labels."""
    rows = {"字段": [], "机器字段名": [], "英文名称": [], "说明": [], "代码取值": []}
    for name in columns:
        zh, en, what = COLUMNS.get(name, (name, name, ""))
        rows["字段"].append(header(name, variant_))
        rows["机器字段名"].append(name)
        rows["英文名称"].append(en)
        rows["说明"].append(what)
        codes = CODES.get(name, {})
        rows["代码取值"].append(
            "；".join(f"{k}={v}" for k, v in sorted(codes.items()) if ";" not in k)
        )
    return pa.table({k: pa.array(v, pa.string()) for k, v in rows.items()})
