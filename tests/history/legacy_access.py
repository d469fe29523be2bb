"""The agencies' access as a database at revision 0006 had it: set by every publication then
(before the migration agency_access_set_once made it once). Tests of migrations over a database in use start here."""

from __future__ import annotations

import sqlalchemy as sa

from scoring.history.store import agency_scope
from scoring.publication.access import RESULT_COLUMNS, role_name, scope_rows, view_name


def access_as_of_0006(conn, agencies: list[dict]) -> None:
    """Create or refresh roles, grants, policies and views for the registry (PostgreSQL only)."""
    if conn.dialect.name != "postgresql":
        return

    x = lambda sql: conn.execute(sa.text(sql))  # noqa: E731
    roles = [role_name(a["id"]) for a in agencies]
    for r in roles:
        # Every statement an agency session runs also goes to the server log. Roles are shared by
        # every database of the server: set only what is missing, so publications running at once
        # in other databases do not update the same role row ("tuple concurrently updated").
        x(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{r}') THEN "
            f"CREATE ROLE {r} NOLOGIN; END IF; "
            f"IF NOT EXISTS (SELECT FROM pg_db_role_setting s WHERE s.setdatabase = 0 "
            f"AND s.setrole = (SELECT oid FROM pg_roles WHERE rolname = '{r}') "
            f"AND 'log_statement=all' = ANY (s.setconfig)) THEN ALTER ROLE {r} SET log_statement = 'all'; END IF; END $$"
        )
    conn.execute(sa.delete(agency_scope))
    conn.execute(
        agency_scope.insert(),
        scope_rows(agencies).astype(object).where(lambda d: d.notna(), None).to_dict("records"),
    )
    x("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC")
    x("ALTER TABLE entity_results ENABLE ROW LEVEL SECURITY")
    x("ALTER TABLE agency_scope ENABLE ROW LEVEL SECURITY")
    x("DROP POLICY IF EXISTS agency_reads_own_scope ON entity_results")
    x("DROP POLICY IF EXISTS agency_sees_own_scope_rows ON agency_scope")
    role_list = ", ".join(roles)
    x(f"""CREATE POLICY agency_sees_own_scope_rows ON agency_scope FOR SELECT TO {role_list}
          USING (role_name = current_user)""")
    # Read registration runs with the owner's rights and a fixed search_path (pg_temp last, and
    # every name schema-qualified, so no temporary table or function can stand in), and takes the
    # reader from the session: the role it has set (SET ROLE is checked by the server against the
    # session user's memberships) or the session user. "Once per statement" is looked up in the
    # log itself (this backend, this statement's start), never in a setting the reader can set.
    # Agencies cannot write the log except through this function.
    x("""CREATE OR REPLACE FUNCTION public.credit_register_read() RETURNS boolean
          LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
          DECLARE
            reader text := COALESCE(NULLIF(pg_catalog.current_setting('role', true), 'none'), session_user::text);
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
          END $fn$""")
    x("REVOKE CREATE ON SCHEMA public FROM PUBLIC")  # no one but the owner defines objects there
    x("REVOKE ALL ON FUNCTION public.credit_register_read() FROM PUBLIC")
    x(f"GRANT EXECUTE ON FUNCTION public.credit_register_read() TO {role_list}")
    x("ALTER TABLE read_log ENABLE ROW LEVEL SECURITY")
    x("DROP POLICY IF EXISTS agency_registers_own_reads ON read_log")
    x(f"REVOKE ALL ON read_log FROM {role_list}")
    x(f"REVOKE ALL ON SEQUENCE read_log_read_id_seq FROM {role_list}")
    # A row is visible to an agency only if its run was published and the entity is in scope. The
    # policy registers any statement that examines a row of the results; the views below register
    # theirs up front (a one-time filter), so a lookup that finds nothing is registered too.
    x(f"""CREATE POLICY agency_reads_own_scope ON entity_results FOR SELECT TO {role_list} USING (
          (SELECT public.credit_register_read())
          AND run_id IN (SELECT r.run_id FROM runs r WHERE r.status = 'published')
          AND EXISTS (SELECT 1 FROM agency_scope s WHERE s.role_name = current_user
                      AND entity_results.division_code LIKE s.division_prefix || '%'
                      AND (s.industry IS NULL OR s.industry = entity_results.industry)))""")
    cols = ", ".join(f"e.{c}" for c in RESULT_COLUMNS)
    latest = (
        "(SELECT r.run_id FROM runs r WHERE r.status = 'published' AND r.kind = 'nightly' "
        "ORDER BY r.as_of DESC, r.run_id DESC LIMIT 1)"
    )
    # Scope is the table's row security (always applied first); the views only choose runs, so
    # they need no security barrier, and their registration is a one-time filter before any scan.
    x(
        "DROP VIEW IF EXISTS agency_current CASCADE"
    )  # with the per-agency views (and any of a removed agency)
    x("DROP VIEW IF EXISTS agency_history")
    x(f"""CREATE VIEW agency_current WITH (security_invoker = true) AS
          SELECT {cols} FROM entity_results e WHERE (SELECT public.credit_register_read()) AND e.run_id = {latest}""")
    x(f"""CREATE VIEW agency_history WITH (security_invoker = true) AS
          SELECT {cols} FROM entity_results e WHERE (SELECT public.credit_register_read())""")
    for a in agencies:
        r, v = role_name(a["id"]), view_name(a["id"])
        x(f"""CREATE VIEW {v} WITH (security_invoker = true) AS SELECT * FROM agency_current""")
        x(f"REVOKE ALL ON {v} FROM PUBLIC")
        x(f"GRANT SELECT ON {v} TO {r}")
    x(f"GRANT USAGE ON SCHEMA public TO {role_list}")
    x(
        f"GRANT SELECT ON entity_results, agency_current, agency_history, agency_scope TO {role_list}"
    )
    x(f"GRANT SELECT (run_id, as_of, status, kind) ON runs TO {role_list}")
