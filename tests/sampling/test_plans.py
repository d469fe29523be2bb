"""Double-random plans through the real CLI and store: bounds, capacity, commit-then-draw with the
next publication's hash, one plan per period, re-draw on record, verification, 一公开, results."""

import inspect
import json
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from conftest import REPO, SMALL_ENTITIES, run_cli

from scoring.sampling import doublerandom as dr
from scoring.sampling import plans
from scoring.sampling.rules import SamplingRefused
from scoring.world.province import write_deliveries

RATIOS = "A=0.03,B=0.1,C=0.4,D=0.8"
NEXT_NIGHT = "2026-07-01"


def _cli(home, *args):
    return run_cli("sample", *args, "--home", str(home), "--json", env={"CREDIT_DB_URL": ""})


def _ok(home, *args):
    p = _cli(home, *args)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout)


def _refused(home, *args) -> str:
    p = _cli(home, *args)
    assert p.returncode != 0 and p.stdout == "", p.stdout
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    return lines[0]


def _copy_home(src, dst):
    """A copy of a store's home; its lake and runs folders are named after the database URL: renamed."""
    from scoring.history.folders import db_slug

    shutil.copytree(src, dst, dirs_exist_ok=True)
    old, new = (db_slug(f"sqlite:///{h / 'credit.db'}") for h in (src, dst))
    for sub in ("lake", "runs"):
        if (dst / sub / old).exists():
            (dst / sub / old).rename(dst / sub / new)
    return dst


def _plan_rows(home) -> int:
    eng = sa.create_engine(f"sqlite:///{home / 'credit.db'}")
    with eng.connect() as c:
        return c.execute(sa.text("select count(*) from sampling_plans")).scalar()


def _store(home):
    from scoring.history.store import Store

    return Store.open(f"sqlite:///{home / 'credit.db'}", home)


@pytest.fixture(scope="module")
def two_nights(sqlite_run, province, tmp_path_factory):
    """A copy of the published night, plans committed on it, then the next night published."""
    home = _copy_home(sqlite_run["home"], tmp_path_factory.mktemp("sampling_home"))
    store = _store(home)
    # the test province's entities are not the demo's: give hrb-samr's inspectors conflicts here
    eng = sa.create_engine(f"sqlite:///{home / 'credit.db'}")
    risky = pd.read_sql(
        sa.text(
            "select uscc from entity_results where division_code like '2301%' and tier in "
            "('C', 'D') order by uscc"
        ),
        eng,
    )["uscc"].tolist()
    reg = yaml.safe_load(open(plans.INSPECTORS, encoding="utf-8"))
    for r in reg["inspectors"]:
        if r["inspector_id"] in ("hrb-samr-I01", "hrb-samr-I04", "hrb-samr-I07"):
            k = int(r["inspector_id"][-1])
            r["conflicts"] = [
                {"uscc": u, "reason": "kin" if k == 1 else "prior_case"} for u in risky[k % 3 :: 3]
            ]
    register = tmp_path_factory.mktemp("register") / "inspectors.yaml"
    register.write_text(yaml.safe_dump(reg, allow_unicode=True), encoding="utf-8")
    committed = plans.commit_plan(store, "hrb-samr", RATIOS, inspectors_path=register)
    province_wide = plans.commit_plan(store, "hlj-tax", "A=0.05,B=0.2,C=0.6,D=1")
    left_waiting = plans.commit_plan(store, "dq-samr", RATIOS)
    with pytest.raises(SamplingRefused) as before:
        plans.draw_committed(store, committed["plan_id"])
    nothing = plans.draw_ready(store)  # the DAG's "draw what is ready": nothing yet
    world = tmp_path_factory.mktemp("province_next_night")
    shutil.copytree(province, world, dirs_exist_ok=True)
    write_deliveries(world, NEXT_NIGHT, n_entities=SMALL_ENTITIES, seed=7, defect_rate=0.02)
    night2 = run_cli(
        "run",
        "--as-of",
        NEXT_NIGHT,
        "--landing",
        str(world / "landing"),
        "--home",
        str(home),
        "--json",
        env={"CREDIT_DB_URL": ""},
    )
    assert night2.returncode == 0, night2.stderr[-2000:]
    drawn = _ok(home, "draw", committed["plan_id"])  # through the command line once
    plans.draw_committed(store, province_wide["plan_id"])
    return {
        "home": home,
        "register": register,
        "committed": committed,
        "left_waiting": left_waiting,
        "province_wide": province_wide,
        "before": str(before.value),
        "nothing": nothing,
        "drawn": drawn,
        "night2": json.loads(night2.stdout),
        "province": province,
    }


