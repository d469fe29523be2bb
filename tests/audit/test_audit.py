"""Audit reruns: day 1, then corrections/objections/repairs/late records and new policy and
catalogue versions, day 2, then rerun day 1 — identical as known then, exactly the expected
entities changed as known now. On SQLite and on the real PostgreSQL."""

import json
import shutil

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from conftest import AS_OF, REPO, run_cli

from scoring.common.catalogue import Catalogue
from scoring.evaluation.evaluate import Policy, apply_changes, classify_records
from scoring.history.inputs import load_inputs
from scoring.history.store import Store
from scoring.intake.layouts import CHANGES, PENALTY

DAY2 = "2026-07-01"


def _pick(store, as_of):
    """Three entities with one telling record each, and one for a post-as-of objection."""
    with store.engine.connect() as conn:
        ent, rec, chg, _ = load_inputs(store, conn, as_of)
    rec = apply_changes(rec, chg, as_of)
    cls = classify_records(rec, Catalogue.load(), Policy.shipped_in_force(as_of), as_of)
    legal = cls[cls["subject_type"] != "natural"]
    per = legal.groupby("uscc").size()
    single = legal[legal["uscc"].isin(per[per == 1].index) & legal["counts"]]
    changed_before = set(chg["subject_code"]) if len(chg) else set()
    single = single[~single["uscc"].isin(changed_before)].sort_values("record_key")
    general = single[
        single["item_code"].isin(
            [
                "PENALTY_GENERAL",
                "TAX_ARREARS",
                "SOCIAL_INSURANCE_ARREARS",
                "HOUSING_FUND_ARREARS",
                "UTILITY_ARREARS",
                "COURT_JUDGMENT",
                "COMMITMENT_BREACH",
            ]
        )
    ]
    x = general.iloc[0]
    # A repair is allowed after the general minimum (3 months) in force on its date.
    z = general[
        (general["uscc"] != x["uscc"])
        & (pd.to_datetime(general["decision_date"]) < pd.Timestamp("2026-03-01"))
    ].iloc[0]
    w = general[~general["uscc"].isin([x["uscc"], z["uscc"]])].iloc[0]
    active = ent[
        (ent["entity_status"] == "存续") & (pd.to_datetime(ent["registered_date"]) < "2020-01-01")
    ]
    y = active[~active["uscc"].isin(set(rec["uscc"]))].sort_values("uscc").iloc[0]
    return x, y, z, w


def _write_day2(landing, x, y, z, w):
    ch = (
        pd.DataFrame(
            [
                {
                    "操作类型": "撤销",
                    "原文书编号": x["doc_number"],
                    "统一社会信用代码/身份证号码": x["uscc"],
                    "信息项编码": x["item_code"],
                    "生效日期": "2026-06-20",
                    "说明": "处罚决定被复议撤销",
                },
                {
                    "操作类型": "信用修复",
                    "原文书编号": z["doc_number"],
                    "统一社会信用代码/身份证号码": z["uscc"],
                    "信息项编码": z["item_code"],
                    "生效日期": "2026-06-15",
                    "说明": "已补缴税款",
                },
                {
                    "操作类型": "异议标注",
                    "原文书编号": w["doc_number"],
                    "统一社会信用代码/身份证号码": w["uscc"],
                    "信息项编码": w["item_code"],
                    "生效日期": DAY2,
                    "说明": "当事人提出异议",
                },
            ]
        )
        .reindex(columns=CHANGES.standard_headers())
        .astype(object)
        .fillna("")
    )
    ch.to_csv(landing / "ndrc" / "20260701_credit_change.csv", index=False, encoding="utf-8-sig")
    pen = (
        pd.DataFrame(
            [
                {
                    "行政相对人名称": y["subject_name"],
                    "行政相对人类别": "法人及非法人组织",
                    "行政相对人代码_1(统一社会信用代码)": y["uscc"],
                    "行政处罚决定书文号": "黑samr罚字〔2026〕LATE1号",
                    "处罚类别": "罚款",
                    "罚款金额（万元）": "2.5",
                    "处罚决定日期": "2026-06-01",
                    "公示截止期": "2026-12-01",
                    "处罚机关": "哈尔滨市市场监督管理局",
                    "数据来源单位": "黑龙江省市场监督管理局",
                }
            ]
        )
        .reindex(columns=PENALTY.standard_headers())
        .astype(object)
        .fillna("")
    )
    pen.to_csv(landing / "samr" / "20260701_penalty.csv", index=False, encoding="utf-8-sig")


