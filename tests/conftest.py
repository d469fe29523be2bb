"""Shared fixtures: a small demo province generated once, and real databases."""

from __future__ import annotations

import os
import uuid
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SMALL_ENTITIES = 3000
AS_OF = "2026-06-30"


@pytest.fixture(scope="session")
def province(tmp_path_factory) -> Path:
    """A 3,000-entity demo province delivered up to 2026-06-30 (folder with landing/ and ground_truth/)."""
    from scoring.world.province import write_deliveries

    out = tmp_path_factory.mktemp("province")
    write_deliveries(out, AS_OF, n_entities=SMALL_ENTITIES, seed=7, defect_rate=0.02)
    return out


def _pg_admin_url() -> str:
    return os.environ.get("CREDIT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """The real PostgreSQL server; skipped (visibly) only outside CI when there is none."""
    import sqlalchemy as sa

    url = _pg_admin_url()
    try:
        eng = sa.create_engine(url)
        with eng.connect() as conn:
            conn.execute(sa.text("select 1"))
        eng.dispose()
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no server here"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must have PostgreSQL at {url}: {exc}")
        pytest.skip(f"no PostgreSQL at {url} ({type(exc).__name__}); set CREDIT_TEST_PG_URL")
    return url


@pytest.fixture()
def pg_url(pg_server_url):
    """A fresh, empty database on the real server for one test, dropped afterwards."""
    import sqlalchemy as sa

    name = f"credit_t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(autouse=True)
def _scoring_warnings_are_errors():
    """Warnings raised from our own code fail the test (GX and Airflow chatter is theirs)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", module=r"scoring(\..*)?")
        yield


def run_cli(*args: str, env: dict | None = None, timeout: int = 900):
    """Run the real `credit` command line in a subprocess; returns CompletedProcess."""
    import subprocess
    import sys

    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "scoring", *args],
        capture_output=True,
        text=True,
        env=e,
        timeout=timeout,
        cwd=REPO,
    )


@pytest.fixture(scope="session")
def sqlite_run(province, tmp_path_factory):
    """The whole nightly pipeline on the embedded SQLite store, via the CLI."""
    import json

    home = tmp_path_factory.mktemp("home_sqlite")
    p = run_cli(
        "run",
        "--as-of",
        AS_OF,
        "--landing",
        str(province / "landing"),
        "--home",
        str(home),
        "--json",
        env={"CREDIT_DB_URL": ""},
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return {"home": home, "summary": json.loads(p.stdout), "url": f"sqlite:///{home / 'credit.db'}"}
