"""The bench's province: synthetic entities and records at any scale (seeded), stored whole or a
history batch at a time, and providers' penalty files."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from scoring.common import codes
from scoring.common.catalogue import Catalogue
from scoring.history.store import (
    record_batches,
)
from scoring.world.province import build_world, delivery_frames, inject_defects


def make_penalty_file(path: Path, rows: int, seed: int = 1) -> None:
    """A 双公示 penalty CSV of ``rows`` rows, tiled from a demo province's penalty feed."""
    cat = Catalogue.load()
    world = build_world(int(min(60_000, max(5_000, rows))), seed)
    rng = np.random.default_rng(seed)
    frames = delivery_frames(world, cat, None, pd.Timestamp("2026-06-30"), rng)
    pen = pd.concat(
        [f for (p, feed), f in sorted(frames.items()) if feed == "penalty"], ignore_index=True
    )
    reps = -(-rows // len(pen))
    big = pd.concat([pen] * reps, ignore_index=True).iloc[:rows].copy()
    big["行政处罚决定书文号"] = (
        big["行政处罚决定书文号"] + "-" + (np.arange(rows) // len(pen)).astype(str)
    )
    big, _ = inject_defects(big, "sgs_penalty", 0.02, rng, pd.Timestamp("2026-06-30"))
    big.to_csv(path, index=False, encoding="utf-8-sig")


def synthetic_entities(n_entities: int, rng: np.random.Generator) -> pd.DataFrame:
    """The register of a synthetic province (its first draws from ``rng``)."""
    body = (np.arange(n_entities, dtype=np.int64) * 7_919_333 + 10_007) % 100_000_000
    digits = (body[:, None] // (10 ** np.arange(7, -1, -1))) % 10
    div = np.array(["230102", "230103", "230602", "231202", "230623"])[
        rng.integers(0, 5, n_entities)
    ]
    uscc = codes.make_uscc(np.full(n_entities, "9"), np.full(n_entities, "1"), div, digits)
    return pd.DataFrame(
        {
            "uscc": pd.array(uscc, dtype="string"),
            "subject_name": pd.array(np.full(n_entities, "某公司"), dtype="string"),
            "division_code": div,
            "industry": np.array(list("CEFGH"))[rng.integers(0, 5, n_entities)],
            "eval_class": "legal_person",
            "entity_status": "存续",
            "registered_date": pd.Timestamp("2015-01-01"),
        }
    )


@functools.lru_cache(maxsize=1)
def _item_codes() -> tuple[tuple[str, ...], np.ndarray]:
    """The record items and their weights (read once: every chunk of records needs them)."""
    cat = Catalogue.load()
    item_codes = tuple(i["code"] for i in cat.items if i["code"] != "REG_BASIC")
    weights = np.array(
        [8 if c in ("LICENCE", "COMMITMENT", "INSPECTION_PASS") else 1 for c in item_codes], float
    )
    p = weights / weights.sum()
    p.setflags(write=False)
    return item_codes, p


def record_draws(
    n_entities: int, n_records: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Every random draw of the records, column after column as they were always drawn (so the
    records are the same at every size), kept compact: ~11 bytes a record (1.1 GB at 100M) where
    the frame of all records would need tens of GB. Frames are cut from it a chunk at a time."""
    _, p = _item_codes()
    small = np.int32 if n_entities < 2**31 else np.int64
    return {
        "entity": rng.integers(0, n_entities, n_records).astype(small),
        "decision_day": rng.integers(0, 1460, n_records).astype(np.int16),
        "item": rng.choice(len(p), n_records, p=p).astype(np.int8),
        "publicity_days": rng.integers(90, 1100, n_records).astype(np.int16),
        "repaired": rng.random(n_records) < 0.02,
        "objection_pending": rng.random(n_records) < 0.005,
    }


def records_frame(
    uscc: pd.Series, draws: dict[str, np.ndarray], lo: int = 0, hi: int | None = None
) -> pd.DataFrame:
    """Records ``lo:hi`` of the province as a frame."""
    item_codes, _ = _item_codes()
    d = {k: v[lo:hi] for k, v in draws.items()}
    n = len(d["entity"])
    dec = np.datetime64("2022-07-01") + d["decision_day"].astype(np.int64).astype("timedelta64[D]")
    return pd.DataFrame(
        {
            "uscc": uscc.take(d["entity"]).reset_index(drop=True),
            "item_code": pd.Categorical.from_codes(d["item"], categories=list(item_codes)),
            "subject_type": pd.Categorical.from_codes(
                np.zeros(n, dtype=np.int8), categories=["legal"]
            ),
            "decision_date": dec,
            "publicity_end_date": dec
            + d["publicity_days"].astype(np.int64).astype("timedelta64[D]"),
            "valid_to_date": dec + 1825,
            "repaired_date": np.where(d["repaired"], dec + 200, np.datetime64("NaT")),
            "objection_pending": d["objection_pending"],
        }
    )


def synthetic_province(n_entities: int, n_records: int, seed: int = 5):
    """Entities and records straight in memory (no files): the scoring engine's inputs at scale."""
    rng = np.random.default_rng(seed)
    ent = synthetic_entities(n_entities, rng)
    return ent, records_frame(ent["uscc"], record_draws(n_entities, n_records, rng))


def record_chunks(n_entities: int, n_records: int, chunks: int, seed: int = 5):
    """The register, and the records of ``synthetic_province`` (the same rows, in order) as
    ``chunks`` frames of near-equal size, one made at a time: ``(entities, iterator of (first
    record's position, frame))``."""
    rng = np.random.default_rng(seed)
    ent = synthetic_entities(n_entities, rng)
    draws = record_draws(n_entities, n_records, rng)
    size = -(-n_records // max(1, chunks)) if n_records else 1

    def frames():
        for lo in range(0, n_records, size):
            yield lo, records_frame(ent["uscc"], draws, lo, lo + size)

    return ent, frames()


def store_province(store, ent: pd.DataFrame, rec: pd.DataFrame | None, as_of: str) -> None:
    """Put a synthetic province into a store as one accepted batch per table, like a first run."""
    ent = ent.assign(
        entity_type="有限责任公司",
        legal_rep_name="张三",
        legal_rep_id_number="230102198001010129",
        phone="13812345678",
        known_from=pd.Timestamp(as_of),
        source_file="bench",
        line_no=0,
    )
    tables = [("entities", ent)]
    if rec is not None:
        doc = pd.Series(np.arange(len(rec)), dtype="int64").astype("string")
        tables.append(
            (
                "records",
                rec.assign(
                    doc_number=doc,
                    record_key=(doc + "|" + rec["uscc"]).astype("string"),
                    known_from=pd.Timestamp(as_of),
                    source_file="bench",
                    line_no=0,
                ),
            )
        )
    batches = [store.write_batch("bench-0", t, f, as_of) for t, f in tables]
    with store.engine.begin() as conn:
        store.insert_frame(conn, record_batches, pd.DataFrame(batches))


BATCH_ROWS = 10_000_000  # records of one stored history batch at most (~4 GB to make and write one)


def seed_province_store(
    store,
    n_entities: int,
    n_records: int,
    as_of: str,
    history_batches: int = 10,
    batch_rows: int = BATCH_ROWS,
) -> pd.Series:
    """A province's stored history: the register and its records as ``history_batches`` nightly
    batches (as months of deliveries leave them; more when a batch would exceed ``batch_rows``),
    and every feed delivered on ``as_of``. The records are made and written a batch at a time,
    never all at once as a frame (100M records would need far more memory than the machine has)."""
    from scoring.history.store import landed_files

    n_batches = max(history_batches, -(-n_records // batch_rows))
    ent, chunks = record_chunks(n_entities, n_records, n_batches)
    uscc = ent["uscc"].copy()
    store_province(store, ent, None, as_of)
    del ent
    batches = []
    for i, (lo, rec) in enumerate(chunks):
        doc = pd.Series(np.arange(lo, lo + len(rec)), dtype="int64").astype("string")
        known = (pd.Timestamp(as_of) - pd.Timedelta(days=n_batches - i)).date()
        rec = rec.assign(
            doc_number=doc,
            record_key=(doc + "|" + rec["uscc"]).astype("string"),
            source_file="bench",
            line_no=0,
            known_from=pd.Timestamp(known),
        )
        del doc
        batches.append(store.write_batch(f"bench-{i}", "records", rec, known))
        del rec
    cat = Catalogue.in_force(as_of)
    known = pd.DataFrame(
        [
            {
                "run_id": "bench-0",
                "path": f"{p['id']}/{as_of.replace('-', '')}_{f}.csv",
                "provider": p["id"],
                "feed": f,
                "delivered_on": pd.Timestamp(as_of).date(),
                "sha256": f"bench-{p['id']}-{f}",
                "status": "stored",
                "received": 0,
                "accepted": 0,
                "quarantined": 0,
                "excluded": 0,
            }
            for p in cat.providers
            for f in p["feeds"]
        ]
    )
    with store.engine.begin() as conn:
        store.insert_frame(conn, record_batches, pd.DataFrame(batches))
        store.insert_frame(conn, landed_files, known)
    return uscc


def deliver_penalties(landing: Path, day: str, rows: int, uscc: pd.Series, seed: int = 1) -> Path:
    """A night's 双公示 penalty delivery naming entities of the province."""
    path = landing / "samr" / f"{day.replace('-', '')}_penalty.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    make_penalty_file(path, rows, seed)
    pen = pd.read_csv(path, dtype=str, keep_default_na=False)
    col = "行政相对人代码_1(统一社会信用代码)"
    legal = pen[col] != ""
    pen.loc[legal, col] = uscc.sample(int(legal.sum()), replace=True, random_state=seed).to_numpy()
    pen["行政处罚决定书文号"] = pen["行政处罚决定书文号"] + f"-{day}"
    pen.to_csv(path, index=False, encoding="utf-8-sig")
    return path
