"""The synthetic world: follows its parameter file, is not the hand policy, draws
inspections the way a double-random system does, and refuses bad parameter files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import run_cli

from scoring.calibration.compare import ipw_weights
from scoring.calibration.features import decayed_counts, point_in_time_records, policy_half_lives
from scoring.calibration.scores import policy_scores
from scoring.common.catalogue import Catalogue
from scoring.evaluation.evaluate import Policy
from scoring.sampling.doublerandom import tier_count
from scoring.world.experiment import store_frames
from scoring.world.params import DEFAULT_WORLD, MIRROR_WORLD, WorldParamsError, load_world
from scoring.world.province import build_world

N = 2000


@pytest.fixture(scope="module")
def default_world():
    return build_world(N, 11)


@pytest.fixture(scope="module")
def mirror_world():
    return build_world(N, 11, MIRROR_WORLD)


def _hand_view(world):
    """Hand-policy scores of every inspection on the day before it (point-in-time, as calibration
    builds them), with the inspections' draw columns."""
    cat = Catalogue.load()
    hand = Policy.shipped_in_force("2022-07-01")
    ins, rec, chg = store_frames(world)
    rows, pairs, features = point_in_time_records(ins, rec, chg, cat, hand)
    X = pd.DataFrame(
        decayed_counts(pairs, len(rows), features, policy_half_lives(hand)), columns=features
    )
    score, _ = policy_scores(X, features, hand)
    return ins, rows, score


def test_deterministic_per_seed(default_world):
    again = build_world(N, 11)
    pd.testing.assert_frame_equal(default_world.records, again.records)
    pd.testing.assert_frame_equal(default_world.entities, again.entities)
    pd.testing.assert_frame_equal(default_world.changes, again.changes)
    other = build_world(N, 12)
    assert not other.records[["decision_date", "kind"]].equals(
        default_world.records[["decision_date", "kind"]]
    )


def test_hand_policy_is_not_the_oracle_in_the_default_world_but_is_in_the_mirror(
    default_world, mirror_world
):
    """Catches the generator drifting back to mirroring the policy: in the default world the truth's
    risk on an inspection day is far from a function of the hand score; in the mirror it is one."""
    ins, rows, score = _hand_view(default_world)
    rnd = (ins["inspection_mode"] == "random").to_numpy()
    rho = pd.Series(-score[rnd]).corr(
        pd.Series(ins["oracle_logit"].to_numpy()[rnd]), method="spearman"
    )
    assert rho < 0.6, rho
    ins_m, _, score_m = _hand_view(mirror_world)
    rnd_m = (ins_m["inspection_mode"] == "random").to_numpy()
    rho_m = pd.Series(-score_m[rnd_m]).corr(
        pd.Series(ins_m["oracle_logit"].to_numpy()[rnd_m]), method="spearman"
    )
    assert rho_m > 0.95, rho_m


def test_inspections_are_monthly_draws_by_tier_at_the_agency_ratios(default_world):
    params = load_world(DEFAULT_WORLD)
    rec = default_world.records
    ins = rec[rec["kind"] == "INSPECTION"]
    rnd = ins[ins["inspection_mode"] == "random"]
    assert (
        set(rnd["tier_at_draw"]) <= set("ABCD")
        and rnd["inclusion_prob"].between(0, 1, inclusive="right").all()
    )
    # Per month and tier: k = the sampling code's rounding of ratio/12 x the eligible stratum.
    # Per month and tier: k = the sampling code's rounding of ratio/12 x the whole tier, drawn
    # among the eligible ones (excluded entities replaced), all from one committed plan.
    for (month, tier), g in rnd.groupby(["draw_month", "tier_at_draw"]):
        n, eligible = int(g["tier_size"].iloc[0]), int(g["represents"].iloc[0])
        k = tier_count(str(params["inspections"]["ratios_per_year"][tier] / 12), n)
        assert len(g) == min(k, eligible) and eligible <= n, (month, tier)
        assert g["inclusion_prob"].iloc[0] == pytest.approx(len(g) / eligible)
        assert g["plan_id"].nunique() == 1 and len(g["plan_id"].iloc[0]) == 64
    # Riskier tiers are drawn at higher rates (a small province's A stratum may round to no draws).
    p = rnd.groupby("tier_at_draw")["inclusion_prob"].mean()
    present = [t for t in "ABCD" if t in p.index]
    assert {"B", "C", "D"} <= set(present) and all(
        p[a] < p[b] for a, b in zip(present, present[1:])
    ), p
    # Complaint-driven inspections exist, are marked, and carry no inclusion probability.
    comp = ins[ins["inspection_mode"] == "complaint"]
    assert len(comp) > 0 and comp["inclusion_prob"].isna().all()
    assert (default_world.records.loc[comp.index, "doc_number"].str.startswith("投诉-")).all()
    assert (comp["plan_id"] == "").all()


def test_ipw_weights_sum_to_the_population_they_represent(default_world):
    ins, _, _ = store_frames(default_world)
    w = ipw_weights(ins["inclusion_prob"].to_numpy())
    assert (w[(ins["inspection_mode"] == "complaint").to_numpy()] == 0).all()
    rnd = ins[ins["inspection_mode"] == "random"].assign(
        w=w[(ins["inspection_mode"] == "random").to_numpy()]
    )
    per = rnd.groupby(["draw_month", "tier_at_draw"]).agg(w=("w", "sum"), n=("represents", "first"))
    np.testing.assert_allclose(per["w"], per["n"], rtol=1e-9)
    # Each month the strata together stand for no more entities than exist that month.
    alive = default_world.entities["reg_date"]
    for month, n in per.groupby(level=0)["n"].sum().items():
        assert n <= (alive <= pd.Timestamp(month + "-01")).sum()


