"""The boundary table, end to end through the real command line: crafted entities and records are
added to a small demo province's deliveries, `credit run` scores the night of 2026-06-30 and
`credit explain --json` says, for each record, whether it counts and why, with the entity's tier.

Each case names its article. 《黑龙江省社会信用条例》:
  Art. 27  dishonesty is recorded on a department's finding (认定), not on a lost civil case alone
  Art. 28  ¶3 a court-listed dishonest judgment debtor is a severe-dishonesty entity
  Art. 35  ¶2 an objection to a severe listing is decided within three working days
  Art. 37  ¶2 publication stops when the period ends -- and runs through its last day (Civil Code
           Arts. 201-203: 期间的最后一日是截止日)
  Art. 39  ¶2 an objection is marked within one working day, decided within three (seven when
           assisted); the mark never suspends the record
NDRC Order 58 (2023-05-01): penalties published 3 months to 3 years, "食品、药品、特种设备、安全生产、
消防领域行政处罚信息最短公示期一年" (work safety by its provider, food, drugs and special equipment by the
penalty's 违法行为类型): a repair within the year is too early and the record keeps counting. NDRC Order 36 (2026-04-01): minor records not published in
principle; general 3-12 months, severe 12-36; repair only after the minimum.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from scoring.intake.layouts import CHANGES, CREDIT_RECORD, PENALTY

AS_OF = "2026-06-30"


def _uscc(i: int) -> str:
    from scoring.common.codes import make_uscc

    digits = [int(c) for c in f"{i:07d}"]
    return str(
        make_uscc(np.array(["9"]), np.array(["1"]), np.array(["230102"]), np.array([[7, *digits]]))[
            0
        ]
    )


# case -> (article, kind, fields); kind: penalty (samr 双公示), ema (ema 双公示), record (credit_record
# with the item code, provider folder), court (court credit_record)
CASES = {
    "LAST_DAY": ("Art. 37", "penalty", {"date": "2026-01-10", "end": "2026-06-30"}),
    "DAY_AFTER": ("Art. 37", "penalty", {"date": "2026-01-10", "end": "2026-06-29"}),
    "O58_GEN_3Y_LAST": ("Order 58", "penalty", {"date": "2023-06-30"}),
    "O58_GEN_3Y_PAST": ("Order 58", "penalty", {"date": "2023-06-29"}),
    "O58_SEV_LAST": ("Order 58", "penalty", {"date": "2023-06-30", "grade": "严重"}),
    "O2019_SEV_PAST": ("2019 notice", "penalty", {"date": "2023-04-30", "grade": "严重"}),
    "LIST_END_LAST": (
        "Art. 28, 37",
        "court",
        {"item": "DISHONEST_DEBTOR", "date": "2025-01-05", "end": "2026-06-30"},
    ),
    "LIST_END_PAST": (
        "Art. 28, 37",
        "court",
        {"item": "DISHONEST_DEBTOR", "date": "2025-01-05", "end": "2026-06-29"},
    ),
    "LIST_REMOVED": (
        "Art. 28",
        "court",
        {"item": "DISHONEST_DEBTOR", "date": "2025-01-05", "removed": "2026-06-30"},
    ),
    "COURT_OBJ_OVERDUE": (
        "Art. 28, 35, 39",
        "court",
        {"item": "DISHONEST_DEBTOR", "date": "2025-01-05"},
    ),
    "OBJ_OVERDUE": ("Art. 39", "penalty", {"date": "2026-05-10"}),
    "OBJ_UPHELD_TODAY": ("Art. 39", "penalty", {"date": "2026-05-10"}),
    "OBJ_REJECTED": ("Art. 39", "penalty", {"date": "2026-05-10"}),
    "OBJ_ASSISTED": ("Art. 39", "penalty", {"date": "2026-05-10"}),
    "OBJ_TESTING_DAYS": ("Art. 39", "penalty", {"date": "2026-05-10"}),
    "LIST_OBJ_3DAYS": (
        "Art. 35",
        "record",
        {"item": "SEVERE_DISHONESTY_LIST", "date": "2026-03-02"},
    ),
    "GRADE_TO_SEVERE": ("Art. 38", "penalty", {"date": "2026-05-10"}),
    "ITEM_TO_SEVERE": ("Art. 38", "penalty", {"date": "2026-05-10"}),
    "MINOR_O36": ("Order 36", "penalty", {"date": "2026-05-10", "type": "警告"}),
    "MINOR_BEFORE_O36": ("Order 58", "penalty", {"date": "2026-03-31", "type": "警告"}),
    "CIVIL_JUDGMENT": ("Art. 27", "court", {"item": "COURT_JUDGMENT", "date": "2026-05-01"}),
    "FINDING": ("Art. 27", "record", {"item": "REFUSE_TO_PERFORM", "date": "2026-05-01"}),
    "REPAIR_EARLY": ("Order 36", "penalty", {"date": "2026-05-01"}),
    "REPAIR_AFTER_MIN": ("Order 58", "penalty", {"date": "2026-01-10"}),
    "REPAIR_FIELD_MIN": ("Order 58", "ema", {"date": "2026-01-10"}),
    # Market regulation's penalties in a named field, told by their 违法行为类型.
    "REPAIR_FOOD_MIN": (
        "Order 58",
        "penalty",
        {"date": "2026-01-10", "violation": "违反《中华人民共和国食品安全法》第三十四条"},
    ),
    "REPAIR_DRUG_MIN": (
        "Order 58",
        "penalty",
        {"date": "2026-01-10", "violation": "违反《中华人民共和国药品管理法》第九十八条"},
    ),
    "REPAIR_SPECIAL_EQUIPMENT_MIN": (
        "Order 58",
        "penalty",
        {"date": "2026-01-10", "violation": "违反《中华人民共和国特种设备安全法》第三十二条"},
    ),
    "SIMPLIFIED": ("Art. 18", "penalty", {"date": "2026-05-10", "simple": True}),
    "CORR_ON_TIME": ("Art. 38", "penalty", {"date": "2026-05-10"}),
    "REVOKED_LATE": ("Art. 38", "penalty", {"date": "2026-05-10"}),
    "REVOKED_ON_TIME": ("Art. 38", "penalty", {"date": "2026-05-10"}),
}
NAMES = sorted(CASES)
USCC = {k: _uscc(9000 + i) for i, k in enumerate(NAMES)}
DOC = {k: f"黑BOUNDARY〔2026〕{i}号" for i, k in enumerate(NAMES)}

OPTOUT = _uscc(9100)  # Art. 37 ¶1: asks that its positive information not be published


def _individual_uscc() -> str:
    from scoring.common.codes import make_uscc

    return str(
        make_uscc(
            np.array(["9"]),
            np.array(["2"]),
            np.array(["230102"]),
            np.array([[7, 0, 0, 0, 9, 2, 0, 1]]),
        )[0]
    )


INDIVIDUAL = _individual_uscc()  # a 个体工商户 registered under its operator's own name

CHANGE_ROWS = [
    ("COURT_OBJ_OVERDUE", "异议申请", "2026-06-01", {}),
    ("OBJ_OVERDUE", "异议申请", "2026-06-24", {}),
    ("OBJ_OVERDUE", "异议标注", "2026-06-25", {}),
    ("OBJ_UPHELD_TODAY", "异议申请", "2026-06-24", {}),
    ("OBJ_UPHELD_TODAY", "异议办结", "2026-06-30", {"处理结果": "采纳"}),
    ("OBJ_REJECTED", "异议申请", "2026-06-24", {}),
    ("OBJ_REJECTED", "异议办结", "2026-06-29", {"处理结果": "维持"}),
    (
        "OBJ_ASSISTED",
        "异议申请",
        "2026-06-23",
        {"需协助核查": "是", "协助核查通知日期": "2026-06-24"},
    ),
    ("OBJ_TESTING_DAYS", "异议申请", "2026-06-23", {"不计入处理时间的工作日数": "2"}),
    ("LIST_OBJ_3DAYS", "异议申请", "2026-06-23", {"需协助核查": "是"}),
    ("GRADE_TO_SEVERE", "更正", "2026-06-20", {"更正后失信严重程度": "严重"}),
    ("ITEM_TO_SEVERE", "更正", "2026-06-20", {"更正后信息项编码": "PENALTY_SEVERE"}),
    # Art. 38, all delivered 06-30: a correction is due 3 working days after its date (Sat 06-20
    # gives Wed 06-24: the two above are late; Fri 06-26 gives Wed 07-01), a revocation 2 (Thu
    # 06-25 gives Mon 06-29: late; Fri 06-26 gives Tue 06-30: on its last day).
    ("CORR_ON_TIME", "更正", "2026-06-26", {"更正后金额（元）": "800"}),
    ("REVOKED_LATE", "撤销", "2026-06-25", {}),
    ("REVOKED_ON_TIME", "撤销", "2026-06-26", {}),
    ("REPAIR_EARLY", "信用修复", "2026-06-15", {}),
    ("REPAIR_AFTER_MIN", "信用修复", "2026-06-30", {}),
    ("REPAIR_FIELD_MIN", "信用修复", "2026-06-30", {}),
    ("REPAIR_FOOD_MIN", "信用修复", "2026-06-30", {}),
    ("REPAIR_DRUG_MIN", "信用修复", "2026-06-30", {}),
    ("REPAIR_SPECIAL_EQUIPMENT_MIN", "信用修复", "2026-06-30", {}),
]

# case -> (counts, reason, tier, objection state or None)
EXPECTED = {
    "LAST_DAY": (True, None, "B", None),
    "DAY_AFTER": (False, "expired", "A", None),
    "O58_GEN_3Y_LAST": (True, None, "A", None),  # counts, decayed by three half-lives
    "O58_GEN_3Y_PAST": (False, "expired", "A", None),
    "O58_SEV_LAST": (True, None, "C", None),
    "O2019_SEV_PAST": (False, "expired", "A", None),
    "LIST_END_LAST": (True, None, "D", None),
    "LIST_END_PAST": (False, "expired", "A", None),
    "LIST_REMOVED": (False, "removed_from_list", "A", None),
    "COURT_OBJ_OVERDUE": (True, None, "D", "overdue"),
    "OBJ_OVERDUE": (True, None, "B", "overdue"),
    "OBJ_UPHELD_TODAY": (False, "objection_upheld", "A", "upheld"),
    "OBJ_REJECTED": (True, None, "B", "rejected"),
    "OBJ_ASSISTED": (True, None, "B", "pending"),
    "OBJ_TESTING_DAYS": (True, None, "B", "pending"),
    "LIST_OBJ_3DAYS": (True, None, "D", "overdue"),
    "GRADE_TO_SEVERE": (True, None, "C", None),
    "ITEM_TO_SEVERE": (True, None, "C", None),
    "MINOR_O36": (False, "minor_record", "A", None),
    "MINOR_BEFORE_O36": (True, None, "B", None),
    "CIVIL_JUDGMENT": (False, "no_department_finding", "A", None),
    "FINDING": (True, None, "B", None),
    "REPAIR_EARLY": (True, None, "B", None),
    "REPAIR_AFTER_MIN": (False, "repaired", "A", None),
    "REPAIR_FIELD_MIN": (True, None, "B", None),
    "REPAIR_FOOD_MIN": (True, None, "B", None),
    "REPAIR_DRUG_MIN": (True, None, "B", None),
    "REPAIR_SPECIAL_EQUIPMENT_MIN": (True, None, "B", None),
    "SIMPLIFIED": (False, "simplified_procedure", "A", None),
    "CORR_ON_TIME": (True, None, "B", None),
    "REVOKED_LATE": (False, "revoked", "A", None),
    "REVOKED_ON_TIME": (False, "revoked", "A", None),
}


def _register(landing):
    path = landing / "samr" / "20260630_register.csv"
    reg = pd.read_csv(path, dtype=str, encoding="utf-8")
    extra = pd.DataFrame(
        {
            reg.columns[0]: [USCC[k] for k in NAMES],
            reg.columns[1]: [f"哈尔滨市边界测试{i}有限公司" for i in range(len(NAMES))],
            reg.columns[2]: "有限责任公司",
            reg.columns[3]: "F",
            reg.columns[4]: "230102",
            reg.columns[5]: "2018-01-01",
            reg.columns[6]: "存续",
        }
    )
    more = pd.DataFrame(
        {
            reg.columns[0]: [OPTOUT, INDIVIDUAL],
            reg.columns[1]: ["哈尔滨市守信示例有限公司", "王小明"],
            reg.columns[2]: ["有限责任公司", "个体工商户"],
            reg.columns[3]: "F",
            reg.columns[4]: "230102",
            reg.columns[5]: "2018-01-01",
            reg.columns[6]: "存续",
            reg.columns[7]: ["李四", "王小明"],
        }
    )
    pd.concat([reg, extra, more]).to_csv(path, index=False, encoding="utf-8")


def _penalty_row(k, f):
    return {
        "行政相对人名称": f"哈尔滨市边界测试{NAMES.index(k)}有限公司",
        "行政相对人类别": "法人及非法人组织",
        "行政相对人代码_1(统一社会信用代码)": USCC[k],
        "行政处罚决定书文号": DOC[k],
        "处罚类别": f.get("type", "罚款"),
        "违法行为类型": f.get("violation", ""),
        "罚款金额（万元）": "0.2" if f.get("simple") else "2",
        "适用程序": "简易程序" if f.get("simple") else "一般程序",
        "处罚决定日期": f["date"],
        "公示截止期": f.get("end", ""),
        "失信严重程度": f.get("grade", ""),
        "处罚机关": "哈尔滨市市场监督管理局",
        "数据来源单位": "黑龙江省市场监督管理局",
    }


def _record_row(k, f):
    return {
        "信息项编码": f["item"],
        "主体名称": f"哈尔滨市边界测试{NAMES.index(k)}有限公司",
        "主体类别": "法人及非法人组织",
        "统一社会信用代码": USCC[k],
        "文书编号": DOC[k],
        "认定日期": f["date"],
        "公示截止日期": f.get("end", ""),
        "认定机关": "哈尔滨市中级人民法院",
        "移出日期": f.get("removed", ""),
        "移出原因": "已履行" if f.get("removed") else "",
    }


def _append(path, rows, headers, encoding, excel=False):
    new = pd.DataFrame(rows).reindex(columns=headers).astype(object).fillna("")
    if excel:
        old = pd.read_excel(path, dtype=str).fillna("")
        pd.concat([old, new.reindex(columns=old.columns).fillna("")]).to_excel(path, index=False)
        return
    old = pd.read_csv(path, dtype=str, encoding=encoding).fillna("")
    pd.concat([old, new.reindex(columns=old.columns).fillna("")]).to_csv(
        path, index=False, encoding=encoding
    )


def _write_cases(landing):
    _register(landing)
    kinds = {"penalty": [], "ema": [], "record": [], "court": []}
    for k in NAMES:
        _, kind, f = CASES[k]
        kinds[kind].append(_penalty_row(k, f) if kind in ("penalty", "ema") else _record_row(k, f))
    _append(
        landing / "samr" / "20260630_penalty.csv",
        kinds["penalty"],
        PENALTY.standard_headers(),
        "utf-8-sig",
    )
    _append(
        landing / "ema" / "20260630_penalty.xlsx",
        kinds["ema"],
        PENALTY.standard_headers(),
        None,
        excel=True,
    )
    _append(
        landing / "ndrc" / "20260630_credit_record.csv",
        kinds["record"],
        CREDIT_RECORD.standard_headers(),
        "utf-8-sig",
    )
    _append(
        landing / "court" / "20260630_credit_record.csv",
        kinds["court"],
        CREDIT_RECORD.standard_headers(),
        "utf-8",
    )
    commendation = {
        "信息项编码": "COMMENDATION",
        "主体名称": "哈尔滨市守信示例有限公司",
        "主体类别": "法人及非法人组织",
        "统一社会信用代码": OPTOUT,
        "文书编号": "黑表彰〔2026〕1号",
        "认定日期": "2026-03-01",
        "认定机关": "黑龙江省人民政府",
    }
    _append(
        landing / "civ" / "20260630_credit_record.xlsx",
        [commendation],
        CREDIT_RECORD.standard_headers(),
        None,
        excel=True,
    )
    item = {k: CASES[k][2].get("item", "PENALTY_GENERAL") for k in NAMES}
    rows = [
        {
            "操作类型": op,
            "原文书编号": DOC[k],
            "统一社会信用代码/身份证号码": USCC[k],
            "信息项编码": item[k],
            "生效日期": eff,
            **extra,
        }
        for k, op, eff, extra in CHANGE_ROWS
    ] + [
        {
            "操作类型": "不公示守信信息",
            "原文书编号": "黑信用申请〔2026〕7号",
            "统一社会信用代码/身份证号码": OPTOUT,
            "生效日期": "2026-06-20",
        }
    ]
    _append(
        landing / "ndrc" / "20260630_credit_change.csv",
        rows,
        CHANGES.standard_headers(),
        "utf-8-sig",
    )


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    from scoring.world.province import write_deliveries

    root = tmp_path_factory.mktemp("boundaries")
    write_deliveries(root, AS_OF, n_entities=300, seed=11, defect_rate=0.0)
    _write_cases(root / "landing")
    home = root / "home"
    env = {"CREDIT_DB_URL": ""}
    p = run_cli(
        "run",
        "--as-of",
        AS_OF,
        "--landing",
        str(root / "landing"),
        "--home",
        str(home),
        "--json",
        env=env,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return {"root": root, "home": home, "env": env, "run": json.loads(p.stdout)}


def explain(night, key):
    p = run_cli(
        "explain",
        USCC[key],
        "--run",
        night["run"]["run_id"],
        "--home",
        str(night["home"]),
        "--json",
        env=night["env"],
    )
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout)


@pytest.mark.parametrize("key", NAMES, ids=[f"{k}-{CASES[k][0]}" for k in NAMES])
def test_boundary_table(night, key):
    counts, reason, tier, objection = EXPECTED[key]
    e = explain(night, key)
    rec = [r for r in e["records"] if r["doc_number"] == DOC[key]]
    assert len(rec) == 1, e["text"]
    r = rec[0]
    assert r["counts"] is counts, e["text"]
    assert r["excluded_because"] == reason, e["text"]
    assert e["tier"] == tier, e["text"]
    assert (r["objection"] or {}).get("state") == objection, e["text"]
    if objection in ("pending", "overdue"):
        assert "objection_pending" in e["flags"] and "异议处理中" in e["text"]


def test_grade_and_item_corrections_to_severe_give_one_answer(night):
    a, b = explain(night, "GRADE_TO_SEVERE"), explain(night, "ITEM_TO_SEVERE")
    assert (a["score"], a["tier"], a["override"]) == (b["score"], b["tier"], b["override"])
    ra = next(r for r in a["records"] if r["doc_number"] == DOC["GRADE_TO_SEVERE"])
    assert ra["item_code"] == "PENALTY_SEVERE" and ra["min_months"] == 12


def test_field_minimum_follows_the_violation_type(night):
    """Order 58: "食品、药品、特种设备……领域行政处罚信息最短公示期一年" -- the same provider's penalty
    of the same date has 3 months' minimum outside those fields and 12 inside them."""
    mins = {}
    for key in (
        "REPAIR_AFTER_MIN",
        "REPAIR_FOOD_MIN",
        "REPAIR_DRUG_MIN",
        "REPAIR_SPECIAL_EQUIPMENT_MIN",
    ):
        rec = next(r for r in explain(night, key)["records"] if r["doc_number"] == DOC[key])
        mins[key] = rec["min_months"]
    assert mins == {
        "REPAIR_AFTER_MIN": 3,
        "REPAIR_FOOD_MIN": 12,
        "REPAIR_DRUG_MIN": 12,
        "REPAIR_SPECIAL_EQUIPMENT_MIN": 12,
    }


