"""agency access set once by migration: row security, policies, views, grants, read registration

Revision ID: 0010
Revises: 0009

Until now every publication re-created the policies and views (``ALTER TABLE entity_results ENABLE
ROW LEVEL SECURITY``, ``DROP VIEW … CASCADE``): DDL that waits for an ACCESS EXCLUSIVE lock, so
one agency session left idle inside a transaction stalled the night and every reader queued
behind it. Here they are made once. Policies and grants name one group role, ``credit_agency``;
an agency's role only joins it, which takes no lock on any table. What an agency sees moves with
the ``runs`` rows a night commits, never with DDL.

A read is registered through a loopback ``dblink`` connection (when the server has the
extension), which commits the log entry on its own: a reader's ROLLBACK, a savepoint rolled back
or an error after rows were streamed cannot undo it. Without the extension the entry is written in
the reader's transaction (and a read-only transaction cannot read).

Agencies read only through ``agency_current`` / ``agency_history`` (and their own views over
them): views over one security-definer function that registers the read and returns the reader's
own rows, so no plan, count or statistic shows another agency's. The statistics views and the
per-table counters behind them are not theirs to read.

On SQLite (no roles) nothing changes: there the scope is what each agency's outbox receives.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

GROUP = "credit_agency"
PRIVATE = "credit_private"  # dblink and its loopback server: no agency may use either
SERVER = "credit_read_log_loopback"
COLUMNS = (
    "run_id, uscc, name, division_code, industry, eval_class, score, tier, dim_law_abiding, "
    "dim_contracts_promises, dim_qualifications_honours, dim_social_responsibility, "
    "dim_supervisory_risk, override, flags, reasons"
)
LATEST = (
    "(SELECT r.run_id FROM public.runs r WHERE r.status = 'published' AND r.kind = 'nightly' "
    "ORDER BY r.as_of DESC, r.run_id DESC LIMIT 1)"
)
# The reader: the role it has set (checked by the server against the session user's memberships)
# or the session user; "once per statement" is looked up in the log itself (this backend, this
# statement's start and text), never in a setting the reader could set.
_READER = "COALESCE(NULLIF(pg_catalog.current_setting('role', true), 'none'), session_user::text)"
_LOCAL_BODY = f"""
  DECLARE
    reader text := {_READER};
  BEGIN
    IF EXISTS (SELECT 1 FROM public.read_log l WHERE l.backend_pid = pg_catalog.pg_backend_pid()
               AND l.statement_at = pg_catalog.statement_timestamp()
               AND l.query = pg_catalog.current_query()) THEN
      RETURN true;
    END IF;
    INSERT INTO public.read_log (agency_id, channel, db_role, query, backend_pid, statement_at)
    VALUES (COALESCE((SELECT s.agency_id FROM public.agency_scope s WHERE s.role_name = reader
                      ORDER BY s.agency_id LIMIT 1), reader),
            'sql', reader, pg_catalog.current_query(), pg_catalog.pg_backend_pid(),
            pg_catalog.statement_timestamp());
    RETURN true;
  END"""
# The same, committed by a second connection of this session (opened once, kept by name): the
# check and the insert are one statement there, so they see every entry already committed.
_DBLINK_BODY = f"""
  DECLARE
    reader text := {_READER};
    agency text;
    q text := pg_catalog.current_query();
  BEGIN
    -- A FETCH names a cursor, not what it reads: the cursor's own statement goes beside it.
    IF q ~* '^\\s*(fetch|move)\\M' THEN
      q := q || E'\\n-- cursor: ' || COALESCE((SELECT pg_catalog.string_agg(c.statement, E'\\n'
             ORDER BY c.name) FROM pg_catalog.pg_cursors c), '');
    END IF;
    agency := COALESCE((SELECT s.agency_id FROM public.agency_scope s WHERE s.role_name = reader
                        ORDER BY s.agency_id LIMIT 1), reader);
    IF NOT ('credit_read_log' = ANY (COALESCE({PRIVATE}.dblink_get_connections(), '{{}}'))) THEN
      PERFORM {PRIVATE}.dblink_connect('credit_read_log', '{SERVER}');
    END IF;
    PERFORM {PRIVATE}.dblink_exec('credit_read_log', pg_catalog.format(
      'INSERT INTO public.read_log (agency_id, channel, db_role, query, backend_pid, statement_at) '
      'SELECT %L, ''sql'', %L, %L, %s, %L WHERE NOT EXISTS (SELECT 1 FROM public.read_log l '
      'WHERE l.backend_pid = %s AND l.statement_at = %L AND l.query = %L)',
      agency, reader, q, pg_catalog.pg_backend_pid(), pg_catalog.statement_timestamp(),
      pg_catalog.pg_backend_pid(), pg_catalog.statement_timestamp(), q));
    RETURN true;
  END"""


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    x = lambda sql: conn.execute(sa.text(sql))  # noqa: E731
    # Roles belong to the server, shared by its databases: create the group only if missing, and
    # let a concurrent creation from another database win.
    x(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{GROUP}') THEN "
        f"CREATE ROLE {GROUP} NOLOGIN; END IF; "
        "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    )
    logged_apart = _loopback(conn)
    x("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC")
    x("REVOKE CREATE ON SCHEMA public FROM PUBLIC")  # no one but the owner defines objects there
    for table in ("entity_results", "agency_scope", "read_log"):
        x(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    x("DROP POLICY IF EXISTS agency_reads_own_scope ON entity_results")
    x("DROP POLICY IF EXISTS agency_sees_own_scope_rows ON agency_scope")
    x("DROP POLICY IF EXISTS agency_registers_own_reads ON read_log")
    x(
        f"CREATE POLICY agency_sees_own_scope_rows ON agency_scope FOR SELECT TO {GROUP} "
        "USING (role_name = current_user)"
    )
    x(
        "CREATE OR REPLACE FUNCTION public.credit_register_read() RETURNS boolean LANGUAGE plpgsql "
        "VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$"
        + (_DBLINK_BODY if logged_apart else _LOCAL_BODY)
        + " $fn$"
    )
    x("REVOKE ALL ON FUNCTION public.credit_register_read() FROM PUBLIC")
    x(f"GRANT EXECUTE ON FUNCTION public.credit_register_read() TO {GROUP}")
    # Agencies read through one function with the owner's rights that registers the read and
    # returns the reader's own rows only: there is nothing of another agency's to filter, so no
    # plan (EXPLAIN ANALYZE's "Rows Removed by Filter"), count or error can tell of them. The
    # table's row security stays as a second wall; agencies have no privilege on the table.
    x(f"""CREATE OR REPLACE FUNCTION public.credit_agency_rows(latest boolean)
          RETURNS SETOF public.entity_results LANGUAGE plpgsql VOLATILE SECURITY DEFINER
          SET search_path = pg_catalog, pg_temp AS $fn$
          DECLARE
            reader text := {_READER};
          BEGIN
            PERFORM public.credit_register_read();
            RETURN QUERY SELECT e.* FROM public.entity_results e
              WHERE e.run_id IN (SELECT r.run_id FROM public.runs r WHERE r.status = 'published'
                                 AND (NOT latest OR r.run_id = {LATEST}))
                AND EXISTS (SELECT 1 FROM public.agency_scope s WHERE s.role_name = reader
                            AND e.division_code LIKE s.division_prefix || '%'
                            AND (s.industry IS NULL OR s.industry = e.industry));
          END $fn$""")
    x("REVOKE ALL ON FUNCTION public.credit_agency_rows(boolean) FROM PUBLIC")
    x(f"GRANT EXECUTE ON FUNCTION public.credit_agency_rows(boolean) TO {GROUP}")
    x(f"""CREATE POLICY agency_reads_own_scope ON entity_results FOR SELECT TO {GROUP} USING (
          (SELECT public.credit_register_read())
          AND run_id IN (SELECT r.run_id FROM public.runs r WHERE r.status = 'published')
          AND EXISTS (SELECT 1 FROM public.agency_scope s WHERE s.role_name = current_user
                      AND entity_results.division_code LIKE s.division_prefix || '%'
                      AND (s.industry IS NULL OR s.industry = entity_results.industry)))""")
    x("DROP VIEW IF EXISTS agency_current CASCADE")
    x("DROP VIEW IF EXISTS agency_history")
    x(f"CREATE VIEW agency_current AS SELECT {COLUMNS} FROM public.credit_agency_rows(true)")
    x(f"CREATE VIEW agency_history AS SELECT {COLUMNS} FROM public.credit_agency_rows(false)")
    x(f"GRANT USAGE ON SCHEMA public TO {GROUP}")
    x(f"GRANT SELECT ON agency_current, agency_history, agency_scope TO {GROUP}")
    x(f"GRANT SELECT (run_id, as_of, status, kind) ON runs TO {GROUP}")
    # Table totals are an oracle across agencies (the province's count, whether a range of USCCs
    # exists elsewhere): the statistics views are not theirs to read.
    for view in STATISTICS_VIEWS:
        x(f"REVOKE SELECT ON pg_catalog.{view} FROM PUBLIC")
    for fn in _table_statistics_functions(conn):
        x(f"REVOKE EXECUTE ON FUNCTION {fn} FROM PUBLIC")


def _table_statistics_functions(conn) -> list[str]:
    """The per-table counters behind the statistics views (live tuples, scans, blocks...), which
    anyone may otherwise call with a table's oid."""
    return list(
        conn.execute(
            sa.text(
                "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = "
                "'pg_catalog'::regnamespace AND p.proname ~ '^pg_stat_get_(xact_)?(live_tuples|"
                "dead_tuples|tuples_|numscans|blocks_|ins_since_vacuum|mod_since_analyze|"
                "lastscan)' ORDER BY 1"
            )
        ).scalars()
    )