def test_draws_tier_with_the_policy_in_force_and_calibration_reconstructs_those_tiers(
    default_world,
):
    """The monthly draws tier with the policy in force that evening (v1, then v2 from 2026-06-01,
    whose clean entities are A), and `credit calibrate`'s reconstruction of a plan-tagged
    inspection's tier at the draw (scoring.calibration.ipw, from the store's records) agrees with
    the tier the world drew it from. (The store view here lacks catalogue v2's commitment checks,
    so a few entities come out a tier better.)"""
    from scoring.calibration.ipw import reconstructed_tiers

    ins, rec, chg = store_frames(default_world)
    rnd = ins[ins["inspection_mode"] == "random"].reset_index(drop=True)
    after = (rnd["decision_date"] >= pd.Timestamp("2026-06-01")).to_numpy()
    a_share = lambda m: float((rnd.loc[m, "tier_at_draw"] == "A").mean())  # noqa: E731
    assert a_share(after) > 3 * a_share(~after), (a_share(after), a_share(~after))
    ent = default_world.entities
    registered = pd.Series(pd.to_datetime(ent["reg_date"]).to_numpy(), index=ent["uscc"].to_numpy())
    got = reconstructed_tiers(rnd, rec, chg, registered, Catalogue.in_force("2027-12-31"))
    assert (got == rnd["tier_at_draw"].to_numpy()).mean() >= 0.97


def test_an_inspection_never_sees_its_own_outcome(default_world):
    """INSPECTION_FAIL as a feature comes only from strictly earlier inspections: flipping the
    outcomes of one day's inspections changes no feature row of that day, but does change later ones."""
    cat, hand = Catalogue.load(), Policy.shipped_in_force("2022-07-01")
    ins, rec, chg = store_frames(default_world)
    # A day on which some entity is inspected that is inspected again within 300 days.
    nxt = ins.groupby("uscc")["decision_date"].shift(-1)
    gap = (nxt - ins["decision_date"]).dt.days
    day = ins.loc[(gap > 0) & (gap < 300), "decision_date"].iloc[0]
    flip = (rec["decision_date"] == day) & rec["item_code"].isin(
        ["INSPECTION_FAIL", "INSPECTION_PASS"]
    )
    rec2 = rec.copy()
    rec2.loc[flip, "item_code"] = np.where(
        rec.loc[flip, "item_code"] == "INSPECTION_FAIL", "INSPECTION_PASS", "INSPECTION_FAIL"
    )
    feats = []
    for r in (rec, rec2):
        rows, pairs, features = point_in_time_records(ins, r, chg, cat, hand)
        feats.append(
            pd.DataFrame(
                decayed_counts(pairs, len(rows), features, policy_half_lives(hand)),
                columns=features,
            )
        )
    same_day = (ins["decision_date"] == day).to_numpy()
    pd.testing.assert_frame_equal(feats[0][same_day], feats[1][same_day])
    assert not feats[0][~same_day].equals(feats[1][~same_day])


def _write(tmp_path, doc) -> str:
    p = tmp_path / "world.yaml"
    p.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return str(p)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["records"].update(GOSSIP={"rate": 0.1}), "unknown signal 'GOSSIP'"),
        (lambda d: d["records"]["PENALTY_GENERAL"].update(charm=1.0), "unknown signal 'charm'"),
        (lambda d: d["outcome"].update(astrology=0.3), "unknown signal 'astrology'"),
        (
            lambda d: d["records"]["TAX_ARREARS"].update(rate=-0.01),
            "records.TAX_ARREARS.rate is negative",
        ),
        (
            lambda d: d["inspections"]["complaint_driven"].update(per_year=-1),
            "complaint_driven.per_year",
        ),
        (
            lambda d: d["latent"]["distress"].update(onset_per_year=-0.2),
            "onset_per_year is negative",
        ),
        (
            lambda d: d["inspections"]["ratios_per_year"].update(A=0.5),
            "ratios_per_year.A = 0.5 is outside the agency bounds",
        ),
        (
            lambda d: d["inspections"]["ratios_per_year"].update(D=0.3),
            "ratios_per_year.D = 0.3 is outside",
        ),
    ],
)
def test_bad_world_files_are_refused_with_one_line(tmp_path, change, message):
    doc = yaml.safe_load(DEFAULT_WORLD.read_text(encoding="utf-8"))
    change(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(WorldParamsError) as e:
        load_world(path)
    assert message in str(e.value) and "\n" not in str(e.value) and path in str(e.value)


def test_cli_refuses_a_bad_world_file_and_generates_nothing(tmp_path):
    doc = yaml.safe_load(DEFAULT_WORLD.read_text(encoding="utf-8"))
    doc["records"]["LICENCE"]["rate"] = -1
    out = tmp_path / "out"
    p = run_cli(
        "demo-data", "--out", str(out), "--entities", "200", "--world", _write(tmp_path, doc)
    )
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "records.LICENCE.rate is negative" in lines[0], p.stderr
    assert not out.exists() or not any(out.rglob("*.*"))