def test_deadlines_of_the_marks(night):
    """Art. 35: three working days for the severe listing even when assisted (filed Tue 06-23:
    due Fri 06-26, overdue by 06-30); Art. 39: seven when assisted (due Thu 07-02); testing and
    expert-review days not counted (3 + 2: due Tue 06-30, pending on its last day); the
    assisting unit's 2 working days from its notice (06-24: due 06-26, missed)."""
    lst = next(r for r in explain(night, "LIST_OBJ_3DAYS")["records"] if r["objection"])
    gen = next(r for r in explain(night, "OBJ_ASSISTED")["records"] if r["objection"])
    tst = next(r for r in explain(night, "OBJ_TESTING_DAYS")["records"] if r["objection"])
    assert lst["objection"]["due"] == "2026-06-26" and lst["objection"]["overdue"]
    assert gen["objection"]["due"] == "2026-07-02" and not gen["objection"]["overdue"]
    assert tst["objection"]["due"] == "2026-06-30" and not tst["objection"]["overdue"]
    run_dir = next(night["home"].glob("runs/*/nightly-20260630"))
    obj = pd.read_parquet(run_dir / "objections.parquet").set_index("record_key")
    key = f"{DOC['OBJ_ASSISTED']}|{USCC['OBJ_ASSISTED']}"
    assert obj.loc[key, "assist_due"] == pd.Timestamp("2026-06-26") and obj.loc[key, "assist_late"]
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "Overdue marks and decisions, per provider" in page and "CALENDAR UNKNOWN" not in page


