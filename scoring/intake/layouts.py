"""Feed layouts as providers write them, and their mapping onto canonical staged columns.

Headers are matched tolerantly: whitespace, BOMs and full-width brackets are normalised, and
each canonical column accepts a few aliases seen in older or partial variants of a layout.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    id: str
    feed: str
    title: str
    columns: dict[
        str, tuple[str, ...]
    ]  # canonical name -> accepted headers (first is the standard one)
    required: tuple[str, ...]  # canonical columns without which the file is unusable
    signature: tuple[str, ...]  # canonical columns whose presence identifies the layout

    def standard_headers(self) -> list[str]:
        return [aliases[0] for aliases in self.columns.values()]


_CODES = {
    "uscc": ("行政相对人代码_1(统一社会信用代码)", "统一社会信用代码", "行政相对人代码_1"),
    "reg_no": ("行政相对人代码_2(工商注册号)", "工商注册号", "行政相对人代码_2"),
    "org_code": ("行政相对人代码_3(组织机构代码)", "组织机构代码", "行政相对人代码_3"),
    "tax_no": ("行政相对人代码_4(税务登记号)", "税务登记号", "行政相对人代码_4"),
    "inst_no": ("行政相对人代码_5(事业单位证书号)", "事业单位证书号", "行政相对人代码_5"),
    "soc_no": ("行政相对人代码_6(社会组织登记证号)", "社会组织登记证号", "行政相对人代码_6"),
    "legal_rep_name": ("法定代表人",),
    "legal_rep_id_type": ("法定代表人证件类型",),
    "legal_rep_id_number": ("法定代表人证件号码",),
    "id_type": ("证件类型",),
    "id_number": ("证件号码",),
}

PENALTY = Layout(
    id="sgs_penalty",
    feed="penalty",
    title="双公示 行政处罚",
    columns={
        "subject_name": ("行政相对人名称",),
        "subject_category": ("行政相对人类别",),
        **_CODES,
        "doc_number": ("行政处罚决定书文号", "处罚决定书文号", "决定书文号"),
        "violation_type": ("违法行为类型",),
        "violation_facts": ("违法事实",),
        "legal_basis": ("处罚依据",),
        "penalty_category": ("处罚类别",),
        "penalty_content": ("处罚内容",),
        "fine_wan_yuan": ("罚款金额（万元）", "罚款金额"),
        "confiscated_wan_yuan": (
            "没收违法所得、没收非法财物的金额（万元）",
            "没收违法所得、没收非法财物的金额",
        ),
        "licence_revoked": ("暂扣或吊销证照名称及编号",),
        "decision_date": ("处罚决定日期", "处罚日期"),
        "valid_to": ("处罚有效期",),
        "publicity_end": ("公示截止期", "公示截止日期"),
        "authority_name": ("处罚机关",),
        "authority_uscc": ("处罚机关统一社会信用代码",),
        "source_unit": ("数据来源单位",),
        "source_unit_uscc": ("数据来源单位统一社会信用代码",),
        "remarks": ("备注",),
        # Optional, sent by some providers (not in every 双公示 variant): the procedure and the
        # provider's own dishonesty grade. They decide the grade when present.
        "procedure": ("适用程序", "处罚程序", "程序类型"),
        "provider_grade": ("失信严重程度", "失信行为严重程度", "失信程度"),
    },
    required=("subject_name", "doc_number", "decision_date", "penalty_category"),
    signature=("doc_number", "penalty_category"),
)

LICENCE = Layout(
    id="sgs_licence",
    feed="licence",
    title="双公示 行政许可",
    columns={
        "subject_name": ("行政相对人名称",),
        "subject_category": ("行政相对人类别",),
        **_CODES,
        "doc_title": ("行政许可决定文书名称",),
        "doc_number": ("行政许可决定文书号", "许可决定书文号"),
        "licence_category": ("许可类别",),
        "licence_name": ("许可证书名称",),
        "licence_number": ("许可编号",),
        "licence_content": ("许可内容",),
        "decision_date": ("许可决定日期",),
        "valid_from": ("有效期自",),
        "valid_to": ("有效期至",),
        "authority_name": ("许可机关",),
        "authority_uscc": ("许可机关统一社会信用代码",),
        "licence_status": ("当前状态",),
        "source_unit": ("数据来源单位",),
        "source_unit_uscc": ("数据来源单位统一社会信用代码",),
        "remarks": ("备注",),
    },
    required=("subject_name", "doc_number", "decision_date"),
    signature=("doc_number", "licence_category"),
)

DISHONEST = Layout(
    id="court_dishonest_debtor",
    feed="dishonest_debtor",
    title="失信被执行人名单",
    columns={
        "subject_name": ("被执行人姓名/名称", "被执行人姓名", "被执行人名称"),
        "subject_code": ("统一社会信用代码/身份证号码", "证件号码"),
        "legal_rep_name": ("法定代表人或负责人姓名",),
        "authority_name": ("执行法院",),
        "province": ("省份",),
        "basis_doc_number": ("执行依据文号",),
        "filing_date": ("立案时间",),
        "doc_number": ("案号",),
        "basis_unit": ("做出执行依据单位",),
        "obligation": ("生效法律文书确定的义务",),
        "performance": ("被执行人的履行情况",),
        "circumstances": ("失信被执行人行为具体情形",),
        "decision_date": ("发布时间",),
        "performed_part": ("已履行部分",),
        "unperformed_part": ("未履行部分",),
        # The listing's life, where the court's export carries it: an end the court set, and the
        # removal (删除/屏蔽/撤销) with its date and reason (on performance, on error, on a
        # successful objection, at the end of the term).
        "listing_end": ("失信期限届满日期", "惩戒期限届满日期", "失信截止日期"),
        "removal_date": ("撤销日期", "删除日期", "屏蔽日期", "移除日期", "退出日期"),
        "removal_reason": ("撤销原因", "删除原因", "屏蔽原因", "移除原因", "退出原因"),
    },
    required=("subject_name", "subject_code", "doc_number", "decision_date"),
    signature=("subject_code", "circumstances"),
)

CREDIT_RECORD = Layout(
    id="credit_record",
    feed="credit_record",
    title="信用信息归集通用格式",
    columns={
        "item_code": ("信息项编码",),
        "subject_name": ("主体名称",),
        "subject_category": ("主体类别",),
        "uscc": ("统一社会信用代码",),
        "id_number": ("身份证号码",),
        "legal_rep_name": ("法定代表人",),
        "doc_number": ("文书编号",),
        "decision_date": ("认定日期", "列入日期", "列入名单日期"),
        "publicity_end": ("公示截止日期", "列入期限届满日期"),
        "amount_yuan": ("金额（元）", "金额"),
        "authority_name": ("认定机关",),
        "source_unit": ("数据来源单位",),
        "remarks": ("备注",),
        # A severe-dishonesty listing's removal, where the list export carries it.
        "removal_date": ("移出日期", "移出名单日期"),
        "removal_reason": ("移出原因", "移出名单原因"),
    },
    required=("item_code", "subject_name", "doc_number", "decision_date"),
    signature=("item_code", "doc_number"),
)

INSPECTION = Layout(
    id="inspection_result",
    feed="inspection",
    title="双随机抽查结果",
    columns={
        "doc_number": ("抽查任务编号",),
        "subject_name": ("检查对象名称",),
        "uscc": ("统一社会信用代码",),
        "decision_date": ("检查日期",),
        "inspection_result": ("检查结果",),
        "authority_name": ("检查实施机关",),
        "remarks": ("备注",),
    },
    required=("doc_number", "subject_name", "uscc", "decision_date", "inspection_result"),
    signature=("inspection_result",),
)

REGISTER = Layout(
    id="entity_register",
    feed="register",
    title="市场主体登记信息",
    columns={
        "uscc": ("统一社会信用代码",),
        "subject_name": ("主体名称",),
        "entity_type": ("主体类型",),
        "industry": ("行业门类",),
        "division_code": ("住所所在地行政区划代码",),
        "decision_date": ("成立日期",),
        "entity_status": ("登记状态",),
        "legal_rep_name": ("法定代表人",),
        "legal_rep_id_number": ("法定代表人证件号码",),
        "phone": ("联系电话",),
    },
    required=(
        "uscc",
        "subject_name",
        "entity_type",
        "division_code",
        "decision_date",
        "entity_status",
    ),
    signature=("entity_type", "entity_status"),
)

# Corrections, revocations, objections and repairs of records already delivered (Arts. 35, 38-40).
CHANGES = Layout(
    id="credit_change",
    feed="credit_change",
    title="信用信息变更（更正、撤销、异议、修复）",
    columns={
        "op": ("操作类型",),
        "doc_number": ("原文书编号",),
        "subject_code": ("统一社会信用代码/身份证号码", "统一社会信用代码"),
        "subject_name": ("主体名称",),
        "item_code": ("信息项编码",),
        "effective_date": ("生效日期",),
        "result": ("处理结果",),
        "new_decision_date": ("更正后认定日期",),
        "new_publicity_end": ("更正后公示截止日期",),
        # Art. 38: a correction may change any field of the record.
        "new_item_code": ("更正后信息项编码",),
        "new_grade": ("更正后失信严重程度",),
        "new_amount_yuan": ("更正后金额（元）", "更正后金额"),
        "new_subject_code": ("更正后统一社会信用代码/身份证号码", "更正后统一社会信用代码"),
        "new_removal_date": ("更正后移出日期", "更正后撤销日期"),
        # Art. 39: an objection that needs another unit's help has 7 working days, not 3.
        "assisted": ("需协助核查", "协助核查"),
        "remarks": ("说明",),
        "source_unit": ("数据来源单位",),
    },
    required=("op", "doc_number", "subject_code", "effective_date"),
    signature=("op", "doc_number"),
)

# The tax authority's annual list of grade-A taxpayers (纳税信用A级纳税人名单), as published each
# April for the previous tax year. For enterprises the taxpayer number is the USCC. The list has no
# document number: a record is (tax year, grade, taxpayer).
TAX_CREDIT = Layout(
    id="tax_credit_rating",
    feed="tax_credit_rating",
    title="纳税信用A级纳税人名单",
    columns={
        "uscc": ("纳税人识别号", "统一社会信用代码", "纳税人识别号/统一社会信用代码"),
        "subject_name": ("纳税人名称",),
        "rating_year": ("评价年度", "年度"),
        "credit_grade": ("纳税信用级别", "信用级别", "评价结果"),
        "decision_date": ("发布日期", "公布日期"),
        "authority_name": ("主管税务机关", "评价税务机关"),
        "remarks": ("备注",),
    },
    required=("uscc", "subject_name", "rating_year", "credit_grade", "decision_date"),
    signature=("rating_year", "credit_grade"),
)

# Results of the licensing agency's check of a commitment (告知承诺制, Art. 46: within two months of a
# licence granted on commitment): 已履行 / 未履行.
COMMITMENT_RESULT = Layout(
    id="commitment_result",
    feed="commitment_result",
    title="信用承诺履约核查结果",
    columns={
        "subject_name": ("行政相对人名称", "主体名称"),
        "subject_category": ("行政相对人类别", "主体类别"),
        "uscc": ("统一社会信用代码", "行政相对人代码_1(统一社会信用代码)"),
        "legal_rep_name": ("法定代表人",),
        "commitment_ref": ("承诺书编号", "信用承诺书编号"),
        "commitment_matter": ("承诺事项",),
        "commitment_date": ("承诺日期",),
        "doc_number": ("核查编号", "核查文书编号"),
        "decision_date": ("核查日期",),
        "check_result": ("核查结果", "履约情况"),
        "authority_name": ("核查机关", "许可机关"),
        "source_unit": ("数据来源单位",),
        "remarks": ("备注",),
    },
    required=(
        "subject_name",
        "uscc",
        "commitment_ref",
        "doc_number",
        "decision_date",
        "check_result",
    ),
    signature=("commitment_ref", "check_result"),
)

LAYOUTS: tuple[Layout, ...] = (
    PENALTY,
    LICENCE,
    DISHONEST,
    CREDIT_RECORD,
    INSPECTION,
    REGISTER,
    CHANGES,
    TAX_CREDIT,
    COMMITMENT_RESULT,
)
BY_ID = {layout.id: layout for layout in LAYOUTS}


def normalise_header(h: object) -> str:
    s = unicodedata.normalize("NFKC", str(h)).replace("\ufeff", "")
    return re.sub(r"\s+", "", s)


def match_header(headers: list[str]) -> tuple[Layout | None, dict[str, str], list[str]]:
    """Pick the layout whose columns best cover the headers.

    Returns (layout or None, raw header -> canonical column, canonical required columns missing).
    """
    norm = {normalise_header(h): h for h in headers}
    best, best_map, best_score = None, {}, 0
    for layout in LAYOUTS:
        mapping = {}
        for canon, aliases in layout.columns.items():
            for alias in aliases:
                raw = norm.get(normalise_header(alias))
                if raw is not None and raw not in mapping:
                    mapping[raw] = canon
                    break
        found = set(mapping.values())
        if not set(layout.signature) <= found:
            continue
        score = len(found) / len(layout.columns)
        if score > best_score:
            best, best_map, best_score = layout, mapping, score
    if best is None:
        return None, {}, []
    missing = [c for c in best.required if c not in set(best_map.values())]
    return best, best_map, missing
