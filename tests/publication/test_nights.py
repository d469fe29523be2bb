"""Attempts of a night: a published night is never redone in place; a re-run works beside it and
replaces it only in the transaction that publishes it."""

import datetime as dt

import pytest
import sqlalchemy as sa

from scoring.common.errors import PipelineError
from scoring.history.store import Store, runs
from scoring.pipeline import RunContext, begin, ingest, shown
from scoring.publication import nights


@pytest.fixture()
def store(tmp_path):
    return Store.open(f"sqlite:///{tmp_path / 'credit.db'}", tmp_path)


def _run(conn, run_id, status, as_of="2026-06-30"):
    d = dt.date.fromisoformat(as_of)
    conn.execute(
        runs.insert().values(
            run_id=run_id, kind="nightly", as_of=d, knowledge_cutoff=d, status=status
        )
    )


def test_attempt_ids_round_trip():
    assert nights.night_of("nightly-20260630-r12") == "nightly-20260630"
    assert nights.night_of("nightly-20260630-k20260705") == "nightly-20260630-k20260705"
    assert (
        nights.attempt_of("nightly-20260630") == 1 and nights.attempt_of("nightly-20260630-r3") == 3
    )
    assert nights.run_id_for("nightly-20260630", 1) == "nightly-20260630"


def test_a_night_is_redone_in_place_until_it_publishes_then_beside_it(store):
    night = "nightly-20260630"
    with store.engine.begin() as conn:
        assert nights.next_attempt(conn, night) == 1
        _run(conn, night, "gate_failed")
        assert nights.next_attempt(conn, night) == 1  # nothing visible: redo in place
        conn.execute(sa.update(runs).values(status="published"))
        _run(
            conn, "nightly-20260629", "published", "2026-06-29"
        )  # another night is no attempt of this one
        assert nights.next_attempt(conn, night) == 2
        _run(conn, f"{night}-r2", "failed")
        assert (
            nights.next_attempt(conn, night) == 2
        )  # the failed attempt is retried, not a third one
        assert nights.shown_attempt(conn, night) == night
        assert nights.shown_attempt(conn, night, prefer_published=False) == f"{night}-r2"
        conn.execute(
            sa.update(runs).where(runs.c.run_id == f"{night}-r2").values(status="published")
        )
        assert nights.supersede_others(conn, f"{night}-r2") == 1
        states = dict(conn.execute(sa.select(runs.c.run_id, runs.c.status)).all())
    assert states == {
        night: "superseded",
        f"{night}-r2": "published",
        "nightly-20260629": "published",
    }


def test_steps_refuse_to_redo_a_published_run_in_place(store, tmp_path):
    with store.engine.begin() as conn:
        _run(conn, "nightly-20260630", "published")
    ctx = RunContext(as_of="2026-06-30", landing=tmp_path, home=tmp_path, db_url=store.url)
    with pytest.raises(
        PipelineError, match="published; a re-run of the night works in attempt nightly-20260630-r2"
    ):
        ingest(ctx)
    assert begin(ctx).run_id == "nightly-20260630-r2"
    assert (
        shown(RunContext.from_json(ctx.to_json())).run_id == "nightly-20260630"
    )  # the attempt survives JSON


def test_monthly_work_opens_on_the_first_published_night_of_a_month(store):
    with store.engine.begin() as conn:
        assert nights.latest_published(conn) is None
        _run(conn, "nightly-20260630", "superseded")
        _run(conn, "nightly-20260630-r2", "published")
        _run(conn, "nightly-20260701", "gate_failed", "2026-07-01")
        run = nights.latest_published(conn)
        assert run["run_id"] == "nightly-20260630-r2" and nights.opens_its_month(conn, run)
        _run(conn, "nightly-20260702", "published", "2026-07-02")
        assert nights.opens_its_month(conn, nights.latest_published(conn))  # 07-01 never published
        _run(conn, "nightly-20260703", "published", "2026-07-03")
        assert not nights.opens_its_month(conn, nights.latest_published(conn))
