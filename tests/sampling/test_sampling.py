"""Double-random plans: reproducible, exactly rounded, scoped, recusal-safe, tamper-evident."""
import json

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import AS_OF, run_cli
from scoring.sampling.plans import TIERS, assign_inspectors, draw, propose_ratios, tier_count

RATIOS = "A=0.03,B=0.1,C=0.4,D=0.8"


def _sample(home, *extra, db=()):
    p = run_cli("sample", "--agency", "hrb-samr", "--ratios", RATIOS, "--home", str(home), "--json", *db, *extra,
                env={"CREDIT_DB_URL": ""})
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout)


def test_cli_contract_and_rounding(sqlite_run):
    out = _sample(sqlite_run["home"], "--seed", "20260701")
    for key in ("plan_id", "seed", "population_sha256", "algorithm", "drawn", "entities"):
        assert key in out
    eng = sa.create_engine(sqlite_run["url"])
    record = json.loads(pd.read_sql(sa.text("select record_json from sampling_plans where plan_id = :p"), eng,
                                    params={"p": out["plan_id"]})["record_json"].iloc[0])
    ratios = dict(kv.split("=") for kv in RATIOS.split(","))
    for t in TIERS:
        n = record["population_by_tier"][t]
        assert out["drawn"][t] == int(np.floor(float(ratios[t]) * n + 0.5)) == tier_count(float(ratios[t]), n)
    assert len(out["entities"]) == sum(out["drawn"].values())


def test_same_seed_same_draw_and_derived_seed_is_stable(sqlite_run):
    a = _sample(sqlite_run["home"], "--seed", "7")
    b = _sample(sqlite_run["home"], "--seed", "7")
    c = _sample(sqlite_run["home"], "--seed", "8")
    assert a["entities"] == b["entities"] and a["population_sha256"] == b["population_sha256"]
    assert a["entities"] != c["entities"]
    d1, d2 = _sample(sqlite_run["home"]), _sample(sqlite_run["home"])
    assert d1["seed"] == d2["seed"] and d1["entities"] == d2["entities"]


def test_out_of_scope_and_recently_inspected_are_never_drawn(sqlite_run, province):
    out = _sample(sqlite_run["home"], "--ratios", "A=1,B=1,C=1,D=1")
    drawn = set(out["entities"])
    eng = sa.create_engine(sqlite_run["url"])
    res = pd.read_sql("select uscc, division_code from entity_results", eng)
    assert res.set_index("uscc").loc[sorted(drawn), "division_code"].str.startswith("2301").all()
    # What the agency knew of past inspections: the inspection records in the store.
    from scoring.history.inputs import load_inputs
    from scoring.history.store import Store

    store = Store.open(sqlite_run["url"], sqlite_run["home"])
    with store.engine.connect() as conn:
        _, rec, _, _ = load_inputs(store, conn, AS_OF)
    ins = rec[rec["item_code"].isin(["INSPECTION_PASS", "INSPECTION_FAIL"])]
    when = pd.to_datetime(ins["decision_date"])
    recent = set(ins.loc[(when > pd.Timestamp(AS_OF) - pd.Timedelta(days=90)) & (when <= AS_OF), "uscc"])
    in_scope = set(res.loc[res["division_code"].str.startswith("2301"), "uscc"])
    assert recent & in_scope, "the test needs recently inspected entities in scope"
    assert not (drawn & recent)


def test_a_tampered_record_fails_verification(sqlite_run):
    out = _sample(sqlite_run["home"], "--seed", "99")
    ok = run_cli("sample", "verify", out["plan_id"], "--home", str(sqlite_run["home"]), "--json",
                 env={"CREDIT_DB_URL": ""})
    assert ok.returncode == 0 and json.loads(ok.stdout)["verified"] is True
    eng = sa.create_engine(sqlite_run["url"])
    with eng.begin() as c:
        rec = json.loads(c.execute(sa.text("select record_json from sampling_plans where plan_id = :p"),
                                   {"p": out["plan_id"]}).scalar())
        rec["entities"] = rec["entities"][1:] + ["91330100799655058B"]
        c.execute(sa.text("update sampling_plans set record_json = :r where plan_id = :p"),
                  {"r": json.dumps(rec), "p": out["plan_id"]})
    bad = run_cli("sample", "verify", out["plan_id"], "--home", str(sqlite_run["home"]), "--json",
                  env={"CREDIT_DB_URL": ""})
    assert bad.returncode == 1 and json.loads(bad.stdout)["verified"] is False


@pytest.mark.postgres
def test_same_draw_on_postgresql(sqlite_run, province, pg_url, tmp_path):
    p = run_cli("run", "--as-of", AS_OF, "--landing", str(province / "landing"), "--home", str(tmp_path),
                "--db", pg_url, "--json")
    assert p.returncode == 0, p.stderr[-2000:]
    on_pg = _sample(tmp_path, "--seed", "7", db=("--db", pg_url))
    on_sqlite = _sample(sqlite_run["home"], "--seed", "7")
    assert on_pg["entities"] == on_sqlite["entities"]
    assert on_pg["population_sha256"] == on_sqlite["population_sha256"] and on_pg["plan_id"] == on_sqlite["plan_id"]


