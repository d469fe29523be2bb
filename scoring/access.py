"""Database-enforced agency scopes on PostgreSQL: one role per agency, row-level security on the
results, invoker-rights views of the latest published run, and statement logging for every
agency session (seed 004 row 19: query registration).

Idempotent: safe to run at every publication. SQLite (the embedded default) has no roles; there
the scope is enforced by what is written to each agency's outbox.
"""
from __future__ import annotations

import re

import pandas as pd
import sqlalchemy as sa

RESULT_COLUMNS = ["run_id", "uscc", "name", "division_code", "industry", "eval_class", "score", "tier",
                  "dim_law_abiding", "dim_contracts_promises", "dim_qualifications_honours",
                  "dim_social_responsibility", "dim_supervisory_risk", "override", "flags", "reasons"]


def role_name(agency_id: str) -> str:
    return "credit_agency_" + re.sub(r"[^a-z0-9_]", "_", agency_id.lower())


def view_name(agency_id: str) -> str:
    return "current_" + re.sub(r"[^a-z0-9_]", "_", agency_id.lower())


def scope_rows(agencies: list[dict]) -> pd.DataFrame:
    rows = []
    for a in agencies:
        for prefix in a.get("divisions") or [""]:
            for ind in a.get("industries") or [None]:
                rows.append({"agency_id": a["id"], "role_name": role_name(a["id"]),
                             "division_prefix": str(prefix), "industry": ind})
    return pd.DataFrame(rows)


def ensure_access_control(conn, agencies: list[dict]) -> None:
    """Create or refresh roles, grants, policies and views for the registry (PostgreSQL only)."""
    if conn.dialect.name != "postgresql":
        return
    from .store import agency_scope

    x = lambda sql: conn.execute(sa.text(sql))  # noqa: E731
    roles = [role_name(a["id"]) for a in agencies]
    for r in roles:
        x(f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{r}') THEN "
          f"CREATE ROLE {r} NOLOGIN; END IF; END $$")
        # Every statement an agency session runs is written to the server log (query registration).
        x(f"ALTER ROLE {r} SET log_statement = 'all'")
    conn.execute(sa.delete(agency_scope))
    conn.execute(agency_scope.insert(), scope_rows(agencies).astype(object).where(lambda d: d.notna(), None)
                 .to_dict("records"))
    x("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC")
    x("ALTER TABLE entity_results ENABLE ROW LEVEL SECURITY")
    x("ALTER TABLE agency_scope ENABLE ROW LEVEL SECURITY")
    x("DROP POLICY IF EXISTS agency_reads_own_scope ON entity_results")
    x("DROP POLICY IF EXISTS agency_sees_own_scope_rows ON agency_scope")
    role_list = ", ".join(roles)
    x(f"""CREATE POLICY agency_sees_own_scope_rows ON agency_scope FOR SELECT TO {role_list}
          USING (role_name = current_user)""")
    # A row is visible to an agency only if its run was published and the entity is in scope.
    x(f"""CREATE POLICY agency_reads_own_scope ON entity_results FOR SELECT TO {role_list} USING (
          run_id IN (SELECT r.run_id FROM runs r WHERE r.status = 'published')
          AND EXISTS (SELECT 1 FROM agency_scope s WHERE s.role_name = current_user
                      AND entity_results.division_code LIKE s.division_prefix || '%'
                      AND (s.industry IS NULL OR s.industry = entity_results.industry)))""")
    cols = ", ".join(f"e.{c}" for c in RESULT_COLUMNS)
    latest = ("(SELECT r.run_id FROM runs r WHERE r.status = 'published' AND r.kind = 'nightly' "
              "ORDER BY r.as_of DESC, r.run_id DESC LIMIT 1)")
    x(f"""CREATE OR REPLACE VIEW agency_current WITH (security_invoker = true, security_barrier = true) AS
          SELECT {cols} FROM entity_results e WHERE e.run_id = {latest}""")
    x(f"""CREATE OR REPLACE VIEW agency_history WITH (security_invoker = true, security_barrier = true) AS
          SELECT {cols} FROM entity_results e""")
    for a in agencies:
        r, v = role_name(a["id"]), view_name(a["id"])
        x(f"""CREATE OR REPLACE VIEW {v} WITH (security_invoker = true, security_barrier = true) AS
              SELECT * FROM agency_current""")
        x(f"REVOKE ALL ON {v} FROM PUBLIC")
        x(f"GRANT SELECT ON {v} TO {r}")
    x(f"GRANT USAGE ON SCHEMA public TO {role_list}")
    x(f"GRANT SELECT ON entity_results, agency_current, agency_history, agency_scope TO {role_list}")
    x(f"GRANT SELECT (run_id, as_of, status, kind) ON runs TO {role_list}")
