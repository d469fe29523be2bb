"""Law over time, end to end: a court removal re-sent by the court, an upheld objection, a
correction that changes the item and a simplified-procedure penalty arrive on day 2. Day 2 shows
them; the audit rerun of day 1 as known then is byte-identical to the original, and as known now
names exactly these causes."""

import json
import shutil

import pandas as pd
import sqlalchemy as sa
from conftest import AS_OF, run_cli

from scoring.common.catalogue import Catalogue
from scoring.evaluation.evaluate import Policy, apply_changes, classify_records
from scoring.history.inputs import load_inputs
from scoring.history.store import Store
from scoring.intake.layouts import CHANGES, DISHONEST, PENALTY

DAY2 = "2026-07-01"


def _pick(store):
    with store.engine.connect() as conn:
        ent, rec, chg, _ = load_inputs(store, conn, AS_OF)
    cls = classify_records(
        apply_changes(rec, chg, AS_OF), Catalogue.load(), Policy.shipped_in_force(AS_OF), AS_OF
    )
    legal = cls[cls["subject_type"] != "natural"]
    touched = set(chg["subject_code"]) if len(chg) else set()
    legal = legal[~legal["uscc"].isin(touched)]
    listed = legal[legal["item_code"].isin(["DISHONEST_DEBTOR", "SEVERE_DISHONESTY_LIST"])]
    per = listed.groupby("uscc").size()
    court = (
        listed[
            listed["uscc"].isin(per[per == 1].index)
            & (listed["item_code"] == "DISHONEST_DEBTOR")
            & listed["counts"]
        ]
        .sort_values("record_key")
        .iloc[0]
    )
    single = legal.groupby("uscc").size()
    one = legal[
        legal["uscc"].isin(single[single == 1].index)
        & legal["counts"]
        & (legal["item_code"] == "PENALTY_GENERAL")
    ].sort_values("record_key")
    w, v = one.iloc[0], one.iloc[1]
    active = ent[
        (ent["entity_status"] == "存续") & (pd.to_datetime(ent["registered_date"]) < "2020-01-01")
    ]
    y = active[~active["uscc"].isin(set(rec["uscc"]))].sort_values("uscc").iloc[0]
    return court, w, v, y


def _write_day2(landing, court, w, v, y):
    pd.DataFrame(
        [
            {
                "被执行人姓名/名称": court["subject_name"],
                "统一社会信用代码/身份证号码": court["uscc"],
                "执行法院": court["authority_name"],
                "案号": court["doc_number"],
                "发布时间": str(pd.Timestamp(court["decision_date"]).date()),
                "失信被执行人行为具体情形": "有履行能力而拒不履行生效法律文书确定义务",
                "撤销日期": "2026-06-29",
                "撤销原因": "已履行完毕",
            }
        ]
    ).reindex(columns=DISHONEST.standard_headers()).astype(object).fillna("").to_csv(
        landing / "court" / "20260701_dishonest_debtor.csv", index=False, encoding="utf-8-sig"
    )
    rows = [
        {
            "操作类型": "异议申请",
            "原文书编号": w["doc_number"],
            "统一社会信用代码/身份证号码": w["uscc"],
            "信息项编码": w["item_code"],
            "生效日期": "2026-06-24",
        },
        {
            "操作类型": "异议办结",
            "原文书编号": w["doc_number"],
            "统一社会信用代码/身份证号码": w["uscc"],
            "信息项编码": w["item_code"],
            "生效日期": "2026-06-26",
            "处理结果": "采纳",
        },
        {
            "操作类型": "更正",
            "原文书编号": v["doc_number"],
            "统一社会信用代码/身份证号码": v["uscc"],
            "信息项编码": v["item_code"],
            "生效日期": "2026-06-28",
            "更正后信息项编码": "PENALTY_SEVERE",
            "更正后失信严重程度": "严重",
        },
    ]
    pd.DataFrame(rows).reindex(columns=CHANGES.standard_headers()).astype(object).fillna("").to_csv(
        landing / "ndrc" / "20260701_credit_change.csv", index=False, encoding="utf-8-sig"
    )
    pd.DataFrame(
        [
            {
                "行政相对人名称": y["subject_name"],
                "行政相对人类别": "法人及非法人组织",
                "行政相对人代码_1(统一社会信用代码)": y["uscc"],
                "行政处罚决定书文号": "黑samr罚字〔2026〕SIMPLE1号",
                "处罚类别": "罚款",
                "罚款金额（万元）": "0.5",
                "适用程序": "简易程序",
                "处罚决定日期": "2026-06-20",
                "处罚机关": "哈尔滨市市场监督管理局",
                "数据来源单位": "黑龙江省市场监督管理局",
            }
        ]
    ).reindex(columns=PENALTY.standard_headers()).astype(object).fillna("").to_csv(
        landing / "samr" / "20260701_penalty.csv", index=False, encoding="utf-8-sig"
    )


