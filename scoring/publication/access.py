"""Database-enforced agency scopes on PostgreSQL: one role per agency, row-level security on the
results, views of the latest published run, and registration of every read (the credit plan's
query registration and review, 信息查询使用登记和审查制度): agencies read only through
``agency_current`` / ``agency_history`` (and their own views over them), which a security-definer
function serves with the reader's own rows, after writing one ``read_log`` row per statement
through a connection of its own, so that no rollback of the reader's undoes it.

The policies, views, grants and the registration function are set once by a migration
(``agency_access_set_once``) and name one group role; a publication only adds what a new agency
needs (see ``ensure_access_control``). SQLite (the embedded default) has no roles; there the scope
is enforced by what is written to each agency's outbox.
"""

from __future__ import annotations

import re

import pandas as pd
import sqlalchemy as sa

from scoring.history.store import agency_scope

RESULT_COLUMNS = [
    "run_id",
    "uscc",
    "name",
    "division_code",
    "industry",
    "eval_class",
    "score",
    "tier",
    "dim_law_abiding",
    "dim_contracts_promises",
    "dim_qualifications_honours",
    "dim_social_responsibility",
    "dim_supervisory_risk",
    "override",
    "flags",
    "reasons",
]


def role_name(agency_id: str) -> str:
    return "credit_agency_" + re.sub(r"[^a-z0-9_]", "_", agency_id.lower())


def view_name(agency_id: str) -> str:
    return "current_" + re.sub(r"[^a-z0-9_]", "_", agency_id.lower())


def scope_rows(agencies: list[dict]) -> pd.DataFrame:
    rows = []
    for a in agencies:
        for prefix in a.get("divisions") or [""]:
            for ind in a.get("industries") or [None]:
                rows.append(
                    {
                        "agency_id": a["id"],
                        "role_name": role_name(a["id"]),
                        "division_prefix": str(prefix),
                        "industry": ind,
                    }
                )
    return pd.DataFrame(rows)


AGENCY_GROUP = "credit_agency"  # policies and grants name it (set once by migration)
# An agency session may not hold what it reads open for long, nor run a statement for long: a
# forgotten transaction ends on its own (the night never waits for it, but vacuum does).
AGENCY_SETTINGS = {
    "log_statement": "all",  # every statement of a LOGIN session also reaches the server log
    "idle_in_transaction_session_timeout": "60s",
    "statement_timeout": "300s",
}
LOCK_TIMEOUT = "5s"  # a night's statement never queues behind anyone's lock for longer


def ensure_access_control(conn, agencies: list[dict]) -> None:
    """Bring the registry's agencies into the access set up by migration (PostgreSQL only): a role
    per agency in the group the policies name, with its session limits, its scope rows and its
    own view. Only what is missing is created, so a night that changes nothing takes no lock, and
    nothing here waits for a lock an agency's session can hold: memberships and role settings are
    catalogue rows of the server, the scope rows are written with row locks, and a view is created
    only for a new agency (and dropped only for a removed one)."""
    if conn.dialect.name != "postgresql":
        return
    x = lambda sql, **kw: conn.execute(sa.text(sql), kw)  # noqa: E731
    x(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    for a in agencies:
        _ensure_role(conn, role_name(a["id"]))
    _sync_scope(conn, agencies)
    existing = set(
        x(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'v' AND c.relname LIKE 'current\\_%'"
        ).scalars()
    )
    wanted = {view_name(a["id"]): role_name(a["id"]) for a in agencies}
    for v in sorted(existing - set(wanted)):  # a removed agency's view
        x(f"DROP VIEW IF EXISTS {v}")
    for v, r in sorted(wanted.items()):
        if v not in existing:
            x(f"CREATE VIEW {v} WITH (security_invoker = true) AS SELECT * FROM agency_current")
            x(f"REVOKE ALL ON {v} FROM PUBLIC")
            x(f"GRANT SELECT ON {v} TO {r}")


def _ensure_role(conn, role: str) -> None:
    """The agency's role, a member of the group, with its session settings. Roles are shared by
    every database of the server: set only what is missing, so publications running at once in
    other databases do not update the same role row ("tuple concurrently updated")."""
    x = lambda sql, **kw: conn.execute(sa.text(sql), kw)  # noqa: E731
    x(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
        f"CREATE ROLE {role} NOLOGIN; END IF; "
        "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    )
    if not x(
        "SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
        "JOIN pg_roles r ON r.oid = m.member WHERE g.rolname = :g AND r.rolname = :r",
        g=AGENCY_GROUP,
        r=role,
    ).first():
        x(f"GRANT {AGENCY_GROUP} TO {role}")
    have = set(
        x(
            "SELECT unnest(s.setconfig) FROM pg_db_role_setting s JOIN pg_roles r "
            "ON r.oid = s.setrole WHERE s.setdatabase = 0 AND r.rolname = :r",
            r=role,
        ).scalars()
    )
    for key, value in AGENCY_SETTINGS.items():
        if f"{key}={value}" not in have:
            x(f"ALTER ROLE {role} SET {key} = '{value}'")


def _sync_scope(conn, agencies: list[dict]) -> None:
    """The scope table as the registry says, rewritten only when it differs."""
    want = scope_rows(agencies).astype(object).where(lambda d: d.notna(), None).to_dict("records")
    key = lambda r: (r["agency_id"], r["role_name"], r["division_prefix"], r["industry"] or "")  # noqa: E731
    have = [dict(r._mapping) for r in conn.execute(sa.select(agency_scope))]
    if sorted(map(key, have)) == sorted(map(key, want)):
        return
    conn.execute(sa.delete(agency_scope))
    conn.execute(agency_scope.insert(), want)


def issue_credentials(conn, agency_id: str, agencies: list[dict]) -> dict:
    """A new password for an agency's LOGIN role (the old one stops working). The agency then
    connects as itself, so the role's settings apply to its session: the timeouts, and every
    statement in the server log, the record of last resort beside ``read_log``."""
    import secrets

    if conn.dialect.name != "postgresql":
        raise ValueError("credentials are issued on PostgreSQL only (SQLite has no roles)")
    if agency_id not in {a["id"] for a in agencies}:
        raise ValueError(f"no agency {agency_id!r} in the registry")
    ensure_access_control(conn, agencies)
    role = role_name(agency_id)
    password = secrets.token_urlsafe(24)  # a secret, not an output: no seed wanted
    conn.execute(sa.text(f"ALTER ROLE {role} LOGIN PASSWORD '{password}'"))
    return {"agency_id": agency_id, "role": role, "password": password}


def revoke_credentials(conn, agency_id: str) -> None:
    """The agency's role can no longer log in (its reads through other sessions are unchanged)."""
    conn.execute(sa.text(f"ALTER ROLE {role_name(agency_id)} NOLOGIN PASSWORD NULL"))
