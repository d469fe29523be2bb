"""A publishing process killed with SIGKILL (no cleanup code runs): agencies see nothing of the
night, and the next run closes it as failed; killed after the database commit, the next run
finishes what was committed. The kill is real: the process signals itself at a chosen point."""

from __future__ import annotations

import json
import signal

import pytest
import sqlalchemy as sa
from conftest import run_cli

from scoring.publication.publish import load_agencies


@pytest.fixture()
def two_nights(tmp_path):
    from scoring.world.province import write_deliveries

    root = tmp_path / "prov"
    write_deliveries(root, "2026-03-31", n_entities=300, seed=5, defect_rate=0.0)
    home = tmp_path / "home"
    first = run_cli(
        "run",
        "--as-of",
        "2026-03-31",
        "--landing",
        str(root / "landing"),
        "--home",
        str(home),
        "--json",
    )
    assert first.returncode == 0, first.stderr[-2000:]
    write_deliveries(root, "2026-04-30", n_entities=300, seed=5, defect_rate=0.0)
    return root, home


def _status(home, run_id):
    from scoring.history.store import Store, runs

    store = Store.open(None, home)
    with store.engine.connect() as conn:
        row = conn.execute(
            sa.select(runs.c.status, runs.c.message).where(runs.c.run_id == run_id)
        ).first()
    store.engine.dispose()
    return tuple(row) if row else None


def _visible(home, run_id):
    return sorted(p.parent.name for p in (home / "outbox").glob(f"*/{run_id}"))


def test_killed_while_staging_leaves_nothing_visible_and_is_closed_as_failed(two_nights):
    root, home = two_nights
    killed = run_cli(
        "run",
        "--as-of",
        "2026-04-30",
        "--landing",
        str(root / "landing"),
        "--home",
        str(home),
        "--json",
        env={"CREDIT_FAULT_INJECT": "publish-kill:staged:4"},
    )
    assert killed.returncode == -signal.SIGKILL
    assert _visible(home, "nightly-20260430") == []
    assert all(
        (d / "CURRENT").read_text().startswith("nightly-20260331")
        for d in (home / "outbox").iterdir()
    )
    assert _status(home, "nightly-20260430")[0] == "scored"  # never published
    from scoring.world.province import write_deliveries

    write_deliveries(root, "2026-05-31", n_entities=300, seed=5, defect_rate=0.0)
    nxt = run_cli(
        "run",
        "--as-of",
        "2026-05-31",
        "--landing",
        str(root / "landing"),
        "--home",
        str(home),
        "--json",
    )
    assert nxt.returncode == 0, nxt.stderr[-2000:]
    status, message = _status(home, "nightly-20260430")
    assert status == "failed" and "interrupted" in message and "nightly-20260531" in message
    assert _visible(home, "nightly-20260430") == []
    assert not [p for p in (home / "outbox").rglob(".*") if "20260430" in p.name]
    assert len(_visible(home, "nightly-20260531")) == 12


def test_killed_after_the_commit_is_finished_by_the_next_run(two_nights):
    root, home = two_nights
    killed = run_cli(
        "run",
        "--as-of",
        "2026-04-30",
        "--landing",
        str(root / "landing"),
        "--home",
        str(home),
        "--json",
        env={"CREDIT_FAULT_INJECT": "publish-kill:swapped:3"},
    )
    assert killed.returncode == -signal.SIGKILL
    assert _status(home, "nightly-20260430")[0] == "published"
    assert len(_visible(home, "nightly-20260430")) == 3
    again = run_cli(
        "run",
        "--as-of",
        "2026-04-30",
        "--landing",
        str(root / "landing"),
        "--home",
        str(home),
        "--json",
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(_visible(home, "nightly-20260430")) == 12
    assert all(
        (d / "CURRENT").read_text().startswith("nightly-20260430")
        for d in (home / "outbox").iterdir()
    )
    for folder in (home / "outbox").glob("*/nightly-20260430"):
        manifest = json.loads((folder / "manifest.json").read_text())
        # the night after a full one delivers what changed (publish.py: deltas between monthly fulls)
        assert (
            manifest["run_id"] == "nightly-20260430"
            and manifest["base_run_id"] == "nightly-20260331"
        )
        xlsx = {a["id"] for a in load_agencies() if a.get("xlsx")}
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            [
                "changes.csv",
                "changes.parquet",
                "manifest.json",
                "removed.csv",
                "字段说明.csv",
            ]
            + (["changes.xlsx"] if folder.parent.name in xlsx else [])
        )