def test_the_console_and_the_run_report_give_one_answer_on_overdue_objections(night):
    """Art. 35 ¶2: the severe listing's objection is due in three working days even when assisted,
    and Art. 28 ¶3's court listing goes to the court within them: the console's overdue count per
    provider is the run report's, from the same library function."""
    from scoring.console.nights import overdue_objections
    from scoring.history.store import Store

    run_dir = next(night["home"].glob("runs/*/nightly-20260630"))
    csv = pd.read_csv(run_dir / "objections_overdue.csv", encoding="utf-8-sig")
    report = {str(p): int(n) for p, n in zip(csv["provider"], csv["overdue"]) if n > 0}
    store = Store.open(f"sqlite:///{night['home'] / 'credit.db'}", night["home"])
    console = {
        x["provider"]: x["overdue"] for x in overdue_objections(store, night["run"]["run_id"])
    }
    assert console == report
    # LIST_OBJ_3DAYS (ndrc, severe list, assisted) would be pending under Art. 39's seven days.
    assert console.get("ndrc", 0) >= 1 and console.get("court", 0) >= 1, console


def test_providers_late_corrections_and_revocations_are_listed(night):
    """Art. 38: "应当自发现之日起三个工作日内进行更正……自依据被改变之日起两个工作日内向公共信用工作机构
    提出更新信息，公共信用工作机构应当在一个工作日内撤销或者变更该信息". All the crafted changes
    come from ndrc's change feed of 06-30, applied that night."""
    run_dir = next(night["home"].glob("runs/*/nightly-20260630"))
    d = pd.read_parquet(run_dir / "corrections.parquet")
    d["doc"] = d["record_key"].str.split("|").str[0]
    by_doc = d.set_index("doc")
    for key, late in [
        ("GRADE_TO_SEVERE", True),
        ("ITEM_TO_SEVERE", True),
        ("CORR_ON_TIME", False),
        ("REVOKED_LATE", True),
        ("REVOKED_ON_TIME", False),
    ]:
        row = by_doc.loc[DOC[key]]
        assert bool(row["provider_late"]) is late, (key, row)
        assert not row["platform_late"] and not row["calendar_unknown"], (key, row)
    assert by_doc.loc[DOC["REVOKED_ON_TIME"], "provider_due"] == pd.Timestamp("2026-06-30")
    late = pd.read_csv(run_dir / "corrections_late.csv", encoding="utf-8-sig")
    ndrc = late.set_index("provider").loc["ndrc"]
    nd = d[d["provider"] == "ndrc"]
    assert ndrc["corrections_late"] == (nd["provider_late"] & (nd["op"] == "correct")).sum() >= 2
    assert ndrc["revocations_late"] == (nd["provider_late"] & (nd["op"] == "revoke")).sum() >= 1
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "Corrections and revocations (Art. 38" in page


