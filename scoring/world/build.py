"""The world: entities and every record they will ever have in the window, a pure function of the
seed and the world file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from scoring.common import codes, geo
from scoring.common.catalogue import Catalogue
from scoring.world import truth
from scoring.world.base import id_numbers, person_names, pick_weighted, random_names, stable_seed
from scoring.world.params import DEFAULT_WORLD, WorldParams, load_world
from scoring.world.records import build_records


@dataclass
class World:
    entities: (
        pd.DataFrame
    )  # one row per market entity, with its long-run latent risk (ground truth)
    records: (
        pd.DataFrame
    )  # one row per true catalogue record (before delivery defects); inspections
    #                          carry how they were drawn (mode, tier, inclusion probability) and the oracle
    changes: pd.DataFrame  # corrections, revocations, objections and repairs of those records
    seed: int
    params: WorldParams | None = None  # the world-parameter file it follows
    representative_changes: pd.DataFrame | None = (
        None  # register change history: entity, change_date
    )
    first_entity: int = 0  # a shard of a larger province: its entities' place in the province


def build_world(
    n_entities=20_000, seed=42, world: Path | str | WorldParams = DEFAULT_WORLD, shard=None
) -> World:
    """Entities and every record they will ever have in the window, from the seed and the world
    file alone (config/world/default.yaml; mirror.yaml is the control where truth = hand policy).
    ``shard``: (province seed, first entity, first record number) of a piece of a province built
    piece by piece (scoring/world/pieces.py); codes and numbers then stay unique across pieces."""
    params = world if isinstance(world, WorldParams) else load_world(world)
    rng = np.random.default_rng(seed)
    n = int(n_entities)
    code_seed, first_entity, first_record = shard or (seed, 0, 0)
    index = np.arange(first_entity, first_entity + n, dtype=np.int64)
    kinds = geo.ENTITY_KINDS
    k = pick_weighted(rng, kinds, [x[4] for x in kinds], n)
    div = pick_weighted(rng, geo.DIVISIONS, [d[3] for d in geo.DIVISIONS], n)
    ind = pick_weighted(rng, geo.INDUSTRIES, [i[2] for i in geo.INDUSTRIES], n)
    div_codes = np.array([d[0] for d in geo.DIVISIONS])[div]
    # A bijective affine map of the index gives unique organisation-code bodies without a set.
    body_int = (index * 7_919_333 + 10_007 + code_seed * 101) % 100_000_000
    body = (body_int[:, None] // (10 ** np.arange(7, -1, -1))) % 10
    first = np.array([x[0] for x in kinds])[k]
    kind_char = np.array([x[1] for x in kinds])[k]
    uscc = codes.make_uscc(first, kind_char, div_codes, body)
    # Registration dates: a long tail back to 1995, most in the last decade.
    age_days = np.minimum(rng.exponential(365 * 6, n), 365 * 30).astype(int)
    reg_date = pd.Timestamp("2027-06-30") - pd.to_timedelta(age_days, unit="D")
    offset = np.array([i[3] for i in geo.INDUSTRIES])[ind]  # the industry's mean compliance risk
    status = np.where(rng.random(n) < 0.95, "存续", np.where(rng.random(n) < 0.6, "注销", "吊销"))
    city = np.array([d[2] for d in geo.DIVISIONS])[div]
    trade = random_names(rng, n, geo.TRADE_NAMES, geo.TRADE_NAMES, 1, 1)
    words = np.array([geo.INDUSTRY_WORDS[i[0]] for i in geo.INDUSTRIES])[ind]
    etype = np.array([x[2] for x in kinds])[k]
    suffix = np.select(
        [etype == "有限责任公司", etype == "个体工商户", etype == "农民专业合作社"],
        ["有限公司", "店", "专业合作社"],
        "中心",
    )
    name = np.char.add(
        np.char.add(np.char.add(np.char.add(city.astype(str), trade), words), suffix),
        np.char.zfill((index % 997).astype(str), 3),
    )
    rep_div = div_codes
    entities = pd.DataFrame(
        {
            "uscc": uscc,
            "name": name,
            "entity_type": etype,
            "eval_class": np.array([x[3] for x in kinds])[k],
            "subject_category": np.where(etype == "个体工商户", "个体工商户", "法人及非法人组织"),
            "industry": np.array([i[0] for i in geo.INDUSTRIES])[ind],
            "division_code": div_codes,
            "city": city,
            "reg_date": reg_date.normalize(),
            "status": status,
            "legal_rep_name": person_names(rng, n),
            "legal_rep_id_number": id_numbers(rng, n, rep_div),
            "phone": np.char.add("13", np.char.zfill(rng.integers(0, 10**9, n).astype(str), 9)),
        }
    )
    cat = Catalogue.load()
    lat = truth.latent_paths(
        np.random.default_rng(stable_seed(seed, "latent")), entities, params, offset
    )
    entities["latent_risk"] = np.round(lat["stable"], 6)
    records, changes = build_records(rng, entities, seed, params, lat, cat, first_record)
    reps = truth.representative_changes(
        np.random.default_rng(stable_seed(seed, "representative-changes")),
        lat,
        pd.to_datetime(entities["reg_date"]).to_numpy(),
    )
    return World(
        entities=entities,
        records=records,
        changes=changes,
        seed=seed,
        params=params,
        representative_changes=reps,
        first_entity=first_entity,
    )
