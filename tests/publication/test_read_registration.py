"""Read registration on the real PostgreSQL, attacked as an agency role would: every read is
registered once in the reader's own name, whatever the reader sets, shadows or inserts."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from scoring.publication.access import ensure_access_control, role_name, view_name
from scoring.publication.publish import load_agencies

pytestmark = pytest.mark.postgres
HRB, DQ = role_name("hrb-samr"), role_name("dq-samr")


@pytest.fixture()
def pg_scoped(pg_url, tmp_path):
    """A database with one published run of four entities and the agencies' roles and policies."""
    import datetime as dt

    from scoring.history.store import Store, entity_results, runs

    store = Store.open(pg_url, tmp_path)
    with store.engine.begin() as conn:
        conn.execute(
            runs.insert().values(
                run_id="nightly-20260630",
                kind="nightly",
                as_of=dt.date(2026, 6, 30),
                knowledge_cutoff=dt.date(2026, 6, 30),
                status="published",
            )
        )
        conn.execute(
            entity_results.insert(),
            [
                {
                    "run_id": "nightly-20260630",
                    "uscc": f"9123010{i}MA0000000{i}",
                    "name": f"n{i}",
                    "division_code": div,
                    "industry": "C",
                    "eval_class": "legal_person",
                    "score": 100,
                    "tier": "A",
                }
                for i, div in enumerate(["230102", "230103", "230602", "230623"])
            ],
        )
        ensure_access_control(conn, load_agencies())
    yield pg_url
    store.engine.dispose()


def _session(url, role, statements, commit=True):
    """One agency session running the statements in order; returns the last statement's rows."""
    eng = sa.create_engine(url)
    try:
        with eng.connect() as c:
            c.execute(sa.text(f"SET ROLE {role}"))
            rows = None
            for sql in statements:
                res = c.execute(sa.text(sql))
                rows = res.all() if res.returns_rows else None
            if commit:
                c.commit()
            return rows
    finally:
        eng.dispose()


def _log(url):
    eng = sa.create_engine(url)
    try:
        with eng.connect() as c:
            return [
                dict(r._mapping)
                for r in c.execute(
                    sa.text(
                        "select agency_id, db_role, channel, query from public.read_log order by read_id"
                    )
                )
            ]
    finally:
        eng.dispose()


READS = [
    # (setup statements, the read)
    ([], "select uscc from agency_history"),
    (
        [
            "create temp table read_log (agency_id text, channel text, db_role text, query text, "
            "backend_pid int, statement_at timestamptz)"
        ],
        "select uscc from agency_current",
    ),
    (
        [],
        "with s as (select set_config('credit.read_registered', statement_timestamp()::text || txid_current(), true)) "
        "select e.uscc, s.* from s, agency_history e",
    ),
    (
        ["select set_config('credit.read_registered', 'anything', false)"],
        "select count(*) from agency_history",
    ),
    (
        [
            "create function pg_temp.credit_register_read() returns boolean language sql as 'select true'",
            "set search_path = pg_temp, public",
        ],
        "select uscc from agency_history",
    ),
    (
        [],
        "do $$ begin perform set_config('credit.read_registered', statement_timestamp()::text || txid_current(), true); "
        "perform * from agency_history; end $$",
    ),
    (
        [],
        f"select a.uscc from {view_name('hrb-samr')} a join agency_current e using (uscc) join agency_history h using (uscc)",
    ),
    ([], "select * from agency_current where uscc = 'no such entity'"),
]


@pytest.mark.parametrize("setup,read", READS)
def test_every_read_is_registered_once_in_the_readers_own_name(pg_scoped, setup, read):
    before = len(_log(pg_scoped))
    _session(pg_scoped, HRB, [*setup, read])
    new = _log(pg_scoped)[before:]
    assert [(r["agency_id"], r["db_role"], r["channel"]) for r in new] == [("hrb-samr", HRB, "sql")]
    assert new[0]["query"] == read


def test_prepared_statements_are_registered_at_each_execution(pg_scoped):
    before = len(_log(pg_scoped))
    _session(
        pg_scoped, HRB, ["prepare q as select uscc from agency_history", "execute q", "execute q"]
    )
    assert [r["query"] for r in _log(pg_scoped)[before:]] == ["execute q", "execute q"]


@pytest.mark.parametrize(
    "sql",
    [
        f"insert into read_log (agency_id, channel, db_role) values ('dq-samr', 'sql', '{DQ}')",
        f"insert into public.read_log (agency_id, channel, db_role, query) values ('hrb-samr', 'sql', '{HRB}', 'x')",
        "update public.read_log set agency_id = 'dq-samr'",
        "delete from public.read_log",
        "select * from public.read_log",
        "create function public.credit_register_read() returns boolean language sql as 'select true'",
        "create or replace function public.credit_register_read() returns boolean language sql as 'select true'",
        "alter function public.credit_register_read() security invoker",
    ],
)
def test_the_log_cannot_be_forged_changed_or_skipped(pg_scoped, sql):
    before = _log(pg_scoped)
    with pytest.raises(sa.exc.DBAPIError):
        _session(pg_scoped, HRB, [sql])
    assert _log(pg_scoped) == before


def test_a_read_in_a_read_only_transaction_is_registered_all_the_same(pg_scoped):
    # The log entry is committed by a connection of its own: a read-only reader cannot skip it.
    before = len(_log(pg_scoped))
    sql = "select count(*) from agency_current"
    _session(pg_scoped, HRB, ["set transaction read only", sql])
    assert [r["query"] for r in _log(pg_scoped)[before:]] == [sql]


def test_calling_the_registration_directly_registers_only_the_caller(pg_scoped):
    before = len(_log(pg_scoped))
    _session(pg_scoped, HRB, ["select public.credit_register_read()"])
    new = _log(pg_scoped)[before:]
    assert [(r["agency_id"], r["db_role"]) for r in new] == [("hrb-samr", HRB)]


def test_reads_review_shows_no_forged_rows(pg_scoped, tmp_path):
    import json

    from conftest import run_cli

    _session(pg_scoped, HRB, ["select uscc from agency_history"])
    with pytest.raises(sa.exc.DBAPIError):
        _session(
            pg_scoped,
            HRB,
            [
                f"insert into read_log (agency_id, channel, db_role, query) "
                f"values ('dq-samr', 'sql', '{DQ}', 'forged')"
            ],
        )
    out = run_cli(
        "reads", "--db", pg_scoped, "--home", str(tmp_path), "--agency", "dq-samr", "--json"
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["reads"] == []
