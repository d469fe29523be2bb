"""Status and publication never disagree: a failure injected at each step of
a night, after the step has done its work. Either nothing new is visible to agencies and the run is
failed, or the run is published and says so (with the failure noted)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from scoring import pipeline
from scoring.steps import STEP_NAMES

ENTITIES = 120


@pytest.fixture()
def night_one(tmp_path):
    """A province with a published first night; the second night's deliveries have landed."""
    from scoring.world.province import write_deliveries

    out, home = tmp_path / "province", tmp_path / "home"
    write_deliveries(out, "2026-03-02", n_entities=ENTITIES, seed=3)
    first = pipeline.run_night(
        pipeline.RunContext(as_of="2026-03-02", landing=out / "landing", home=home)
    )
    assert first["status"] == "published", first
    write_deliveries(out, "2026-03-03", n_entities=ENTITIES, seed=3)
    return out / "landing", home


def _visible(home, run_id):
    """What agencies can see of a run: its publication rows, its outbox folders, CURRENT pointers."""
    from scoring.history.store import Store, publications

    store = Store.open(None, home)
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(sa.func.count())
            .select_from(publications)
            .where(publications.c.run_id == run_id)
        ).scalar()
    outbox = home / "outbox"
    folders = sorted(p for p in outbox.glob(f"*/{run_id}") if p.is_dir())
    current = {p.parent.name: p.read_text().split()[0] for p in outbox.glob("*/CURRENT")}
    return rows, folders, current


@pytest.mark.parametrize("step", STEP_NAMES)
def test_a_failure_at_each_step_leaves_status_and_publication_in_agreement(
    night_one, step, monkeypatch
):
    landing, home = night_one
    real = pipeline.STEPS[step]

    def fails_after_its_work(ctx):
        real(ctx)
        raise RuntimeError(f"injected failure after {step}")

    monkeypatch.setitem(pipeline.STEPS, step, fails_after_its_work)
    ctx = pipeline.RunContext(as_of="2026-03-03", landing=landing, home=home)
    with pytest.raises(RuntimeError, match="injected"):
        pipeline.run_night(ctx)
    s = pipeline.run_summary(ctx)
    rows, folders, current = _visible(home, ctx.run_id)
    if s["status"] == "published":
        assert step == STEP_NAMES[-1] == "publish", "only the last step may leave a published run"
        assert s["message"].startswith("published; afterwards publish failed")
        assert rows and folders and set(current.values()) == {ctx.run_id}
    else:
        assert s["status"] == "failed" and s["message"].startswith(f"{step} failed"), s
        assert rows == 0 and folders == [], "a failed run must not be visible to agencies"
        assert set(current.values()) == {"nightly-20260302"}, (
            "agencies keep the last published night"
        )
    # A retry of the night (the fault gone) publishes it.
    monkeypatch.setitem(pipeline.STEPS, step, real)
    assert pipeline.run_night(ctx)["status"] == "published"
    assert set(_visible(home, ctx.run_id)[2].values()) == {ctx.run_id}


def test_publication_failing_midway_shows_nothing(night_one, monkeypatch):
    from scoring.publication.publish import FAULT_ENV

    landing, home = night_one
    monkeypatch.setenv(FAULT_ENV, "publish:3")
    ctx = pipeline.RunContext(as_of="2026-03-03", landing=landing, home=home)
    with pytest.raises(RuntimeError, match="fault injected"):
        pipeline.run_night(ctx)
    s = pipeline.run_summary(ctx)
    rows, folders, current = _visible(home, ctx.run_id)
    assert s["status"] == "failed" and rows == 0 and folders == []
    assert set(current.values()) == {"nightly-20260302"}
    # The report was written before publication; its status line says what happened next.
    assert "<!--status-->failed<!--/status-->" in (home / s["report"]).read_text(encoding="utf-8")


def test_a_night_whose_only_delivery_was_rejected_still_gets_its_report(tmp_path):
    """A court file re-sent unreadable is rejected at intake, and nothing else arrived: whatever
    the night's outcome, the report (with the provider feedback the court needs) is written."""
    from scoring.history.store import Store
    from scoring.world.province import write_deliveries

    out, home = tmp_path / "province", tmp_path / "home"
    write_deliveries(out, "2026-03-02", n_entities=ENTITIES, seed=3)
    landing = out / "landing"
    first = pipeline.run_night(pipeline.RunContext(as_of="2026-03-02", landing=landing, home=home))
    assert first["status"] == "published", first
    (landing / "court" / "20260303_dishonest_debtor_resent.csv").write_bytes(b"\x00\xff\xfe" * 50)
    ctx = pipeline.RunContext(as_of="2026-03-03", landing=landing, home=home)
    pipeline.run_night(ctx)
    run = Store.open(None, home).run_folder(ctx.run_id)
    text = run.report.read_text(encoding="utf-8")
    assert "Provider feedback" in text and "court" in text
    feedback = run.provider_report.read_text(encoding="utf-8-sig").splitlines()
    court = [line for line in feedback if line.startswith("court,")]
    assert court and court[0].split(",")[feedback[0].split(",").index("rejected_files")] == "1"