def _new_versions(tmp_path):
    pol = yaml.safe_load((REPO / "config" / "policy" / "v1.yaml").read_text(encoding="utf-8"))
    pol.setdefault("overrides", {})["pending_objection"] = "count"  # a new document (Art. 39)
    pol["version_label"] = "2026.2-test"
    pol["items"]["PENALTY_GENERAL"]["points"] = -95
    cat = yaml.safe_load((REPO / "config" / "catalogue" / "v1.yaml").read_text(encoding="utf-8"))
    cat["version_label"] = "2026.2-test"
    cat["gates"]["max_quarantine_share"] = 0.2
    pp, cp = tmp_path / "policy_v2.yaml", tmp_path / "catalogue_v2.yaml"
    pp.write_text(yaml.safe_dump(pol, allow_unicode=True), encoding="utf-8")
    cp.write_text(yaml.safe_dump(cat, allow_unicode=True), encoding="utf-8")
    return pp, cp


def _scenario(province, tmp_path, db_url):
    landing_root = tmp_path / "prov"
    shutil.copytree(province, landing_root)
    landing = landing_root / "landing"
    home = tmp_path / "home"
    env = {"CREDIT_DB_URL": ""}
    db = ["--db", db_url] if db_url else []
    d1 = run_cli(
        "run",
        "--as-of",
        AS_OF,
        "--landing",
        str(landing),
        "--home",
        str(home),
        "--json",
        *db,
        env=env,
    )
    assert d1.returncode == 0, d1.stderr[-2000:]
    day1 = json.loads(d1.stdout)
    store = Store.open(db_url or f"sqlite:///{home / 'credit.db'}", home)
    x, y, z, w = _pick(store, AS_OF)
    _write_day2(landing, x, y, z, w)
    pp, cp = _new_versions(tmp_path)
    d2 = run_cli(
        "run",
        "--as-of",
        DAY2,
        "--landing",
        str(landing),
        "--home",
        str(home),
        "--json",
        "--policy",
        str(pp),
        "--catalogue",
        str(cp),
        *db,
        env=env,
    )
    assert d2.returncode == 0, d2.stderr[-2000:]
    day2 = json.loads(d2.stdout)
    return {
        "home": home,
        "db": db,
        "env": env,
        "day1": day1,
        "day2": day2,
        "store": store,
        "expected": {x["uscc"], y["uscc"], z["uscc"]},
        "untouched": w["uscc"],
    }


def _snapshot(store, home):
    with store.engine.connect() as conn:
        runs = pd.read_sql("select * from runs order by run_id", conn)
        pubs = pd.read_sql("select * from publications order by run_id, agency_id, path", conn)
        res = pd.read_sql("select count(*) as n from entity_results", conn)
    files = sorted(
        (p.relative_to(home).as_posix(), p.stat().st_size)
        for p in (home / "outbox").rglob("*")
        if p.is_file()
    )
    return runs, pubs, res, files


def _check(s):
    d1 = s["day1"]
    assert s["day2"]["status"] == "published"
    with s["store"].engine.connect() as conn:
        man2 = json.loads(
            conn.execute(
                sa.text("select manifest_json from runs where run_id = 'nightly-20260701'")
            ).scalar()
        )
        man1 = json.loads(
            conn.execute(
                sa.text("select manifest_json from runs where run_id = 'nightly-20260630'")
            ).scalar()
        )
    assert (
        man2["policy_sha256"] != man1["policy_sha256"]
        and man2["catalogue_sha256"] != man1["catalogue_sha256"]
    )
    before = _snapshot(s["store"], s["home"])
    then = run_cli(
        "rerun",
        d1["run_id"],
        "--mode",
        "as-known-then",
        "--home",
        str(s["home"]),
        "--json",
        *s["db"],
        env=s["env"],
    )
    assert then.returncode == 0, then.stderr[-2000:]
    t = json.loads(then.stdout)
    assert (
        t["identical"] is True
        and t["output_sha256"] == d1["output_sha256"]
        and t["changed_entities"] == []
    )
    now = run_cli(
        "rerun",
        d1["run_id"],
        "--mode",
        "as-known-now",
        "--home",
        str(s["home"]),
        "--json",
        *s["db"],
        env=s["env"],
    )
    assert now.returncode == 0, now.stderr[-2000:]
    n = json.loads(now.stdout)
    assert n["identical"] is False
    assert set(n["changed_entities"]) == s["expected"]
    assert s["untouched"] not in n["changed_entities"]
    causes = pd.read_csv(
        s["home"] / "audits" / d1["run_id"] / "as-known-now" / "causes.csv", encoding="utf-8-sig"
    )
    assert set(causes["cause"]) == {"revocation", "repair", "late_delivery"}
    after = _snapshot(s["store"], s["home"])
    for a, b in zip(before, after):  # a rerun never publishes and never alters stored runs
        if isinstance(a, pd.DataFrame):
            pd.testing.assert_frame_equal(a, b)
        else:
            assert a == b


def test_audit_rerun_on_sqlite(province, tmp_path):
    _check(_scenario(province, tmp_path, None))


@pytest.mark.postgres
def test_audit_rerun_on_postgresql(province, tmp_path, pg_url):
    _check(_scenario(province, tmp_path, pg_url))
