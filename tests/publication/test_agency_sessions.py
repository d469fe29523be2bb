"""Agency sessions on the real PostgreSQL, as hostile as an agency can be with its own role: it
cannot stall a night by holding a transaction open, no read of its escapes the log whatever its
transaction does afterwards, and the server's statistics give it no count of others' rows."""

from __future__ import annotations

import datetime as dt
import time

import pytest
import sqlalchemy as sa

from scoring.publication.access import ensure_access_control, role_name
from scoring.publication.publish import load_agencies

pytestmark = pytest.mark.postgres
HRB = role_name("hrb-samr")


def _night(conn, run_id: str, as_of: dt.date, status: str = "published") -> None:
    from scoring.history.store import entity_results, runs

    conn.execute(
        runs.insert().values(
            run_id=run_id,
            kind="nightly",
            as_of=as_of,
            knowledge_cutoff=as_of,
            status=status,
        )
    )
    conn.execute(
        entity_results.insert(),
        [
            {
                "run_id": run_id,
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


@pytest.fixture()
def pg_scoped(pg_url, tmp_path):
    from scoring.history.store import Store

    store = Store.open(pg_url, tmp_path)
    with store.engine.begin() as conn:
        _night(conn, "nightly-20260630", dt.date(2026, 6, 30))
        ensure_access_control(conn, load_agencies())
    yield store
    store.engine.dispose()


def _log(url) -> list[str]:
    eng = sa.create_engine(url)
    try:
        with eng.connect() as c:
            return list(c.execute(sa.text("select query from read_log order by read_id")).scalars())
    finally:
        eng.dispose()


def _agency(url):
    """A raw psycopg connection in the agency's role (not autocommit: a transaction is open from
    the first statement until commit or rollback)."""
    import psycopg

    conn = psycopg.connect(
        sa.engine.make_url(url).set(drivername="postgresql").render_as_string(False)
    )
    conn.execute(f"SET ROLE {HRB}")
    conn.commit()
    return conn


def _rollback(c):
    c.execute("BEGIN") if c.autocommit else None
    rows = c.execute("select uscc from agency_current").fetchall()
    c.rollback()
    return rows


def _savepoint(c):
    c.execute("SAVEPOINT s")
    rows = c.execute("select uscc from agency_current").fetchall()
    c.execute("ROLLBACK TO SAVEPOINT s")
    c.commit()
    return rows


def _error_after_streaming(c):
    rows = []
    cur = c.cursor(name="stream")  # server-side: rows reach the reader before the error
    cur.itersize = 1
    with pytest.raises(Exception, match="division by zero"):
        # rows of the scope first, then a value that fails only when it is computed
        cur.execute(
            "select uscc from agency_current union all select (1 / (random() * 0)::int)::text"
        )
        for row in cur:
            rows.append(row)
    c.rollback()
    assert rows  # a row was streamed before the statement failed
    return rows


def _cursor(c):
    c.execute("DECLARE cur CURSOR FOR select uscc from agency_current")
    rows = c.execute("FETCH 1 FROM cur").fetchall()
    c.rollback()
    return rows


def _copy(c):
    cur = c.cursor()
    with cur.copy("COPY (select uscc from agency_current) TO STDOUT") as cp:
        data = b"".join(bytes(b) for b in cp)
    c.rollback()
    return data.splitlines()


@pytest.mark.parametrize(
    "read,query",
    [
        (_rollback, "select uscc from agency_current"),
        (_savepoint, "select uscc from agency_current"),
        (
            _error_after_streaming,
            'FETCH FORWARD 1 FROM "stream"\n-- cursor: DECLARE "stream" CURSOR FOR '
            "select uscc from agency_current union all "
            "select (1 / (random() * 0)::int)::text",
        ),
        (
            _cursor,
            "FETCH 1 FROM cur\n-- cursor: DECLARE cur CURSOR FOR select uscc from agency_current",
        ),
        (_copy, "COPY (select uscc from agency_current) TO STDOUT"),
    ],
    ids=["rollback", "savepoint-rollback", "error-after-streaming", "cursor", "copy"],
)
def test_a_read_leaves_a_trace_whatever_its_transaction_does(pg_scoped, read, query):
    before = _log(pg_scoped.url)
    c = _agency(pg_scoped.url)
    try:
        got = read(c)
    finally:
        c.close()
    assert got  # the agency did read rows in its scope
    new = _log(pg_scoped.url)[len(before) :]
    assert len(new) == 1, new
    assert new[0] == query


@pytest.mark.parametrize(
    "sql",
    [
        "select n_live_tup from pg_stat_user_tables",
        "select n_live_tup from pg_stat_all_tables",
        "select * from pg_statio_user_tables",
        "select pg_stat_get_live_tuples('entity_results_p00'::regclass)",
        "select pg_stat_get_tuples_inserted('entity_results'::regclass)",
        "select count(*) from entity_results",  # the table itself: only through the views
        "explain select * from entity_results where uscc > '9'",
    ],
)
def test_statistics_and_the_table_are_no_oracle_of_others_rows(pg_scoped, sql):
    c = _agency(pg_scoped.url)
    try:
        with pytest.raises(Exception, match="permission denied"):
            c.execute(sql)
    finally:
        c.close()


def _plan_nodes(node):
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


def test_explain_analyze_shows_nothing_beyond_the_agencys_own_rows(pg_scoped):
    """Others' rows are never filtered in an agency's plan: they are not in what it reads."""
    c = _agency(pg_scoped.url)
    try:
        own = c.execute("select count(*) from agency_history").fetchone()[0]
        for sql in (
            "select * from agency_current where uscc between '0' and 'Z'",
            "select * from agency_history where division_code like '2306%'",  # others' division
        ):
            plan = c.execute(f"explain (analyze, format json) {sql}").fetchone()[0][0]["Plan"]
            nodes = list(_plan_nodes(plan))
            assert not any("entity_results" in n.get("Relation Name", "") for n in nodes)
            assert all(n.get("Actual Rows", 0) <= own for n in nodes)
            assert sum(n.get("Rows Removed by Filter", 0) for n in nodes) <= own
    finally:
        c.close()
    assert own == 2  # of the four entities, two are in Harbin's scope


def test_agency_roles_carry_session_limits(pg_scoped):
    with pg_scoped.engine.connect() as conn:
        settings = set(
            conn.execute(
                sa.text(
                    "select unnest(s.setconfig) from pg_db_role_setting s join pg_roles r "
                    "on r.oid = s.setrole where s.setdatabase = 0 and r.rolname = :r"
                ),
                {"r": HRB},
            ).scalars()
        )
    keys = {s.split("=", 1)[0] for s in settings}
    assert {"idle_in_transaction_session_timeout", "statement_timeout", "log_statement"} <= keys


def test_a_publication_does_not_wait_for_an_agency_transaction_left_open(pg_scoped):
    """The agency reads and leaves its transaction open; the next night's publishing transaction
    (scope refresh, status switch) commits at once, and the agency's next statement sees it."""
    c = _agency(pg_scoped.url)
    try:
        assert c.execute("select count(*) from agency_current").fetchone()[0] > 0  # open now
        from scoring.history.store import runs

        start = time.monotonic()
        with pg_scoped.engine.begin() as conn:
            _night(conn, "nightly-20260701", dt.date(2026, 7, 1), status="scored")
            ensure_access_control(conn, load_agencies())
            conn.execute(
                sa.update(runs)
                .where(runs.c.run_id == "nightly-20260701")
                .values(status="published")
            )
        assert time.monotonic() - start < 4  # lock_timeout is 5 s: nothing waited for a lock
        c.commit()
        now = c.execute("select distinct run_id from agency_current").fetchall()
        assert now == [("nightly-20260701",)]
    finally:
        c.close()


def test_issued_credentials_log_in_with_the_limits_and_the_statement_log(pg_scoped):
    """An agency connects as its own LOGIN role (credentials issued by a command): the role's
    settings apply at login, so its session has the timeouts and logs every statement."""
    import psycopg

    from scoring.publication.access import issue_credentials, revoke_credentials

    with pg_scoped.engine.begin() as conn:
        secret = issue_credentials(conn, "hrb-samr", load_agencies())
    assert secret["role"] == HRB and len(secret["password"]) >= 24
    url = sa.engine.make_url(pg_scoped.url).set(
        drivername="postgresql", username=HRB, password=secret["password"]
    )
    with psycopg.connect(url.render_as_string(False)) as c:
        shown = {
            k: c.execute(f"show {k}").fetchone()[0]
            for k in ("idle_in_transaction_session_timeout", "statement_timeout", "log_statement")
        }
        assert c.execute("select count(*) from agency_current").fetchone()[0] == 2
    assert shown == {
        "idle_in_transaction_session_timeout": "1min",
        "statement_timeout": "5min",
        "log_statement": "all",
    }
    assert _log(pg_scoped.url)[-1] == "select count(*) from agency_current"
    with pg_scoped.engine.begin() as conn, pytest.raises(ValueError, match="no agency"):
        issue_credentials(conn, "nobody", load_agencies())
    with pg_scoped.engine.begin() as conn:
        revoke_credentials(conn, "hrb-samr")
    with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
        psycopg.connect(url.render_as_string(False))


def test_a_whole_night_publishes_while_an_agency_holds_a_transaction_open(
    province, pg_url, tmp_path
):
    """An agency reads the published night and leaves its transaction open (the hostile case that
    used to stall every night on DDL); the next night runs end to end and publishes."""
    import json

    from conftest import AS_OF, run_cli

    def night(as_of):
        p = run_cli(
            "run", "--as-of", as_of, "--landing", str(province / "landing"),
            "--home", str(tmp_path), "--db", pg_url, "--json",
            timeout=900,
        )  # fmt: skip
        assert p.returncode == 0, p.stderr[-3000:]
        return json.loads(p.stdout)

    first = night(AS_OF)
    assert first["status"] == "published"
    c = _agency(pg_url)
    try:
        held = c.execute("select count(*), min(run_id) from agency_current").fetchone()
        assert held[0] > 0 and held[1] == first["run_id"]  # the transaction stays open from here
        second = night("2026-07-01")
        assert second["status"] == "published"
        c.commit()
        now = c.execute("select distinct run_id from agency_current").fetchall()
        assert now == [(second["run_id"],)]
    finally:
        c.close()
    eng = sa.create_engine(pg_url)
    with eng.connect() as conn:  # and no row was lost on the way: every file reconciles
        unbalanced = conn.execute(
            sa.text(
                "select count(*) from gate_results where gate = 'reconciliation' and not passed"
            )
        ).scalar()
        files = conn.execute(
            sa.text("select count(*) from gate_results where gate = 'reconciliation'")
        ).scalar()
    eng.dispose()
    assert files > 0 and unbalanced == 0


def _server_log():
    import glob
    import os

    found = sorted(
        glob.glob(os.environ.get("CREDIT_PG_LOG") or "/var/log/postgresql/postgresql-*-main.log")
    )
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must have the PostgreSQL server log (set CREDIT_PG_LOG)")
        pytest.skip("no PostgreSQL server log here; set CREDIT_PG_LOG")
    return found[-1]


def test_the_server_log_and_the_read_log_reconcile(pg_scoped):
    """Every read an agency's LOGIN session makes is in the server's statement log and in
    read_log, whatever its transaction does; the reconciliation finds none missing."""
    import psycopg

    from scoring.publication.access import issue_credentials, revoke_credentials
    from scoring.publication.reads import logged_statements, reconcile

    with pg_scoped.engine.begin() as conn:
        secret = issue_credentials(conn, "hrb-samr", load_agencies())
    url = sa.engine.make_url(pg_scoped.url).set(
        drivername="postgresql", username=HRB, password=secret["password"]
    )
    try:
        with psycopg.connect(url.render_as_string(False)) as c:
            c.execute("select count(*) from agency_current").fetchall()
            c.rollback()
            c.execute("select uscc from agency_history where uscc like '9%'").fetchall()
            c.execute("DECLARE k CURSOR FOR select uscc from agency_current")
            c.execute("FETCH 1 FROM k").fetchall()
            c.rollback()
            with pytest.raises(psycopg.errors.UndefinedColumn):
                c.execute("select no_such_column from agency_current")  # refused, read nothing
            c.rollback()
            db = c.info.dbname
    finally:
        with pg_scoped.engine.begin() as conn:
            revoke_credentials(conn, "hrb-samr")
    time.sleep(0.5)  # the server writes its log as it goes
    with open(_server_log(), encoding="utf-8", errors="replace") as fh:
        logged = logged_statements(fh, {HRB}, db)
    with pg_scoped.engine.connect() as conn:
        registered = [
            dict(r._mapping)
            for r in conn.execute(
                sa.text("select backend_pid, query from read_log order by read_id")
            )
        ]
    out = reconcile(registered, logged)
    assert out["logged_but_not_registered"] == []
    assert out["logged_reads"] == 4 and out["failed_before_reading"] == 1
    assert out["registered_reads"] == 3 and out["registered_but_not_logged"] == 0


def test_a_logged_read_without_its_registration_is_found():
    from scoring.publication.reads import logged_statements, reconcile

    lines = [
        f"2026-12-07 03:34:34.056 UTC [7825] {HRB}@credit LOG:  statement: select * from agency_current\n",
        f"2026-12-07 03:34:35.001 UTC [7825] {HRB}@credit LOG:  statement: select 1 from\n",
        "\tagency_history\n",
        f"2026-12-07 03:34:35.002 UTC [7825] {HRB}@other LOG:  statement: select * from agency_current\n",
        "2026-12-07 03:34:35.003 UTC [7826] postgres@credit LOG:  statement: select * from agency_current\n",
    ]
    logged = logged_statements(lines, {HRB}, "credit")
    assert [s["sql"] for s in logged] == [
        "select * from agency_current",
        "select 1 from\nagency_history",
    ]
    out = reconcile([{"backend_pid": 7825, "query": "select * from agency_current"}], logged)
    assert [s["sql"] for s in out["logged_but_not_registered"]] == ["select 1 from\nagency_history"]


def test_credentials_and_the_reads_review_from_the_command_line(pg_scoped):
    import json

    import psycopg
    from conftest import run_cli

    common = ["--db", pg_scoped.url, "--home", str(pg_scoped.home), "--json"]
    issued = run_cli("credentials", "--agency", "hrb-samr", *common)
    assert issued.returncode == 0, issued.stderr[-2000:]
    secret = json.loads(issued.stdout)
    url = sa.engine.make_url(pg_scoped.url).set(
        drivername="postgresql", username=secret["role"], password=secret["password"]
    )
    try:
        with psycopg.connect(url.render_as_string(False)) as c:
            c.execute("select uscc from current_hrb_samr").fetchall()
            c.rollback()
    finally:
        revoked = run_cli("credentials", "--agency", "hrb-samr", "--revoke", *common)
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["login"] is False
    time.sleep(0.5)
    review = run_cli("reads", "--agency", "hrb-samr", "--server-log", _server_log(), *common)
    assert review.returncode == 0, review.stderr[-2000:]
    log = json.loads(review.stdout)["server_log"]
    assert log["logged_reads"] == 1 and log["logged_but_not_registered"] == []
    refused = run_cli("credentials", "--agency", "nobody", *common)
    assert refused.returncode != 0 and "unknown agency" in refused.stderr
    assert "Traceback" not in refused.stderr
