"""entity_results partitioned by entity-hash bucket (migration 0007): on PostgreSQL 16 range
partitions of 64 buckets each; rows land in the child their bucket says; a database holding rows
and agency access control at 0006 keeps every row, its bucket and what each agency reads."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from scoring.common.partitions import bucket_of
from scoring.history.store import Store, entity_results

MIGRATIONS = Path(__file__).resolve().parents[2] / "scoring" / "migrations"
PUBLISHED, UNPUBLISHED = "nightly-20260630", "nightly-20260731"
DIVISIONS = ["230102", "230103", "230602", "230623", "231202"]
INDUSTRIES = ["B", "C", "E", "G", "Q"]


def _alembic(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _uscc(i: int) -> str:
    return f"91230{i:013d}"


def _rows(n: int) -> list[dict]:
    """n entities in each of two runs, spread over divisions and industries (0006 columns only)."""
    return [
        {
            "run_id": run,
            "uscc": _uscc(i),
            "name": f"n{i}",
            "division_code": DIVISIONS[i % 5],
            "industry": INDUSTRIES[(i // 5) % 5],
            "eval_class": "legal_person",
            "score": 500 + i % 300,
            "tier": "ABCD"[i % 4],
        }
        for run in (PUBLISHED, UNPUBLISHED)
        for i in range(n)
    ]


def _stored(conn, bucket: bool = True) -> pd.DataFrame:
    cols = "run_id, uscc, score" + (", part_bucket" if bucket else "")
    if bucket and conn.dialect.name == "postgresql":
        cols += ", tableoid::regclass::text as child"  # the partition that holds the row
    return pd.read_sql(sa.text(f"select {cols} from entity_results order by run_id, uscc"), conn)


def test_part_bucket_is_filled_on_sqlite_when_upgrading_from_0006(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    command.upgrade(_alembic(url), "0006")
    eng = sa.create_engine(url)
    with eng.begin() as c:
        c.execute(
            sa.text(
                "insert into entity_results (run_id, uscc, name, division_code, industry, eval_class, "
                "score, tier) values (:run_id, :uscc, :name, :division_code, :industry, :eval_class, "
                ":score, :tier)"
            ),
            _rows(300),
        )
    command.upgrade(_alembic(url), "head")
    with eng.connect() as c:
        got = _stored(c)
        pk = sa.inspect(c).get_pk_constraint("entity_results")
    eng.dispose()
    assert len(got) == 600
    assert got["part_bucket"].tolist() == bucket_of(got["uscc"].tolist()).tolist()
    assert pk["constrained_columns"] == ["run_id", "uscc", "part_bucket"]


pg = pytest.mark.postgres


@pg
def test_a_fresh_database_partitions_results_by_bucket_range(pg_url, tmp_path):
    store = Store.open(pg_url, tmp_path)
    try:
        with store.engine.begin() as c:
            strategy, key = c.execute(
                sa.text(
                    "select p.partstrat, a.attname from pg_partitioned_table p join pg_attribute a "
                    "on a.attrelid = p.partrelid and a.attnum = p.partattrs[0] "
                    "where p.partrelid = 'entity_results'::regclass"
                )
            ).one()
            children = c.execute(
                sa.text(
                    "select c.relname, pg_get_expr(c.relpartbound, c.oid), c.relrowsecurity from pg_inherits i "
                    "join pg_class c on c.oid = i.inhrelid where i.inhparent = 'entity_results'::regclass "
                    "order by c.relname"
                )
            ).all()
            pk = c.execute(
                sa.text(
                    "select pg_get_constraintdef(oid) from pg_constraint "
                    "where conrelid = 'entity_results'::regclass and contype = 'p'"
                )
            ).scalar()
            # Bulk writes come without the bucket (insert_frame fills it), single rows too (the default).
            frame = pd.DataFrame(_rows(200)).drop(columns=["name"])
            store.insert_frame(c, entity_results, frame)
            c.execute(
                entity_results.insert(),
                [{"run_id": "one", "uscc": _uscc(7), "score": 1, "tier": "A"}],
            )
            got = _stored(c)
            # A piece's delete (its run, its bucket range) is planned on its one child only.
            plan = "\n".join(
                r[0]
                for r in c.execute(
                    sa.text(
                        "explain (costs off) delete from entity_results where run_id = 'one' "
                        "and part_bucket >= 64 and part_bucket < 128"
                    )
                )
            )
            with (
                pytest.raises(sa.exc.IntegrityError, match="no partition"),
                c.begin_nested(),
            ):  # a bucket outside 0..1023 has no child
                c.execute(
                    sa.text(
                        "insert into entity_results (run_id, uscc, score, tier, part_bucket) "
                        "values ('x', 'x', 1, 'A', 1024)"
                    )
                )
    finally:
        store.engine.dispose()
    assert (strategy, key) == ("r", "part_bucket")
    assert pk == "PRIMARY KEY (run_id, uscc, part_bucket)"
    assert [name for name, _, _ in children] == [f"entity_results_p{p:02d}" for p in range(16)]
    bounds = [
        (int(b.split("(")[1].split(")")[0]), int(b.split("(")[2].split(")")[0]))
        for _, b, _ in children
    ]
    assert bounds == [(64 * p, 64 * (p + 1)) for p in range(16)]  # 0..1024, no gap, no overlap
    assert all(rls for _, _, rls in children)
    assert (
        len(got) == 401
        and got.loc[got["run_id"] == "one", "part_bucket"].item() == bucket_of([_uscc(7)])[0]
    )
    assert got["part_bucket"].tolist() == bucket_of(got["uscc"].tolist()).tolist()
    assert (got["child"] == [f"entity_results_p{b // 64:02d}" for b in got["part_bucket"]]).all()
    assert got["child"].nunique() == 16
    assert "entity_results_p01" in plan and not any(
        f"entity_results_p{p:02d}" in plan for p in range(16) if p != 1
    )


# --------------------------------------------------------------- upgrade of a database in use


def _catalogue(conn) -> dict:
    """What agencies' reads depend on, as the server describes it."""
    one = lambda sql: [tuple(r) for r in conn.execute(sa.text(sql))]  # noqa: E731
    return {
        "policies": one(
            "select policyname, permissive, roles::text, cmd, qual, with_check from pg_policies "
            "where tablename = 'entity_results' order by 1"
        ),
        "rls": one(
            "select relrowsecurity, relforcerowsecurity, pg_get_userbyid(relowner) from pg_class "
            "where oid = 'entity_results'::regclass"
        ),
        "views": one(
            "select c.relname, pg_get_viewdef(c.oid), c.reloptions::text, pg_get_userbyid(c.relowner) "
            "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = 'public' and c.relkind = 'v' order by 1"
        ),
        "grants": one(
            "select table_name, grantee, privilege_type, is_grantable from information_schema.table_privileges "
            "where table_schema = 'public' and (table_name = 'entity_results' or table_name in "
            "(select viewname from pg_views where schemaname = 'public')) order by 1, 2, 3"
        ),
    }


