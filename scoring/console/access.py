"""Who may use which page, and which departments' scopes a user sees.

Roles are Airflow (FAB) roles. A page is open to the roles listed for it; ``Admin`` may use every
page. A regulator acts for the departments whose scope role it holds (``credit_agency_<id>``,
e.g. ``credit_agency_dq-samr``) and sees nothing of another department's scope; ``Admin`` and
auditors see every department.
"""

from __future__ import annotations

PAGES: dict[str, tuple[str, ...]] = {
    "planner": ("credit_regulator",),
    "audit": ("credit_auditor",),
    "nights": ("credit_operator",),
    "entity": ("credit_entity_lookup",),
}
PAGE_TITLES = {
    "planner": "抽查比例设置 Ratio planner",
    "audit": "审计复算 Auditor view",
    "nights": "夜间运行 Night overview",
    "entity": "主体查询 Entity lookup",
}
SUPERUSER = "Admin"
AGENCY_ROLE_PREFIX = "credit_agency_"
ALL_AGENCIES = ("Admin", "credit_auditor", "credit_operator")


class Forbidden(PermissionError):
    """The caller's roles do not allow this page or this department."""


def pages_for(roles: list[str]) -> list[str]:
    have = set(roles)
    return [p for p, allowed in PAGES.items() if SUPERUSER in have or have & set(allowed)]


def require_page(roles: list[str], page: str) -> None:
    if page not in pages_for(roles):
        need = " or ".join(PAGES[page])
        raise Forbidden(f"this page needs the role {need} (you have: {', '.join(roles) or 'none'})")


def agencies_for(roles: list[str], agency_ids: list[str]) -> list[str]:
    """The departments a user acts for, in registry order."""
    if set(roles) & set(ALL_AGENCIES):
        return list(agency_ids)
    mine = {r[len(AGENCY_ROLE_PREFIX) :] for r in roles if r.startswith(AGENCY_ROLE_PREFIX)}
    return [a for a in agency_ids if a in mine]


def require_agency(roles: list[str], agency_id: str, agency_ids: list[str]) -> None:
    if agency_id not in agency_ids:
        raise ValueError(f"unknown department {agency_id!r}")
    if agency_id not in agencies_for(roles, agency_ids):
        raise Forbidden(f"department {agency_id} is outside your scope")


def entity_scope(roles: list[str], agency_ids: list[str]) -> list[str] | None:
    """Entity lookups: a user holding department roles sees those departments' scopes only;
    Admin and the credit agency's own staff (no department role) see every entity (None)."""
    if SUPERUSER in roles or not any(r.startswith(AGENCY_ROLE_PREFIX) for r in roles):
        return None
    return agencies_for(roles, agency_ids)
