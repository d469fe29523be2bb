"""Policy v2 and catalogue v2 apply from their effective date: a May night runs under v1, the June
night under v2, and rerunning the May night afterwards gives its original bytes."""

import json

import sqlalchemy as sa
from conftest import run_cli

from scoring.common.catalogue import Catalogue
from scoring.common.config import CONFIG_DIR
from scoring.evaluation.evaluate import Policy

MAY, JUNE = "2026-05-31", "2026-06-30"


def test_nights_before_the_effective_date_keep_v1_and_rerun_identically(tmp_path):
    from scoring.world.province import write_deliveries

    out, home = tmp_path / "province", tmp_path / "home"
    env = {"CREDIT_DB_URL": ""}
    write_deliveries(out, MAY, n_entities=1200, seed=5, defect_rate=0.02)
    may_files = {p.name for p in (out / "landing").rglob("*.*")}
    assert not any(
        "tax_credit_rating" in f or "commitment_result" in f for f in may_files
    )  # not in catalogue v1
    p = run_cli(
        "run",
        "--as-of",
        MAY,
        "--landing",
        str(out / "landing"),
        "--home",
        str(home),
        "--json",
        env=env,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    may = json.loads(p.stdout)
    write_deliveries(out, JUNE, n_entities=1200, seed=5, defect_rate=0.02)
    june_files = {p.name for p in (out / "landing").rglob("*.*")} - may_files
    assert {"20260630_tax_credit_rating.xlsx", "20260630_commitment_result.csv"} <= june_files
    p = run_cli(
        "run",
        "--as-of",
        JUNE,
        "--landing",
        str(out / "landing"),
        "--home",
        str(home),
        "--json",
        env=env,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    june = json.loads(p.stdout)
    assert june["status"] == "published"

    eng = sa.create_engine(f"sqlite:///{home / 'credit.db'}")
    with eng.connect() as conn:
        man = {
            r.run_id: json.loads(r.manifest_json)
            for r in conn.execute(sa.text("select run_id, manifest_json from runs"))
        }
        kept = conn.execute(
            sa.text(
                "select count(*) from entity_results where run_id = 'nightly-20260630' "
                "and reasons like '%R006%'"
            )
        ).scalar()
        tax_a = conn.execute(
            sa.text(
                "select count(*) from entity_results where run_id = 'nightly-20260630' "
                "and reasons like '%R007%'"
            )
        ).scalar()
    v1, v2 = (
        Policy.load(CONFIG_DIR / "policy" / "v1.yaml"),
        Policy.load(CONFIG_DIR / "policy" / "v2.yaml"),
    )
    assert man["nightly-20260531"]["policy_sha256"] == v1.sha256
    assert man["nightly-20260630"]["policy_sha256"] == v2.sha256
    assert (
        man["nightly-20260531"]["catalogue_sha256"]
        == Catalogue.load(CONFIG_DIR / "catalogue" / "v1.yaml").sha256
    )
    assert (
        man["nightly-20260630"]["catalogue_sha256"]
        == Catalogue.load(CONFIG_DIR / "catalogue" / "v2.yaml").sha256
    )
    assert kept > 0 and tax_a > 0  # the new feeds reached the scores
    # Under v1 most entities were B; under v2 most are A.
    assert may["tiers"]["B"] > may["tiers"]["A"] and june["tiers"]["A"] > june["tiers"]["B"]

    p = run_cli("rerun", "nightly-20260531", "--home", str(home), "--json", env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    rerun = json.loads(p.stdout)
    assert rerun["identical"] and rerun["output_sha256"] == may["output_sha256"]