def _published(night):
    out = night["home"] / "outbox"
    frames = [pd.read_parquet(p) for p in sorted(out.glob("*/nightly-20260630/results.parquet"))]
    return pd.concat(frames).drop_duplicates("uscc").set_index("uscc")


def test_the_court_listed_debtor_under_objection_is_published_as_d_with_the_mark(night):
    row = _published(night).loc[USCC["COURT_OBJ_OVERDUE"]]
    assert row["tier"] == "D" and "objection_pending" in row["flags"]


def test_positive_information_withheld_on_request_and_individual_names_masked(night):
    """Art. 37 ¶1: the entity's commendation still counts in its evaluation (its own explain shows
    it) but no publication carries it; a 个体工商户 named after its operator is masked in every
    published column (Arts. 17, 23), not only as the representative."""
    pub = _published(night)
    row = pub.loc[OPTOUT]
    assert "R001" not in row["reasons"] and "positive_not_published" in row["flags"]
    p = run_cli(
        "explain",
        OPTOUT,
        "--run",
        night["run"]["run_id"],
        "--home",
        str(night["home"]),
        "--json",
        env=night["env"],
    )
    own = json.loads(p.stdout)
    assert "R001" in own["reasons"] and any(
        r["item_code"] == "COMMENDATION" and r["counts"] for r in own["records"]
    )
    ind = pub.loc[INDIVIDUAL]
    assert ind["name"] == "王**" and ind["legal_rep_name"] == "王**"
    everything = "".join(
        p.read_text(encoding="utf-8-sig", errors="ignore")
        for p in (night["home"] / "outbox").glob("*/nightly-20260630/results.csv")
    )
    assert "王小明" not in everything