@settings(max_examples=80, deadline=None)
@given(st.integers(3, 12), st.integers(1, 40), st.integers(0, 2**31), st.data())
def test_no_inspector_is_drawn_for_an_entity_they_are_recused_from(n_insp, n_ent, seed, data):
    ents = [f"E{i:03d}" for i in range(n_ent)]
    ids = [f"I{j}" for j in range(n_insp)]
    conflicts = {i: tuple(data.draw(st.lists(st.sampled_from(ents), max_size=n_ent, unique=True))) for i in ids}
    reg = pd.DataFrame({"inspector_id": ids, "conflicts": [conflicts[i] for i in ids]})
    drawn = pd.DataFrame({"uscc": ents, "tier": "B"})
    free = {e: [i for i in ids if e not in conflicts[i]] for e in ents}
    if any(len(v) < 2 for v in free.values()):
        with pytest.raises(ValueError):
            assign_inspectors(drawn, reg, seed)
        return
    team = assign_inspectors(drawn, reg, seed)
    for row in team.itertuples():
        members = row.inspectors.split(";")
        assert len(set(members)) >= 2
        assert all(row.uscc not in conflicts[m] for m in members)


def test_load_is_balanced_without_recusals():
    reg = pd.DataFrame({"inspector_id": [f"I{j}" for j in range(7)], "conflicts": [()] * 7})
    team = assign_inspectors(pd.DataFrame({"uscc": [f"E{i}" for i in range(50)], "tier": "B"}), reg, 3)
    load = pd.Series(";".join(team["inspectors"]).split(";")).value_counts()
    assert load.max() - load.min() <= 1


def test_advisor_finds_more_problems_than_uniform_sampling(sqlite_run, province):
    """Judged on the demo province's ground truth: the latent risk behind every inspection outcome."""
    p = run_cli("sample", "advise", "--agency", "hlj-samr", "--capacity", "300", "--home", str(sqlite_run["home"]),
                "--json", env={"CREDIT_DB_URL": ""})
    assert p.returncode == 0, p.stderr[-2000:]
    adv = json.loads(p.stdout)
    assert adv["proposal_expected"]["inspections"] <= 300
    truth = pd.read_csv(province / "ground_truth" / "entities.csv", dtype={"uscc": str}).set_index("uscc")
    p_problem = 1 / (1 + np.exp(-(-1.7 + 1.3 * truth["latent_risk"])))  # the generator's outcome model
    eng = sa.create_engine(sqlite_run["url"])
    pop = pd.read_sql(sa.text("select uscc, tier from entity_results where run_id = :r"), eng,
                      params={"r": sqlite_run["summary"]["run_id"]})
    smart = draw(pop, adv["proposal"], seed=1)
    n = len(smart)
    uniform_rate = n / len(pop)
    found_smart = p_problem.reindex(smart["uscc"]).sum()
    found_uniform = np.mean([p_problem.reindex(draw(pop, {t: uniform_rate for t in TIERS}, seed=s)["uscc"]).sum()
                             for s in range(5)])
    assert found_smart > found_uniform
    assert adv["proposal_expected"]["findings"] > adv["uniform_expected"]["findings"]


def test_propose_ratios_respects_bounds_and_capacity():
    counts = {"A": 1000, "B": 5000, "C": 400, "D": 100}
    hit = {"A": 0.05, "B": 0.2, "C": 0.5, "D": 0.7}
    bounds = {"A": [0, 0.05], "B": [0.03, 0.2], "C": [0.21, 0.6], "D": [0.61, 1.0]}
    r = propose_ratios(counts, hit, 600, bounds)
    assert all(bounds[t][0] <= r[t] <= bounds[t][1] for t in TIERS)
    assert sum(tier_count(r[t], counts[t]) for t in TIERS) <= 600
    assert tier_count(r["D"], 100) == 100 and tier_count(r["C"], 400) == 240
    with pytest.raises(ValueError):
        propose_ratios(counts, hit, 100, bounds)


def test_entities_drawn_by_two_agencies_become_one_joint_inspection(sqlite_run):
    home = str(sqlite_run["home"])
    city = run_cli("sample", "--agency", "hrb-samr", "--ratios", "A=1,B=1,C=1,D=1", "--seed", "5", "--home", home,
                   "--json", env={"CREDIT_DB_URL": ""})
    prov = run_cli("sample", "--agency", "hlj-tax", "--ratios", "A=0.5,B=0.5,C=0.5,D=0.5", "--seed", "5",
                   "--home", home, "--json", env={"CREDIT_DB_URL": ""})
    assert city.returncode == 0 and prov.returncode == 0, prov.stderr
    eng = sa.create_engine(sqlite_run["url"])
    rec = json.loads(pd.read_sql(sa.text("select record_json from sampling_plans where plan_id = :p"), eng,
                                 params={"p": json.loads(prov.stdout)["plan_id"]})["record_json"].iloc[0])
    both = set(json.loads(city.stdout)["entities"]) & set(rec["entities"])
    assert both and set(rec["joint_with"]) == both
    assert all("hrb-samr" in v for v in rec["joint_with"].values())
