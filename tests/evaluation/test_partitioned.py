"""A night in K entity-hash partitions gives the night in one: same rows, same bytes, any K."""

import json
from pathlib import Path

import pandas as pd
import pytest

from bench import province as bench
from scoring import pipeline
from scoring.common.partitions import N_BUCKETS, bucket_of, bucket_range
from scoring.history.store import Store, runs


def test_buckets_are_fixed_and_cover_every_partition_exactly_once():
    # Fixed values: the bucket of an entity is part of the stored layout and must never drift.
    assert bucket_of(["91230102100000016E", "", None, "é信用"]).tolist() == [997, 935, 935, 893]
    for k in (1, 3, 4, 16, 1024):
        ranges = [bucket_range(p, k) for p in range(k)]
        assert ranges[0][0] == 0 and ranges[-1][1] == N_BUCKETS
        assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(ranges, ranges[1:]))
    with pytest.raises(ValueError):
        bucket_range(4, 4)


def _night(tmp_path: Path, k: int, ent, rec) -> dict:
    home = tmp_path / f"k{k}"
    store = Store.open(f"sqlite:///{home}/credit.db", home)
    bench.store_province(store, ent, rec, "2026-06-28")
    ctx = pipeline.RunContext(as_of="2026-06-30", landing=home, home=home, partitions=k)
    with store.engine.begin() as conn:
        conn.execute(
            runs.insert().values(
                run_id=ctx.run_id,
                kind="nightly",
                as_of=ctx.as_of,
                knowledge_cutoff=ctx.knowledge_cutoff,
                status="running",
            )
        )
    parts = pipeline.plan_partitions(ctx)
    assert parts == list(range(k))
    for p in reversed(parts):  # any order, as workers finish
        pipeline.evaluate_partition(ctx, p)
    folder = store.run_dir(ctx.run_id) / "partitions"
    pieces = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*.arrow")}
    out = pipeline.score(ctx)
    assert not folder.exists()  # a scored night keeps its results, not its pieces
    rdir = store.run_dir(ctx.run_id)
    return {
        "out": out,
        "pieces": pieces,
        "csv": (rdir / "entity_score.csv").read_bytes(),
        "results": pd.read_parquet(rdir / "entity_score.parquet"),
        "active": pd.read_parquet(rdir / "active_entities.parquet"),
        "manifest": json.loads((rdir / "manifest.json").read_text()),
    }


def test_output_is_identical_for_1_4_and_16_partitions(tmp_path):
    ent, rec = bench.synthetic_province(4_000, 40_000)
    # Records no registered entity owns (no USCC) must land in exactly one partition too.
    rec = rec.copy()
    rec.loc[rec.index[:50], "uscc"] = pd.NA
    nights = {k: _night(tmp_path, k, ent, rec) for k in (1, 4, 16)}
    one = nights[1]
    assert one["out"]["entities_scored"] == 4_000
    assert one["csv"].count(b"\n") == 4_001
    for k in (4, 16):
        assert nights[k]["out"]["partitions"] == k
        assert nights[k]["out"]["output_sha256"] == one["out"]["output_sha256"]
        assert nights[k]["csv"] == one["csv"]
        pd.testing.assert_frame_equal(nights[k]["results"], one["results"])
        pd.testing.assert_frame_equal(nights[k]["active"], one["active"])
        assert nights[k]["manifest"]["input_sha256"] == one["manifest"]["input_sha256"]
    # and the partitioned night equals the engine run on the whole province at once
    from scoring.common.catalogue import Catalogue
    from scoring.evaluation.evaluate import Policy, evaluate_inputs, output_sha256
    from scoring.history.inputs import load_inputs

    store = Store.open(f"sqlite:///{tmp_path}/k1/credit.db", tmp_path / "k1")
    with store.engine.connect() as conn:
        e, r, c, _ = load_inputs(store, conn, "2026-06-30")
    whole = evaluate_inputs(
        e,
        r,
        c,
        Catalogue.in_force("2026-06-30"),
        Policy.shipped_in_force("2026-06-30"),
        "2026-06-30",
    )
    assert output_sha256(whole) == one["out"]["output_sha256"]


