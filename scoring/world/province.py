"""A synthetic province: market entities, their credit records, and the providers' deliveries.

The whole "world" (entities and every record from 2022-07-01 to WORLD_END) is a pure function of
the seed. ``write_deliveries`` writes what providers have delivered up to an as-of date into a
landing folder, in the layouts, encodings and formats they really use, with defects injected at a
known rate and labelled in ``ground_truth/``. Calling it again with a later date adds only the
deliveries of the new period, so day 2 looks like a real day 2.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd

from scoring.common.catalogue import Catalogue
from scoring.intake.arrivals import SHANGHAI, set_arrival
from scoring.intake.layouts import (
    CHANGES,
    COMMITMENT_RESULT,
    CREDIT_RECORD,
    DISHONEST,
    INSPECTION,
    LICENCE,
    PENALTY,
    REGISTER,
    TAX_CREDIT,
)
from scoring.world import positive_signals
from scoring.world.base import (
    DELIVERY_FORMAT,
    DELIVERY_TIME,
    GENERATOR_VERSION,
    XLSX_MAX_ROWS,
    stable_seed,
)
from scoring.world.build import World, build_world
from scoring.world.defects import inject_defects
from scoring.world.frames import authority_names, delivery_frames, fmt_dates
from scoring.world.params import DEFAULT_WORLD, WorldParams, load_world
from scoring.world.xlsx_out import text_only, write_xlsx

# --------------------------------------------------------------------------- writing


def write_frame(
    df: pd.DataFrame, path: Path, fmt: str, encoding: str | None, when: dt.datetime | None = None
) -> None:
    """One delivery file; a workbook made at ``when`` (the delivery's time) is written by
    xlsx_out, reproducibly, where its values are all text."""
    tmp = path.with_name(path.name + ".partial")
    if fmt == "xlsx" and when is not None and text_only(df):
        write_xlsx(df, tmp, when)
    elif fmt == "xlsx":
        df.to_excel(tmp, index=False, engine="openpyxl")
    else:
        df.to_csv(tmp, index=False, encoding=encoding)
    tmp.replace(path)


# Provinces larger than this are built and written piece by piece (scoring/world/pieces.py): one
# piece's world in memory at a time. Smaller ones are built whole, as they always were.
PIECES_FROM = 500_000

# Every provider reports every feed it owes, even with nothing new (a "zero report").
FEED_LAYOUT = {
    "register": REGISTER,
    "penalty": PENALTY,
    "licence": LICENCE,
    "inspection": INSPECTION,
    "dishonest_debtor": DISHONEST,
    "credit_record": CREDIT_RECORD,
    "credit_change": CHANGES,
    "commitment_result": COMMITMENT_RESULT,
    "tax_credit_rating": TAX_CREDIT,
}
LAYOUT_ID = {
    "register": "entity_register",
    "penalty": "sgs_penalty",
    "licence": "sgs_licence",
    "inspection": "inspection_result",
    "dishonest_debtor": "court_dishonest_debtor",
    "credit_record": "credit_record",
    "credit_change": "credit_change",
    **positive_signals.LAYOUT_ID,
}


def write_deliveries(
    out: Path | str,
    as_of: dt.date | str,
    n_entities: int = 20_000,
    seed: int = 42,
    defect_rate: float = 0.02,
    catalogue: Catalogue | None = None,
    progress=None,
    world: Path | str = DEFAULT_WORLD,
    prebuilt: World | None = None,
) -> dict:
    """Write the deliveries due by ``as_of`` that the landing folder does not have yet.
    ``prebuilt``: the world of these parameters, built once by a caller that writes day after day
    (building it is most of the cost of a small province's day)."""
    params = load_world(world)  # a bad world file stops here, before anything is written
    out = Path(out)
    as_of = pd.Timestamp(as_of)
    cat = catalogue or Catalogue.in_force(as_of)
    landing = out / "landing"
    truth = out / "ground_truth"
    landing.mkdir(parents=True, exist_ok=True)
    truth.mkdir(parents=True, exist_ok=True)
    state_path = out / "demo_state.json"
    gen = _generator(n_entities, seed, defect_rate, params)
    state = _previous_state(state_path, gen)
    after = pd.Timestamp(state["delivered_until"]) if state else None
    if after is not None and as_of <= after:
        return {
            "out": str(out),
            "files": [],
            "delivered_until": str(after.date()),
            "note": "nothing new",
        }
    say = progress or (lambda msg: None)
    say(f"building the province: {n_entities:,} entities (seed {seed})")
    bad_path = truth / "quarantined_records.csv"
    bad_keys = (
        set(map(tuple, pd.read_csv(bad_path, dtype=str).fillna("").to_numpy()))
        if bad_path.exists()
        else set()
    )
    bad: tuple = (bad_keys, [])
    written, all_labels = _deliver(
        out, as_of, cat, after, (n_entities, seed, defect_rate, params), bad, prebuilt, say
    )
    _append_csv(pd.DataFrame(bad[1], columns=["doc_number", "subject_code"]), bad_path)
    defects = (
        pd.concat(all_labels, ignore_index=True)
        if all_labels
        else pd.DataFrame(columns=["file", "line", "defect"])
    )
    _append_csv(defects, truth / "defects.csv")
    state = {
        "params": gen,
        "delivered_until": str(as_of.date()),
        "deliveries": state.get("deliveries", [])
        + [{"as_of": str(as_of.date()), "files": written}],
    }
    state_path.write_text(json.dumps(state, ensure_ascii=False, indent=1))
    return {
        "out": str(out),
        "landing": str(landing),
        "files": written,
        "defects": {k: int(v) for k, v in defects["defect"].value_counts().sort_index().items()},
        "delivered_until": str(as_of.date()),
    }


def _deliver(out: Path, as_of, cat, after, spec: tuple, bad: tuple, prebuilt, say):
    """Build the world (or its pieces) and write the period's files; (files, defect labels).
    ``spec``: (entities, seed, defect rate, world parameters)."""
    n_entities, seed, defect_rate, params = spec
    if prebuilt is None and n_entities > PIECES_FROM:
        from scoring.world.pieces import write_in_pieces

        return write_in_pieces(out, as_of, (cat, after, spec), bad, say, deliver_world, write_truth)
    world = _the_world(prebuilt, n_entities, seed, params)
    stamp = as_of.strftime("%Y%m%d")
    done = deliver_world(
        world,
        cat,
        after,
        as_of,
        defect_rate,
        bad,
        lambda p, f, frame, labels: _write_feed(
            out / "landing", p, f, frame, labels, stamp, as_of, say
        ),
    )
    write_truth(out / "ground_truth", world)
    return [d[0] for d in done], [d[1] for d in done]


def _generator(n_entities: int, seed: int, defect_rate: float, params: WorldParams) -> dict:
    """What a landing folder was generated with: every later day must use the same."""
    return {
        "entities": int(n_entities),
        "seed": int(seed),
        "defect_rate": float(defect_rate),
        "generator": GENERATOR_VERSION,
        "world": params.name,
        "world_sha256": params.sha256,
    }


def _previous_state(state_path: Path, gen: dict) -> dict:
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    if state and state.get("params") != gen:
        raise ValueError(
            f"{state_path.parent} was generated with {state['params']}; use the same parameters or "
            "a new folder"
        )
    return state


def _the_world(prebuilt: World | None, n_entities: int, seed: int, params: WorldParams) -> World:
    if prebuilt is not None and (
        prebuilt.seed != seed
        or len(prebuilt.entities) != n_entities
        or prebuilt.params is None
        or prebuilt.params.sha256 != params.sha256
    ):
        raise ValueError("the prebuilt world was built with other parameters")
    return prebuilt if prebuilt is not None else build_world(n_entities, seed, params)


def deliver_world(world: World, cat: Catalogue, after, as_of, defect_rate, bad: tuple, emit):
    """Each (provider, feed) frame of the period with its defects, handed to ``emit(provider,
    feed, frame, labels)``; what it returned, in delivery order. ``bad``: (keys of records made
    defective earlier, the list this period's are added to)."""
    rng = np.random.default_rng(stable_seed(world.seed, "deliveries", as_of.date()))
    frames = _all_frames(world, cat, after, as_of, rng)
    stamp = as_of.strftime("%Y%m%d")
    done = []
    # Provider feeds first, so the change feed knows which records their defects keep out.
    order = sorted(frames.items(), key=lambda kv: (kv[0][1] == "credit_change", kv[0]))
    for (prov, feed), frame in order:
        frng = np.random.default_rng(stable_seed(world.seed, prov, feed, stamp))
        # The platform's own change feed carries no injected defects (they are labelled per provider feed).
        rate = 0.0 if feed == "credit_change" else defect_rate
        frame, labels = _with_defects(frame, feed, rate, frng, as_of, *bad)
        done.append(emit(prov, feed, frame, labels))
    return done


def _all_frames(world: World, cat: Catalogue, after, as_of: pd.Timestamp, rng) -> dict:
    """Every (provider, feed) frame of the period, an empty one for a feed owed with nothing new."""
    frames = delivery_frames(world, cat, after, as_of, rng)
    frames.update(
        positive_signals.delivery_frames(world, cat, after, as_of, fmt_dates, authority_names)
    )
    for prov in cat.providers:
        for feed in prov["feeds"]:
            if (prov["id"], feed) not in frames and (prov["id"], feed) in DELIVERY_FORMAT:
                frames[(prov["id"], feed)] = pd.DataFrame(
                    columns=FEED_LAYOUT[feed].standard_headers()
                )
    return frames


def _with_defects(frame, feed: str, rate: float, frng, as_of, bad_keys: set, new_bad: list):
    """The feed with its defects and their labels. Records made defective in a provider feed are
    remembered (``bad_keys``): changes about them in the platform's feed are labelled orphans."""
    layout_id = LAYOUT_ID[feed]
    if feed == "credit_change":
        keys = list(
            zip(
                frame["原文书编号"].astype(str),
                frame["统一社会信用代码/身份证号码"].astype(str),
            )
        )
        orphan = np.flatnonzero([k in bad_keys for k in keys])
        frame, labels = inject_defects(frame, layout_id, rate, frng, as_of)
        labels = pd.DataFrame({"row_index": orphan, "defect": "orphan_change"})
    else:
        original = frame
        frame, labels = inject_defects(frame, layout_id, rate, frng, as_of)
        doc_col, code_col = _key_columns(original)
        if doc_col:
            # Rows defective in place are quarantined: changes about them will find no record.
            # (Duplicates are extra copies; their original is accepted.)
            at = labels.loc[labels["defect"] != "duplicate", "row_index"].to_numpy(dtype=np.int64)
            orig_rows = _original_rows(len(original), labels)[at]
            for d, c in zip(
                original[doc_col].to_numpy()[orig_rows],
                original[code_col].to_numpy()[orig_rows],
            ):
                k = (str(d).strip(), str(c).strip().upper())
                bad_keys.add(k)
                new_bad.append(k)
    return frame, labels


def _write_feed(landing: Path, prov: str, feed: str, frame, labels, stamp: str, as_of, say):
    """Write one delivery file; its entry in the state and its defect labels (file, line)."""
    fmt, enc = DELIVERY_FORMAT[(prov, feed)]
    if fmt == "xlsx" and len(frame) > XLSX_MAX_ROWS:
        fmt, enc = "csv", "gb18030"
    rel = Path(prov) / f"{stamp}_{feed}.{fmt}"
    (landing / prov).mkdir(exist_ok=True)
    say(f"writing {rel} ({len(frame):,} rows, {fmt}, {enc or 'xlsx'})")
    # Providers deliver in the evening of the day the file is named for: its arrival time is
    # what a night's arrival cut (catch-up runs) compares with.
    arrival = dt.datetime.combine(as_of.date(), DELIVERY_TIME, tzinfo=SHANGHAI)
    write_frame(frame, landing / rel, fmt, enc, arrival)
    set_arrival(landing / rel, arrival)
    labels = labels.assign(file=str(rel), line=labels["row_index"] + 2)
    entry = {"file": str(rel), "rows": int(len(frame)), "format": fmt, "encoding": enc or "xlsx"}
    return entry, labels[["file", "line", "defect"]]


def write_truth(truth: Path, world: World) -> None:
    """The ground truth a test or an experiment checks against: entities and inspections."""
    ent = world.entities
    ent[["uscc", "eval_class", "industry", "division_code", "latent_risk"]].to_csv(
        truth / "entities.csv", index=False, encoding="utf-8"
    )
    ins = world.records[world.records["kind"] == "INSPECTION"]
    pd.DataFrame(
        {
            "uscc": ent["uscc"].to_numpy()[ins["entity"].to_numpy()],
            "inspection_date": ins["decision_date"].dt.strftime("%Y-%m-%d"),
            "problem_found": ins["inspection_failed"].astype(int),
            "mode": ins["inspection_mode"],
            "tier_at_draw": ins["tier_at_draw"],
            "plan_id": ins["plan_id"].fillna(""),
            "inclusion_prob": ins["inclusion_prob"].round(8),
            "represents": ins["represents"],
            "oracle_logit": ins["oracle_logit"].round(6),
        }
    ).to_csv(truth / "inspections.csv", index=False, encoding="utf-8")


def _key_columns(frame: pd.DataFrame) -> tuple[str | None, str | None]:
    for doc in ("行政处罚决定书文号", "行政许可决定文书号", "案号", "文书编号", "抽查任务编号"):
        if doc in frame.columns:
            for code in (
                "行政相对人代码_1(统一社会信用代码)",
                "统一社会信用代码/身份证号码",
                "统一社会信用代码",
            ):
                if code in frame.columns:
                    return doc, code
    return None, None


def _original_rows(n_original: int, labels: pd.DataFrame) -> np.ndarray:
    """Map output row positions back to original row positions (duplicates are inserted copies)."""
    dup_at = np.sort(
        labels.loc[labels["defect"] == "duplicate", "row_index"].to_numpy(dtype=np.int64)
    )
    total = n_original + len(dup_at)
    is_dup = np.zeros(total, dtype=bool)
    is_dup[dup_at] = True
    orig = np.cumsum(~is_dup) - 1
    return orig


def _append_csv(df: pd.DataFrame, path: Path) -> None:
    if path.exists():
        df = pd.concat([pd.read_csv(path, dtype=str), df.astype(str)], ignore_index=True)
    df.to_csv(path, index=False, encoding="utf-8")