STATISTICS_VIEWS = (
    "pg_stat_user_tables",
    "pg_stat_all_tables",
    "pg_stat_xact_user_tables",
    "pg_stat_xact_all_tables",
    "pg_statio_user_tables",
    "pg_statio_all_tables",
)


def _loopback(conn) -> bool:
    """dblink in a schema no agency can use, and a loopback server to this database for the
    migrating role (the owner of the registration function). False when the server lacks it."""
    if not conn.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'dblink'")
    ).first():
        return False
    x = lambda sql, **kw: conn.execute(sa.text(sql), kw)  # noqa: E731
    x(f"CREATE SCHEMA IF NOT EXISTS {PRIVATE}")
    x(f"REVOKE ALL ON SCHEMA {PRIVATE} FROM PUBLIC")
    x(f"CREATE EXTENSION IF NOT EXISTS dblink SCHEMA {PRIVATE}")
    db, host, port, user = x(
        "SELECT current_database(), host(inet_server_addr()), inet_server_port(), current_user"
    ).one()
    opts = [("dbname", db)] + ([("host", host), ("port", str(port))] if host else [])
    rendered = ", ".join(f"{k} {_literal(v)}" for k, v in opts)
    x(f"DROP SERVER IF EXISTS {SERVER} CASCADE")
    x(f"CREATE SERVER {SERVER} FOREIGN DATA WRAPPER dblink_fdw OPTIONS ({rendered})")
    x(f'CREATE USER MAPPING FOR "{user}" SERVER {SERVER} OPTIONS (user {_literal(user)})')
    return True


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    x = lambda sql: conn.execute(sa.text(sql))  # noqa: E731
    for view in STATISTICS_VIEWS:
        x(f"GRANT SELECT ON pg_catalog.{view} TO PUBLIC")
    for fn in _table_statistics_functions(conn):
        x(f"GRANT EXECUTE ON FUNCTION {fn} TO PUBLIC")
    x("DROP VIEW IF EXISTS agency_current CASCADE")
    x("DROP VIEW IF EXISTS agency_history")
    x("DROP POLICY IF EXISTS agency_reads_own_scope ON entity_results")
    x("DROP POLICY IF EXISTS agency_sees_own_scope_rows ON agency_scope")
    x("DROP FUNCTION IF EXISTS public.credit_agency_rows(boolean)")
    x("DROP FUNCTION IF EXISTS public.credit_register_read()")
    x(f"DROP SERVER IF EXISTS {SERVER} CASCADE")
    x(f"DROP SCHEMA IF EXISTS {PRIVATE} CASCADE")
