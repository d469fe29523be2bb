"""What agencies were delivered and what they registered reading (``credit reads``)."""

from __future__ import annotations

import sqlalchemy as sa

from scoring.history.store import publications, read_log


def registered_reads(conn, agency: str | None = None) -> list[dict]:
    r = read_log.c
    q = sa.select(r.read_id, r.agency_id, r.db_role, r.channel, r.read_at, r.query)
    if agency:
        q = q.where(r.agency_id == agency)
    return [dict(x._mapping) for x in conn.execute(q.order_by(r.read_id))]


def deliveries(conn, agency: str | None = None) -> list[dict]:
    p = publications.c
    q = sa.select(p.run_id, p.agency_id, p.path, p.rows, p.sha256, p.delivered_at)
    if agency:
        q = q.where(p.agency_id == agency)
    return [dict(x._mapping) for x in conn.execute(q.order_by(p.run_id, p.agency_id, p.path))]
