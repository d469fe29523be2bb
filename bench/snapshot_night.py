"""A typical night after the first one, in which the register arrives as a full snapshot: the
market regulator sends its whole register every day (common practice), so the night's register
file holds every entity registered so far, not the day's new ones. Every other feed sends its
zero report (its header alone, in its own format), as `credit demo-data` writes a feed owed with
nothing new.

The snapshot is the first night's register file (every entity registered by then, as demo-data
wrote it) sent again the next day, with one entity in CHANGE_EVERY deregistered (a changed row
for the diff to find). Where the provider registry has the `delivery` option, a copy of config/
declares the register `delivery: snapshot` from the first night on (the first night's file is
then the snapshot the next one is diffed against); without it the whole register is re-sent
through the ordinary path.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import shutil
from pathlib import Path

import pandas as pd
import yaml

from bench.measure import table_row

NEXT = "2026-04-01"
CHANGE_EVERY = 1000  # 0.1% of the register changes status overnight
SNAPSHOT_WALL_S = 120  # the target for the 3M-row snapshot night
CHUNK_ROWS = 500_000


def declare_register_snapshot(config: Path, as_of: str) -> Path | None:
    """config/ copied to ``config`` with a provider-registry version from ``as_of`` in which the
    market regulator's register is a snapshot feed; None where the registry cannot say so."""
    from scoring.common.config import CONFIG_DIR, content_hash
    from scoring.intake import providers

    if "delivery" not in getattr(providers, "PROVIDER_FIELDS", {}):
        return None
    shutil.copytree(CONFIG_DIR, config)
    path = config / "providers.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    latest = max(doc["versions"], key=lambda v: str(v["effective_from"]))
    provs = copy.deepcopy(latest["providers"])
    for p in provs:
        if "register" in p["feeds"]:
            p["delivery"] = {"register": "snapshot"}
    doc["versions"].append(
        {
            "effective_from": as_of,
            "sha256": content_hash(provs),
            "approved_by": "bench",
            "reason": "the register arrives as a full snapshot every day",
            "providers": provs,
        }
    )
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return config


def write_next_day(landing: Path, state: dict) -> int:
    """The next day's files into ``landing``: the register again, whole, and a zero report for
    every other feed; the register's rows."""
    from scoring.intake.arrivals import SHANGHAI, set_arrival
    from scoring.world.base import DELIVERY_TIME
    from scoring.world.province import FEED_LAYOUT, write_frame

    stamp, rows = NEXT.replace("-", ""), 0
    arrival = dt.datetime.combine(dt.date.fromisoformat(NEXT), DELIVERY_TIME, tzinfo=SHANGHAI)
    for f in state["deliveries"][-1]["files"]:
        prov, name = f["file"].split("/")
        feed = name.split("_", 1)[1].rsplit(".", 1)[0]
        target = landing / prov / f"{stamp}_{feed}.{f['format']}"
        enc = None if f["encoding"] == "xlsx" else f["encoding"]
        if feed == "register":
            rows = _resend_register(landing / f["file"], target, enc)
        else:
            empty = pd.DataFrame(columns=FEED_LAYOUT[feed].standard_headers())
            write_frame(empty, target, f["format"], enc)
        set_arrival(target, arrival)
    return rows


def _resend_register(first: Path, target: Path, encoding: str) -> int:
    """The first night's register again, a chunk at a time, with every CHANGE_EVERY-th entity
    that was in business (存续) now deregistered (注销)."""
    rows = 0
    tmp = target.with_name(target.name + ".partial")
    with open(tmp, "w", encoding=encoding, newline="") as out:
        for i, chunk in enumerate(
            pd.read_csv(
                first, dtype=str, keep_default_na=False, encoding=encoding, chunksize=CHUNK_ROWS
            )
        ):
            status = chunk.columns[chunk.columns.str.contains("状态")]
            if len(status):
                at = (pd.RangeIndex(rows, rows + len(chunk)) % CHANGE_EVERY == 0) & (
                    chunk[status[0]] == "存续"
                ).to_numpy()
                chunk.loc[at, status[0]] = "注销"
            chunk.to_csv(out, index=False, header=i == 0)
            rows += len(chunk)
    tmp.replace(target)
    return rows


def snapshot_night(entities: int, home: Path, env: dict, made: Path) -> dict:
    """The night after the first night at this size (in ``home``, the province `credit demo-data`
    wrote into ``made``), the register a full snapshot; each step's time and peak."""
    from bench.intake import run_steps

    state = json.loads((made / "demo_state.json").read_text())
    register_rows = write_next_day(home / "landing", state)
    declared = "CREDIT_CONFIG_DIR" in env
    how = "delivery: snapshot" if declared else "re-sent whole (no snapshot option yet)"
    label = f"snapshot night {entities:,}"
    print(f"\n{label}: the register ({register_rows:,} rows) {how}")
    steps = run_steps(label, NEXT, env, register_rows, None)
    staged = register_counts(env)
    if staged:
        table_row(
            f"{label}: the register file",
            f"{staged['received']:,} received, {staged['staged']:,} staged "
            f"({staged['accepted']:,} accepted, {staged['quarantined']:,} quarantined, "
            f"{staged['withdrawn']:,} of them withdrawals), {staged['excluded']:,} excluded "
            f"(unchanged)",
        )
    wall = sum(r["wall"] for r in steps.values())
    peak = max(r["tree_gb"] for r in steps.values())
    ok = all(r["code"] == 0 for r in steps.values())
    big = register_rows >= 2_500_000
    table_row(
        f"{label}: whole ({'snapshot' if declared else 're-sent'})",
        f"{wall:.0f} s, {register_rows / wall:,.0f} register rows/s, peak tree {peak:.2f} GB",
        f"<= {SNAPSHOT_WALL_S} s" if big else "",
        (ok and wall <= SNAPSHOT_WALL_S) if big else None,
    )
    return {
        "steps": steps,
        "register_rows": register_rows,
        "declared": declared,
        "register_file": staged,
    }


def register_counts(env: dict) -> dict:
    """What the snapshot night did with the register file: rows received, staged (new, changed
    and withdrawn: what went on to the gate), excluded (unchanged), as its landed_files row says."""
    import sqlalchemy as sa

    eng = sa.create_engine(env["CREDIT_DB_URL"])
    try:
        with eng.connect() as conn:
            row = conn.execute(
                sa.text(
                    "select received, accepted, quarantined, excluded, withdrawn "
                    "from landed_files where path like :p order by run_id desc"
                ),
                {"p": f"%/{NEXT.replace('-', '')}_register.%"},
            ).first()
    finally:
        eng.dispose()
    if row is None:
        return {}
    out = dict(row._mapping)
    out["staged"] = out["accepted"] + out["quarantined"]
    return out