def test_a_retried_partition_replaces_its_own_piece_and_a_new_plan_never_mixes_in(tmp_path):
    ent, rec = bench.synthetic_province(1_000, 10_000)
    first = _night(tmp_path, 4, ent, rec)
    home = tmp_path / "k4"
    ctx = pipeline.RunContext(as_of="2026-06-30", landing=home, home=home, partitions=4)
    # A retried piece: same plan, same bytes.
    store = Store.open(f"sqlite:///{home}/credit.db", home)
    folder = store.run_dir(ctx.run_id) / "partitions"
    with store.engine.begin() as conn:
        conn.execute(runs.update().where(runs.c.run_id == ctx.run_id).values(status="running"))
    assert pipeline.plan_partitions(ctx) == [0, 1, 2, 3]  # the same plan again: the same pieces
    for p in range(4):
        pipeline.evaluate_partition(ctx, p)
    pieces = sorted(folder.rglob("entity_score-*.arrow"))
    before = {p: p.read_bytes() for p in pieces}
    assert len(pieces) == 4 and {p.relative_to(folder): b for p, b in before.items()} == {
        k: v for k, v in first["pieces"].items() if k.name.startswith("entity_score-")
    }
    pipeline.evaluate_partition(ctx, 2)  # a retried piece: same plan, same bytes
    assert {p: p.read_bytes() for p in pieces} == before
    # Another partition count for the same night: a new plan, its own pieces, the same output.
    ctx.partitions = 2
    pipeline.plan_partitions(ctx)
    pipeline.evaluate_partition(ctx, 0)
    assert len(list(folder.glob("k2-*"))) == 1 and len(list(folder.glob("k4-*"))) == 1
    assert pipeline.score(ctx)["output_sha256"] == first["out"]["output_sha256"]
    assert not list(folder.rglob("*.tmp*"))


def test_a_partition_that_breaks_the_entity_score_contract_stops_the_night(tmp_path, monkeypatch):
    from scoring.common.errors import GateFailed
    from scoring.evaluation import partitioned as part
    from scoring.history.store import run_row

    monkeypatch.setenv("CREDIT_WORKERS", "1")  # the broken engine lives in this process
    real = part.score_entities

    def broken(ent, rec, cat, pol, as_of):
        out = real(ent, rec, cat, pol, as_of)
        if len(out):
            out.loc[out.index[0], "score"] = 1200  # off the 0-1000 scale
        return out

    ent, rec = bench.synthetic_province(1_000, 5_000)
    home = tmp_path / "broken"
    store = Store.open(f"sqlite:///{home}/credit.db", home)
    bench.store_province(store, ent, rec, "2026-06-28")
    ctx = pipeline.RunContext(as_of="2026-06-30", landing=home, home=home, partitions=4)
    with store.engine.begin() as conn:
        conn.execute(
            runs.insert().values(
                run_id=ctx.run_id,
                kind="nightly",
                as_of=ctx.as_of,
                knowledge_cutoff=ctx.knowledge_cutoff,
                status="running",
            )
        )
    monkeypatch.setattr(part, "score_entities", broken)
    with pytest.raises(GateFailed, match="contract is broken by 4 rows"):
        pipeline.score(ctx)
    with store.engine.connect() as conn:
        row = run_row(conn, ctx.run_id)
    assert row["status"] == "failed" and row["output_sha256"] is None
    assert not (store.run_dir(ctx.run_id) / "entity_score.parquet").exists()


def _score_in_daemon(ctx, out) -> None:
    out.put(pipeline.score(ctx)["output_sha256"])


def test_score_in_a_daemonic_worker_evaluates_the_missing_pieces_itself(tmp_path, monkeypatch):
    # A Celery pool child is daemonic and may not start a process pool: a retried score there
    # (its worker killed mid-night) evaluates what is missing in its own process.
    import multiprocessing as mp

    monkeypatch.setenv("CREDIT_WORKERS", "2")
    ent, rec = bench.synthetic_province(400, 4_000)
    first = _night(tmp_path, 4, ent, rec)
    home = tmp_path / "k4"
    ctx = pipeline.RunContext(as_of="2026-06-30", landing=home, home=home, partitions=4)
    store = Store.open(f"sqlite:///{home}/credit.db", home)
    with store.engine.begin() as conn:
        conn.execute(runs.update().where(runs.c.run_id == ctx.run_id).values(status="running"))
    pipeline.plan_partitions(ctx)
    pipeline.evaluate_partition(ctx, 1)  # one piece done by a mapped task; three missing
    fork = mp.get_context("fork")
    out = fork.Queue()
    child = fork.Process(target=_score_in_daemon, args=(ctx, out), daemon=True)
    child.start()
    child.join(300)
    assert child.exitcode == 0
    assert out.get(timeout=5) == first["out"]["output_sha256"]
