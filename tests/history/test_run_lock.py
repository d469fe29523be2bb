"""One run at a time per store: a second run is told who holds the lock (in JSON too) and exits
with EX_TEMPFAIL, on SQLite (lock file) and on PostgreSQL (advisory lock)."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

from scoring.history.runlock import EXIT_LOCKED, run_lock
from scoring.history.store import Store


def _second_run(tmp_path, home, db=None):
    landing = tmp_path / "landing"
    landing.mkdir(exist_ok=True)
    args = [
        "run",
        "--as-of",
        "2026-03-31",
        "--landing",
        str(landing),
        "--home",
        str(home),
        "--json",
    ]
    return run_cli(*args, *(["--db", db] if db else []))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_second_run_is_refused_clearly_while_one_holds_the_store(backend, tmp_path, request):
    db = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    home = tmp_path / "home"
    store = Store.open(db, home)
    with run_lock(store, "nightly-20260330"):
        p = _second_run(tmp_path, home, db)
        assert p.returncode == EXIT_LOCKED, p.stderr[-2000:]
        out = json.loads(p.stdout)
        assert out["status"] == "locked" and "another run holds the lock" in out["message"]
        assert "nightly-20260330" in json.dumps(out["holder"])
        assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
    with run_lock(store, "after"):  # released on exit
        pass
    store.engine.dispose()
