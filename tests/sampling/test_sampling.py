"""Double-random plans on real stores: the same commitment on PostgreSQL, and the ratio advisor."""

import json

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import run_cli
from test_plans import _copy_home

from scoring.sampling import doublerandom as dr
from scoring.sampling.commit import sample_population
from scoring.sampling.plans import propose_ratios
from scoring.sampling.rules import TIERS, SamplingRefused

RATIOS = "A=0.03,B=0.1,C=0.4,D=0.8"


def _commit(home, db=()):
    p = run_cli(
        "sample",
        "commit",
        "--agency",
        "hrb-samr",
        "--ratios",
        RATIOS,
        "--home",
        str(home),
        "--json",
        *db,
        env={"CREDIT_DB_URL": ""},
    )
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout)


@pytest.mark.postgres
def test_same_commitment_on_postgresql(sqlite_run, province, pg_url, tmp_path):
    """The same night on both stores gives the same frozen ingredients, hence the same draw for any
    later published value (the draw is a pure function of the two)."""
    p = run_cli(
        "run",
        "--as-of",
        "2026-06-30",
        "--landing",
        str(province / "landing"),
        "--home",
        str(tmp_path),
        "--db",
        pg_url,
        "--json",
    )
    assert p.returncode == 0, p.stderr[-2000:]
    on_pg = _commit(tmp_path, db=("--db", pg_url))
    on_sqlite = _commit(_copy_home(sqlite_run["home"], tmp_path / "lite"))
    assert on_pg["commitment_sha256"] == on_sqlite["commitment_sha256"]
    assert on_pg["frame"] == on_sqlite["frame"] and on_pg["planned"] == on_sqlite["planned"]


def test_advisor_finds_more_problems_than_uniform_sampling(sqlite_run, province, tmp_path):
    """Judged on the demo province's ground truth: the latent risk behind every inspection outcome."""
    home = _copy_home(sqlite_run["home"], tmp_path / "home")
    p = run_cli(
        "sample",
        "advise",
        "--agency",
        "hlj-samr",
        "--capacity",
        "300",
        "--home",
        str(home),
        "--json",
        env={"CREDIT_DB_URL": ""},
    )
    assert p.returncode == 0, p.stderr[-2000:]
    adv = json.loads(p.stdout)
    assert adv["proposal_expected"]["inspections"] <= 300
    assert all(
        float(adv["bounds"]["tiers"][t][0])
        <= float(adv["proposal"][t])
        <= float(adv["bounds"]["tiers"][t][1])
        for t in TIERS
    )
    truth = pd.read_csv(province / "ground_truth" / "entities.csv", dtype={"uscc": str}).set_index(
        "uscc"
    )
    p_problem = 1 / (
        1 + np.exp(-(-1.7 + 1.3 * truth["latent_risk"]))
    )  # the generator's outcome model
    eng = sa.create_engine(sqlite_run["url"])
    pop = pd.read_sql(
        sa.text("select uscc, tier from entity_results where run_id = :r"),
        eng,
        params={"r": sqlite_run["summary"]["run_id"]},
    )
    smart = sample_population(pop, adv["proposal"], "v", agency_id="hlj-samr", period="2026-07")
    uniform_rate = len(smart) / len(pop)
    found_smart = p_problem.reindex(smart["uscc"]).sum()
    found_uniform = np.mean(
        [
            p_problem.reindex(
                sample_population(
                    pop, {t: uniform_rate for t in TIERS}, f"v{s}", agency_id="x", period="2026-07"
                )["uscc"]
            ).sum()
            for s in range(5)
        ]
    )
    assert found_smart > found_uniform
    assert adv["proposal_expected"]["findings"] > adv["uniform_expected"]["findings"]


def test_propose_ratios_respects_bounds_and_capacity():
    counts = {"A": 1000, "B": 5000, "C": 400, "D": 100}
    hit = {"A": 0.05, "B": 0.2, "C": 0.5, "D": 0.7}
    bounds = {"A": ["0", "0.05"], "B": ["0.03", "0.2"], "C": ["0.21", "0.6"], "D": ["0.61", "1"]}
    r = propose_ratios(counts, hit, 600, bounds)
    assert all(float(bounds[t][0]) <= float(r[t]) <= float(bounds[t][1]) for t in TIERS)
    assert sum(dr.tier_count(r[t], counts[t]) for t in TIERS) <= 600
    assert dr.tier_count(r["D"], 100) == 100 and dr.tier_count(r["C"], 400) == 240
    with pytest.raises(SamplingRefused, match="minimum ratios"):
        propose_ratios(counts, hit, 100, bounds)