def test_lifecycle_changes_over_two_nights_and_their_audit(province, tmp_path):
    root = tmp_path / "prov"
    shutil.copytree(province, root)
    landing, home = root / "landing", tmp_path / "home"
    env = {"CREDIT_DB_URL": ""}
    d1 = run_cli(
        "run", "--as-of", AS_OF, "--landing", str(landing), "--home", str(home), "--json", env=env
    )
    assert d1.returncode == 0, d1.stderr[-2000:]
    day1 = json.loads(d1.stdout)
    store = Store.open(f"sqlite:///{home / 'credit.db'}", home)
    court, w, v, y = _pick(store)
    _write_day2(landing, court, w, v, y)
    d2 = run_cli(
        "run", "--as-of", DAY2, "--landing", str(landing), "--home", str(home), "--json", env=env
    )
    assert d2.returncode == 0, d2.stderr[-2000:]
    with store.engine.connect() as conn:
        over = dict(
            conn.execute(
                sa.text("select uscc, override from entity_results where run_id = :r"),
                {"r": "nightly-20260630"},
            ).all()
        )
        over2 = dict(
            conn.execute(
                sa.text("select uscc, override from entity_results where run_id = :r"),
                {"r": "nightly-20260701"},
            ).all()
        )
        quar = pd.read_sql(
            "select path, reasons from quarantine where run_id = 'nightly-20260701'", conn
        )
    # Day 2: the court removed the listing on 06-29, so the severe-list (D) override is gone.
    assert over[court["uscc"]] == "severe_dishonesty_list" and not over2[court["uscc"]]
    # Nothing of day 2 was quarantined: the re-sent listing is a new version, not a duplicate.
    assert quar.empty, quar
    ex = run_cli(
        "explain", court["uscc"], "--run", "nightly-20260701", "--home", str(home), env=env
    )
    assert (
        ex.returncode == 0 and "已履行完毕" in ex.stdout and "removed from the list" in ex.stdout
    ), [ln for ln in ex.stdout.splitlines() if court["doc_number"] in ln]
    ex = run_cli("explain", w["uscc"], "--run", "nightly-20260701", "--home", str(home), env=env)
    assert "objection upheld" in ex.stdout
    ex = run_cli("explain", y["uscc"], "--run", "nightly-20260701", "--home", str(home), env=env)
    assert "simplified procedure (Art. 18)" in ex.stdout
    # Audit: day 1 as known then is byte-identical; as known now names the new facts.
    then = run_cli(
        "rerun", day1["run_id"], "--mode", "as-known-then", "--home", str(home), "--json", env=env
    )
    t = json.loads(then.stdout)
    assert t["identical"] is True and t["output_sha256"] == day1["output_sha256"]
    now = run_cli(
        "rerun", day1["run_id"], "--mode", "as-known-now", "--home", str(home), "--json", env=env
    )
    n = json.loads(now.stdout)
    assert {court["uscc"], w["uscc"], v["uscc"]} <= set(n["changed_entities"])
    assert y["uscc"] not in n["changed_entities"]  # excluded: never public credit information
    causes = pd.read_csv(
        home / "audits" / day1["run_id"] / "as-known-now" / "causes.csv", encoding="utf-8-sig"
    )
    assert {"redelivery", "objection_filed", "objection_closed", "correction"} <= set(
        causes["cause"]
    )
