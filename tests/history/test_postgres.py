"""The same pipeline against the real PostgreSQL server gives the same result as SQLite."""

import json

import pytest
import sqlalchemy as sa
from conftest import AS_OF, run_cli

pytestmark = pytest.mark.postgres


def test_same_pipeline_on_postgresql(province, sqlite_run, pg_url, tmp_path):
    p = run_cli(
        "run",
        "--as-of",
        AS_OF,
        "--landing",
        str(province / "landing"),
        "--home",
        str(tmp_path),
        "--db",
        pg_url,
        "--json",
    )
    assert p.returncode == 0, p.stderr[-3000:]
    s = json.loads(p.stdout)
    assert s["status"] == "published"
    assert s["output_sha256"] == sqlite_run["summary"]["output_sha256"]
    assert s["tiers"] == sqlite_run["summary"]["tiers"]
    eng = sa.create_engine(pg_url)
    with eng.connect() as conn:
        assert conn.dialect.name == "postgresql"
        n = conn.execute(sa.text("select count(*) from entity_results")).scalar()
        q = conn.execute(sa.text("select count(*) from quarantine")).scalar()
        rev = conn.execute(sa.text("select version_num from alembic_version")).scalar()
    eng.dispose()
    assert n == s["entities_scored"] and q > 0 and rev


def test_migrations_match_the_models_on_postgresql(pg_url):
    _assert_no_drift(pg_url)


def test_migrations_match_the_models_on_sqlite(tmp_path):
    _assert_no_drift(f"sqlite:///{tmp_path / 'm.db'}")


def _assert_no_drift(url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import scoring.history.exchange  # noqa: F401  (its tables are models too)
    import scoring.history.snapshot_index  # noqa: F401  (likewise)
    from scoring.history.store import metadata, migrate, schema_include_object

    migrate(url)
    eng = sa.create_engine(url)
    with eng.connect() as conn:
        # Partitions (entity_results_p00..p15 on PostgreSQL) are their parent's storage, not models.
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"include_object": schema_include_object}),
            metadata,
        )
    eng.dispose()
    assert diff == []