def test_the_entity_report_shows_the_mark_and_is_logged(night, tmp_path):
    """`credit report` (Art. 24): the court-listed debtor under an overdue objection is D with the
    mark; each report is one read in read_log; an unknown entity or night is one line, exit 1."""
    import sqlalchemy as sa

    from scoring.history.store import Store
    from scoring.reporting.entity_report import write_entity_report

    uscc = USCC["COURT_OBJ_OVERDUE"]
    p = run_cli(
        "report",
        uscc,
        "--as-of",
        AS_OF,
        "--out",
        str(tmp_path),
        "--home",
        str(night["home"]),
        "--json",
        env=night["env"],
    )
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout)
    page = open(out["html"], encoding="utf-8").read()
    assert "异议处理中（已逾期）" in page and "已转人民法院" in page and ">D<" in page
    assert "2026-06-04" in page  # Art. 35: three working days from the filing of 06-01
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        assert out["pdf"] and open(out["pdf"], "rb").read(5) == b"%PDF-"
    store = Store.open(f"sqlite:///{night['home'] / 'credit.db'}", night["home"])
    path = write_entity_report(store, uscc, None, tmp_path / "console")  # the console's call
    assert path.exists() and path.name == f"{uscc}_{AS_OF}.html"
    with store.engine.connect() as conn:
        n = conn.execute(
            sa.text(
                "select count(*) from read_log where channel = 'entity_report' and agency_id = :a"
            ),
            {"a": f"self:{uscc}"},
        ).scalar()
    assert n == 2
    bad = run_cli(
        "report",
        USCC["LAST_DAY"],
        "--as-of",
        "2026-05-01",
        "--home",
        str(night["home"]),
        env=night["env"],
    )
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and "no scored run" in bad.stderr