def test_bounds_are_law_one_line_naming_tier_bound_and_source(sqlite_run, tmp_path):
    _copy_home(sqlite_run["home"], tmp_path)
    line = _refused(
        tmp_path, "commit", "--agency", "hrb-samr", "--ratios", "A=0.03,B=0.1,C=0.4,D=0"
    )
    assert "tier D ratio 0 is outside the bound 0.61–1" in line and "第四十八条" in line
    with pytest.raises(
        SamplingRefused, match="tier B ratio 0.04 is outside the bound 0.05–0.2 .*林甸县"
    ):
        plans.commit_plan(_store(tmp_path), "lindian-samr", "A=0.03,B=0.04,C=0.4,D=0.8")
    assert _plan_rows(tmp_path) == 0


@pytest.mark.parametrize(
    "agency,ratios,kw,words",
    [
        ("hrb-samr", "A=abc,B=0.1,C=0.4,D=0.8", {}, "tier A is not a number"),
        ("hrb-samr", {"A": "0.03", "B": None, "C": 0.4, "D": 0.8}, {}, "tier B is not a number"),
        ("hrb-samr", "A=0.03,B=0.1,C=0.4", {}, "tier D missing"),
        ("hrb-samr", "A=0.03,B=0.1,C=0.4,D=1.5", {}, "outside 0..1"),
        ("no-such-bureau", RATIOS, {}, "unknown department 'no-such-bureau'"),
        ("hrb-samr", RATIOS, {"period": "2026-05"}, "period 2026-05 is closed"),
        ("hrb-samr", RATIOS, {"period": "July"}, "bad period 'July'"),
    ],
)
def test_bad_input_one_clear_line_nothing_drawn(sqlite_run, tmp_path, agency, ratios, kw, words):
    home = _copy_home(sqlite_run["home"], tmp_path)
    with pytest.raises(SamplingRefused) as e:
        plans.commit_plan(_store(home), agency, ratios, **kw)
    assert words in str(e.value) and "\n" not in str(e.value)
    assert _plan_rows(home) == 0


def test_a_register_with_an_inspector_in_two_departments_is_refused(sqlite_run, tmp_path):
    from scoring.history.store import Store

    reg = yaml.safe_load(open(plans.INSPECTORS, encoding="utf-8"))
    reg["inspectors"].append({**reg["inspectors"][0], "agency_id": "hrb-samr"})
    path = tmp_path / "inspectors.yaml"
    path.write_text(yaml.safe_dump(reg, allow_unicode=True), encoding="utf-8")
    home = tmp_path / "home"
    _copy_home(sqlite_run["home"], home)
    store = Store.open(f"sqlite:///{home / 'credit.db'}", home)
    with pytest.raises(SamplingRefused, match="is in two departments"):
        plans.commit_plan(store, "hrb-samr", RATIOS, inspectors_path=path)
    assert _plan_rows(home) == 0