AGENCY_READS = {
    "hrb-samr": [
        "select run_id, uscc from agency_current",
        "select run_id, uscc from agency_history",
        "select run_id, uscc from current_hrb_samr",
    ],
    "hlj-eco": [
        "select run_id, uscc from agency_history",
        "select run_id, uscc from current_hlj_eco",
    ],
    "lindian-samr": [
        "select run_id, uscc from agency_history where run_id = 'nightly-20260731'",
        "select run_id, uscc from current_lindian_samr",
    ],
}


def _agency_reads(url: str) -> dict:
    from scoring.publication.access import role_name

    out = {}
    eng = sa.create_engine(url)
    try:
        for agency, reads in AGENCY_READS.items():
            with eng.connect() as c:
                c.execute(sa.text(f"SET ROLE {role_name(agency)}"))
                out[agency] = [sorted(tuple(r) for r in c.execute(sa.text(q))) for q in reads]
                c.commit()
    finally:
        eng.dispose()
    return out


def _expected_scope(agency: dict, n: int) -> list[tuple]:
    inds = agency.get("industries") or []
    return sorted(
        (PUBLISHED, _uscc(i))
        for i in range(n)
        if any(DIVISIONS[i % 5].startswith(p) for p in agency["divisions"])
        and (not inds or INDUSTRIES[(i // 5) % 5] in inds)
    )


@pg
def test_upgrading_a_database_in_use_keeps_rows_buckets_and_every_agencys_reads(pg_url):
    from legacy_access import access_as_of_0006

    from scoring.publication.publish import load_agencies

    n = 500
    cfg = _alembic(pg_url)
    command.upgrade(cfg, "0006")
    eng = sa.create_engine(pg_url)
    agencies = load_agencies()
    with eng.begin() as c:
        for run, status in ((PUBLISHED, "published"), (UNPUBLISHED, "scored")):
            c.execute(
                sa.text(
                    "insert into runs (run_id, kind, as_of, knowledge_cutoff, status) "
                    "values (:r, 'nightly', :d, :d, :s)"
                ),
                {
                    "r": run,
                    "d": dt.date(2026, 6, 30) if run == PUBLISHED else dt.date(2026, 7, 31),
                    "s": status,
                },
            )
        c.execute(
            sa.text(
                "insert into entity_results (run_id, uscc, name, division_code, industry, eval_class, "
                "score, tier) values (:run_id, :uscc, :name, :division_code, :industry, :eval_class, "
                ":score, :tier)"
            ),
            _rows(n),
        )
        access_as_of_0006(c, agencies)
    with eng.connect() as c:
        before_rows, before_cat = _stored(c, bucket=False), _catalogue(c)
    before_reads = _agency_reads(pg_url)
    assert (
        before_cat["policies"]
        and before_cat["views"]
        and before_cat["grants"]
        and before_cat["rls"][0][0]
    )

    command.upgrade(cfg, "0007")
    with eng.connect() as c:
        after_rows, after_cat = _stored(c), _catalogue(c)
        partitioned = c.execute(
            sa.text("select count(*) from pg_inherits where inhparent = 'entity_results'::regclass")
        ).scalar()
    after_reads = _agency_reads(pg_url)

    assert partitioned == 16
    assert len(after_rows) == 2 * n
    pd.testing.assert_frame_equal(after_rows[["run_id", "uscc", "score"]], before_rows)
    assert after_rows["part_bucket"].tolist() == bucket_of(after_rows["uscc"].tolist()).tolist()
    assert (
        after_rows["child"] == [f"entity_results_p{b // 64:02d}" for b in after_rows["part_bucket"]]
    ).all()
    assert after_cat == before_cat  # policies, row security, views, grants: re-created as they were
    assert after_reads == before_reads
    by_id = {a["id"]: a for a in agencies}
    for agency, reads in after_reads.items():
        if agency == "lindian-samr":
            assert reads[0] == []  # nothing of the unpublished run, even through history
            assert reads[1] == _expected_scope(by_id[agency], n) != []
            continue
        assert all(r == _expected_scope(by_id[agency], n) != [] for r in reads), agency

    # And back: the plain table, the same rows and the same access.
    command.downgrade(cfg, "0006")
    with eng.connect() as c:
        down_cat = _catalogue(c)
        down_rows = _stored(c, bucket=False)
        columns = [
            r[0]
            for r in c.execute(
                sa.text(
                    "select column_name from information_schema.columns "
                    "where table_name = 'entity_results'"
                )
            )
        ]
        kind = c.execute(
            sa.text("select relkind from pg_class where oid = 'entity_results'::regclass")
        ).scalar()
    eng.dispose()
    assert kind == "r" and "part_bucket" not in columns
    pd.testing.assert_frame_equal(down_rows, before_rows)
    assert down_cat == before_cat
    assert _agency_reads(pg_url) == before_reads
    # Up to the newest: access set once by migration (the agencies' own views by the next
    # publication), the same reads through the views.
    from scoring.publication.access import ensure_access_control

    command.upgrade(cfg, "head")
    eng = sa.create_engine(pg_url)
    with eng.begin() as c:
        ensure_access_control(c, agencies)
    eng.dispose()
    assert _agency_reads(pg_url) == before_reads