def test_an_upheld_objection_withdraws_from_its_date_and_the_audit_still_shows_the_mark(night):
    """Night 2 (07-01) brings the decision upholding OBJ_OVERDUE's objection, effective 07-01:
    withdrawn that night; night 1 rerun as known then is byte-identical and still carries the
    mark; as known now, 06-30 is unchanged for it (the decision takes effect from its own date).
    Last in this module: it adds a night to the shared store."""
    root, home = night["root"], night["home"]
    pd.DataFrame(
        [
            {
                "操作类型": "异议办结",
                "原文书编号": DOC["OBJ_OVERDUE"],
                "统一社会信用代码/身份证号码": USCC["OBJ_OVERDUE"],
                "信息项编码": "PENALTY_GENERAL",
                "生效日期": "2026-07-01",
                "处理结果": "采纳",
            }
        ]
    ).reindex(columns=CHANGES.standard_headers()).astype(object).fillna("").to_csv(
        root / "landing" / "ndrc" / "20260701_credit_change.csv", index=False, encoding="utf-8-sig"
    )
    env = night["env"]
    d2 = run_cli(
        "run",
        "--as-of",
        "2026-07-01",
        "--landing",
        str(root / "landing"),
        "--home",
        str(home),
        "--json",
        env=env,
    )
    assert d2.returncode == 0, d2.stderr[-2000:]
    ex = run_cli(
        "explain",
        USCC["OBJ_OVERDUE"],
        "--run",
        "nightly-20260701",
        "--home",
        str(home),
        "--json",
        env=env,
    )
    e2 = json.loads(ex.stdout)
    r2 = next(r for r in e2["records"] if r["doc_number"] == DOC["OBJ_OVERDUE"])
    assert r2["excluded_because"] == "objection_upheld" and e2["tier"] == "A"
    run1 = night["run"]["run_id"]
    then = json.loads(
        run_cli(
            "rerun", run1, "--mode", "as-known-then", "--home", str(home), "--json", env=env
        ).stdout
    )
    assert then["identical"] is True and then["output_sha256"] == night["run"]["output_sha256"]
    now = json.loads(
        run_cli(
            "rerun", run1, "--mode", "as-known-now", "--home", str(home), "--json", env=env
        ).stdout
    )
    assert USCC["OBJ_OVERDUE"] not in now["changed_entities"]
    audit = home / "audits" / run1 / "as-known-then"
    files = sorted(audit.rglob("*.csv")) + sorted(audit.rglob("*.parquet"))
    text = "".join(
        p.read_text(encoding="utf-8-sig", errors="ignore")
        if p.suffix == ".csv"
        else pd.read_parquet(p).to_csv()
        for p in files
    )
    line = next((ln for ln in text.splitlines() if USCC["OBJ_OVERDUE"] in ln), "")
    assert "objection_pending" in line, [p.name for p in files]