def test_two_plans_of_a_department_over_its_capacity_are_refused(sqlite_run, tmp_path, monkeypatch):
    from scoring.history.store import Store

    home = tmp_path / "home"
    _copy_home(sqlite_run["home"], home)
    store = Store.open(f"sqlite:///{home / 'credit.db'}", home)
    first = plans.commit_plan(store, "hrb-samr", RATIOS, task="routine")
    need = plans.planned_count(first["ingredients"])
    reg = yaml.safe_load(open(plans.AGENCIES, encoding="utf-8"))
    reg["inspection_capacity"]["hrb-samr"] = need * 2 - 1  # room for one such plan, not two
    path = tmp_path / "agencies.yaml"
    path.write_text(yaml.safe_dump(reg, allow_unicode=True), encoding="utf-8")
    with pytest.raises(
        SamplingRefused,
        match=rf"needs {need} inspections and its other plans {need} .*"
        rf"above the capacity {need * 2 - 1}",
    ):
        plans.commit_plan(store, "hrb-samr", RATIOS, task="food-safety", agencies_path=path)
    reg["inspection_capacity"]["hrb-samr"] = need * 2
    path.write_text(yaml.safe_dump(reg, allow_unicode=True), encoding="utf-8")
    plans.commit_plan(store, "hrb-samr", RATIOS, task="food-safety", agencies_path=path)
    # the advisor scales the chosen ratios down to what is left, inside the bounds, and says what each tier loses
    # (what is left after the two plans must exceed the bounds' minimum, whatever the demo province's tier mix)
    reg["inspection_capacity"]["hrb-samr"] = need * 3
    monkeypatch.setattr(plans, "registry", lambda *a, **k: reg)
    adv = plans.advise(store, "hrb-samr", ratios="A=0.05,B=0.2,C=0.6,D=1", capacity=need // 2)
    assert adv["proposal_expected"]["inspections"] <= need // 2
    assert all(
        float(adv["bounds"]["tiers"][t][0])
        <= float(adv["proposal"][t])
        <= float(adv["bounds"]["tiers"][t][1])
        for t in "ABCD"
    )
    assert "scaled down" in adv["statement"] and "(−" in adv["statement"]


def test_no_production_path_takes_a_chosen_seed():
    p = run_cli("sample", "commit", "--agency", "hrb-samr", "--ratios", RATIOS, "--seed", "7")
    assert p.returncode == 2 and "unrecognized arguments: --seed" in p.stderr
    for fn in (
        plans.commit_plan,
        plans.draw_committed,
        plans.draw_ready,
        plans.enter_results,
        plans.advise,
    ):
        assert not [n for n in inspect.signature(fn).parameters if "seed" in n], fn
    dag = (REPO / "dags" / "public_credit_sampling.py").read_text(encoding="utf-8")
    names = re.findall(r'"(\w+)": (?:Param\(|_ratio\()', dag)
    assert {"agency", "period", "task", "ratio_A", "ratio_D", "approver", "reason"} <= set(names)
    assert not [n for n in names if "seed" in n]


def test_the_draw_is_unknown_until_the_next_publication_exists(two_nights):
    c = two_nights["committed"]
    assert "does not exist yet — nothing drawn" in two_nights["before"]
    assert two_nights["nothing"] == []
    [d] = two_nights["drawn"]["drawn"]
    assert d["plan_id"] == c["plan_id"]
    assert d["seed_source"]["run_id"] == two_nights["night2"]["run_id"]
    assert d["seed"] == dr.derive_seed(
        c["commitment_sha256"], two_nights["night2"]["output_sha256"]
    )
    assert c["base"]["run_id"] != two_nights["night2"]["run_id"]


def test_ratio_on_the_whole_tier_and_exclusions_listed(two_nights):
    from scoring.history.store import Store

    home = two_nights["home"]
    store = Store.open(f"sqlite:///{home / 'credit.db'}", home)
    rec = plans.load_plan(store, two_nights["committed"]["plan_id"])
    ing = rec["ingredients"]
    assert rec["exclusions_by_reason"] and sum(rec["exclusions_by_reason"].values()) == len(
        ing["exclusions"]
    )
    drawn = pd.DataFrame(rec["draw"]["drawn"])
    excluded = {(e["tier"], e["position"]) for e in ing["exclusions"]}
    for t in "ABCD":
        n, k = ing["frame"][t], dr.tier_count(ing["ratios"][t], ing["frame"][t])
        free = n - sum(1 for e in excluded if e[0] == t)
        assert (drawn["tier"] == t).sum() == min(k, free)
    assert not excluded & set(zip(drawn["tier"], drawn["position"]))
    assert rec["draw"]["skipped"], "the demo needs excluded entities that were replaced"


def test_one_plan_per_period_redraw_on_record_and_public_file_verifies_alone(two_nights, tmp_path):
    home, plan_id = (
        _copy_home(two_nights["home"], tmp_path / "home"),
        two_nights["committed"]["plan_id"],
    )
    store = _store(home)
    with pytest.raises(
        SamplingRefused, match=rf"already has plan {plan_id} .* needs a named approver and a reason"
    ):
        plans.commit_plan(store, "hrb-samr", RATIOS)
    with pytest.raises(SamplingRefused, match="nothing to re-draw"):
        plans.commit_plan(store, "sh-samr", RATIOS, approver="王局长", reason="x")
    again = plans.commit_plan(
        store, "hrb-samr", RATIOS, approver="王局长", reason="执法人员名录库更新 register updated"
    )
    assert again["redraw"] == {
        "of": plan_id,
        "approver": "王局长",
        "reason": "执法人员名录库更新 register updated",
    }
    folder = (
        home / "public" / "sampling" / "hrb-samr" / f"{two_nights['committed']['period']}-routine"
    )
    doc = json.loads((folder / "plan.json").read_text(encoding="utf-8"))
    assert (
        doc["plan_id"] == again["plan_id"] and doc["status"] == "committed" and doc["draw"] is None
    )
    [old] = doc["abandoned"]
    assert old["plan_id"] == plan_id and old["status"] == "abandoned" and old["draw"]["drawn"]
    assert old["superseded"]["approver"] == "王局长"
    csv = (folder / "plan.csv").read_bytes()
    assert csv.startswith(b"\xef\xbb\xbf") and b"abandoned" in csv and plan_id.encode() in csv
    # an outsider: the one script and the public file, nothing else
    outsider = tmp_path / "outsider"
    outsider.mkdir()
    shutil.copy(dr.__file__, outsider / "doublerandom.py")
    shutil.copy(folder / "plan.json", outsider / "plan.json")
    out = subprocess.run(
        [sys.executable, "-I", "doublerandom.py", "plan.json"],
        cwd=outsider,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and out.stdout.strip() == "identical", out.stdout + out.stderr
    assert plans.verify_plan(store, plan_id, two_nights["register"])["verified"] is True
    # the abandoned draw stays on record
    assert plans.load_plan(store, plan_id)["abandoned"]["by"] == again["plan_id"]


def test_a_plan_abandoned_after_its_seed_was_published_keeps_its_draw(two_nights, tmp_path):
    """Its draw was computable from public values: re-drawing records it before abandoning it."""
    home = _copy_home(two_nights["home"], tmp_path / "home")
    store = _store(home)
    first = two_nights["left_waiting"]["plan_id"]
    assert plans.load_plan(store, first)["status"] == "committed"
    again = plans.commit_plan(
        store, "dq-samr", RATIOS, approver="李处长", reason="名录库更新 register updated"
    )
    old = plans.load_plan(store, first)
    assert old["status"] == "abandoned" and old["draw"]["drawn"] and old["seed_source"]["run_id"]
    assert (
        again["base"]["run_id"] != old["base"]["run_id"]
    )  # the re-draw's seed is a later, unknown publication
    doc = json.loads((plans.public_dir(store, again) / "plan.json").read_text(encoding="utf-8"))
    assert [a["plan_id"] for a in doc["abandoned"]] == [first] and not dr.verify(doc)


def test_verify_catches_an_edited_record(two_nights, tmp_path):
    home = tmp_path / "home"
    _copy_home(two_nights["home"], home)
    plan_id = two_nights["committed"]["plan_id"]
    eng = sa.create_engine(f"sqlite:///{home / 'credit.db'}")
    with eng.begin() as c:
        rec = json.loads(
            c.execute(
                sa.text("select record_json from sampling_plans where plan_id = :p"), {"p": plan_id}
            ).scalar()
        )
        rec["draw"]["drawn"][0]["position"] += 1
        c.execute(
            sa.text("update sampling_plans set record_json = :r where plan_id = :p"),
            {"r": json.dumps(rec), "p": plan_id},
        )
    p = _cli(home, "verify", plan_id)
    assert p.returncode == 1 and json.loads(p.stdout)["checks"]["draw"] is False


def test_only_the_agencys_scope_is_drawn_and_joint_inspections_are_noted(two_nights):
    from scoring.history.store import Store

    home = two_nights["home"]
    store = Store.open(f"sqlite:///{home / 'credit.db'}", home)
    city = plans.load_plan(store, two_nights["committed"]["plan_id"])
    eng = sa.create_engine(f"sqlite:///{home / 'credit.db'}")
    res = pd.read_sql(
        sa.text("select uscc, division_code from entity_results where run_id = :r"),
        eng,
        params={"r": city["base"]["run_id"]},
    ).set_index("uscc")
    t = plans.targets(store, city)
    assert res.loc[t["uscc"], "division_code"].str.startswith("2301").all()
    assert (
        sum(city["ingredients"]["frame"].values())
        == res["division_code"].str.startswith("2301").sum()
    )
    wide = plans.load_plan(
        store, two_nights["province_wide"]["plan_id"]
    )  # drawn after the city's plan
    both = set(t["uscc"]) & set(plans.targets(store, wide)["uscc"])
    assert both and set(wide["joint_with"]) == both  # Art. 54: one joint inspection each
    assert all(v == [city["plan_id"]] for v in wide["joint_with"].values())


def test_recusal_applied_and_logged_teams_and_workload(two_nights):
    from scoring.history.store import Store
    from scoring.sampling.rules import load_register

    home = two_nights["home"]
    store = Store.open(f"sqlite:///{home / 'credit.db'}", home)
    rec = plans.load_plan(store, two_nights["committed"]["plan_id"])
    t = plans.targets(store, rec)
    reg = load_register(two_nights["register"], "hrb-samr")
    conflicted = {(i, u) for i, cs in zip(reg["inspector_id"], reg["conflicts"]) for u, _ in cs}
    for row in t.itertuples():
        assert len(row.inspectors) == 2 and not {(i, row.uscc) for i in row.inspectors} & conflicted
        assert set(row.recused) == {i for i, u in conflicted if u == row.uscc}
        assert len(set(row.units)) == 2
    assert sum(len(r) for r in t["recused"]) >= 5, "recusals must actually apply in this plan"
    shown = _ok(home, "show", rec["plan_id"])
    assert shown["recusals_applied"] == sum(len(r) for r in t["recused"])
    assert max(shown["workload"].values()) - min(shown["workload"].values()) <= 2


def test_results_are_published_masked_and_flow_back_as_tagged_inspection_records(
    two_nights, tmp_path
):
    from scoring.common.catalogue import DEFAULT_CATALOGUE, Catalogue  # noqa: F401
    from scoring.history.store import Store
    from scoring.intake.ingest import read_file, stage_records

    home = tmp_path / "home"
    _copy_home(two_nights["home"], home)
    plan_id = two_nights["committed"]["plan_id"]
    store = Store.open(f"sqlite:///{home / 'credit.db'}", home)
    rec = plans.load_plan(store, plan_id)
    t = plans.targets(store, rec)
    res = pd.DataFrame(
        {
            "uscc": t["uscc"],
            "inspection_date": "2026-07-15",
            "problem_found": [i % 3 == 0 for i in range(len(t))],
        }
    )
    res.astype(str).to_csv(tmp_path / "results.csv", index=False)
    landing = tmp_path / "landing"
    out = _ok(
        home, "results", plan_id, "--file", str(tmp_path / "results.csv"), "--landing", str(landing)
    )
    assert out["entered"] == len(t)
    bad = pd.DataFrame(
        {"uscc": ["91230100MA1B2C3D4E"], "inspection_date": ["2026-07-15"], "problem_found": ["1"]}
    )
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(SamplingRefused, match="is not a target of plan"):
        plans.enter_results(store, plan_id, bad)
    folder = home / "public" / "sampling" / "hrb-samr" / f"{rec['period']}-routine"
    doc = json.loads((folder / "plan.json").read_text(encoding="utf-8"))
    assert sum(1 for x in doc["targets"] if x["result"]) == len(t)
    classes = dict(zip(t["uscc"], t["eval_class"]))
    shown_codes = {x["uscc"] for x in doc["targets"]}
    for u, cls in classes.items():
        if cls in ("legal_person", "unincorporated"):
            assert u in shown_codes
        else:
            assert (
                u not in shown_codes
            )  # individual businesses masked, natural persons never identified
    assert "individual_business" in set(classes.values()), (
        "the demo plan should hold individual businesses"
    )
    # the delivery is a real inspection-result feed: the project's own reader stages it as records
    # tagged with the plan (抽查任务编号)
    [path] = list((landing / "samr").glob("*_inspection_result.csv"))
    raw = read_file(path, provider="samr")
    staged = stage_records(raw, Catalogue.load(), pd.Timestamp("2026-07-31"))
    assert len(staged) == len(t) and set(staged["doc_number"]) == {plan_id}
    assert (staged["item_code"] == "INSPECTION_FAIL").sum() == int(res["problem_found"].sum())


def test_hit_rates_use_only_randomly_drawn_inspections():
    tiers = pd.DataFrame({"uscc": ["E1", "E2", "E3", "E4"], "tier": ["A", "A", "D", "D"]})
    ins = pd.DataFrame(
        {
            "uscc": ["E1", "E2", "E3", "E4", "E1"],
            "item_code": [
                "INSPECTION_PASS",
                "INSPECTION_FAIL",
                "INSPECTION_FAIL",
                "INSPECTION_PASS",
                "INSPECTION_FAIL",
            ],
            "doc_number": ["P1", "P1", "P1", "投诉-1", "投诉-2"],
        }
    )
    assert plans.hit_rates(ins, tiers, {"P1"}) == {"A": 0.5, "B": None, "C": None, "D": 1.0}


def test_calibration_reads_exact_inclusion_probabilities_from_stored_plans(two_nights):
    """`credit calibrate` weights a plan-tagged inspection by its stored plan: k / eligible of the
    entity's tier in that draw, under the plan id and the commitment hash alike; an inspection of
    no plan gets no probability (left out of training)."""
    import numpy as np

    from scoring.calibration.ipw import inclusion_probabilities, stored_plan_probabilities
    from scoring.common.catalogue import Catalogue
    from scoring.history.store import Store

    home = two_nights["home"]
    store = Store.open(f"sqlite:///{home / 'credit.db'}", home)
    rec = plans.load_plan(store, two_nights["committed"]["plan_id"])
    ing = rec["ingredients"]
    got = stored_plan_probabilities(store)
    mine = got[got["plan"] == rec["plan_id"]]
    assert len(mine) == len(rec["draw"]["drawn"]) and len(
        got[got["plan"] == rec["commitment_sha256"]]
    ) == len(mine)
    for t, g in mine.groupby("tier"):
        eligible = ing["frame"][t] - sum(1 for e in ing["exclusions"] if e["tier"] == t)
        assert g["inclusion_prob"].iloc[0] == pytest.approx(len(g) / eligible)
    u = mine["uscc"].iloc[0]
    ins = pd.DataFrame(
        {
            "record_key": [f"{rec['plan_id']}|{u}", f"投诉-20260705-230102-1|{u}"],
            "uscc": [u, u],
            "item_code": "INSPECTION_PASS",
            "decision_date": pd.Timestamp("2026-07-05"),
        }
    )
    p, tier, source = inclusion_probabilities(
        store, ins, ins.iloc[:0], None, None, Catalogue.load()
    )
    assert source.tolist() == ["plan", "not_random"] and np.isnan(p[1])
    assert p[0] == pytest.approx(mine["inclusion_prob"].iloc[0]) and tier[0] == mine["tier"].iloc[0]
