"""What agencies were delivered and what they registered reading (``credit reads``)."""

from __future__ import annotations

import sqlalchemy as sa

from scoring.history.store import publications, read_log


def registered_reads(conn, agency: str | None = None) -> list[dict]:
    r = read_log.c
    q = sa.select(r.read_id, r.agency_id, r.db_role, r.channel, r.read_at, r.query, r.backend_pid)
    if agency:
        q = q.where(r.agency_id == agency)
    return [dict(x._mapping) for x in conn.execute(q.order_by(r.read_id))]


def deliveries(conn, agency: str | None = None) -> list[dict]:
    p = publications.c
    q = sa.select(p.run_id, p.agency_id, p.path, p.rows, p.sha256, p.delivered_at)
    if agency:
        q = q.where(p.agency_id == agency)
    return [dict(x._mapping) for x in conn.execute(q.order_by(p.run_id, p.agency_id, p.path))]


def record_read(conn, agency_id: str, run_id: str, rows: int, channel: str, who: str, query: str):
    """One read outside PostgreSQL's own registration (a console lookup): who read what."""
    conn.execute(
        read_log.insert().values(
            agency_id=agency_id,
            run_id=run_id,
            rows=rows,
            channel=channel,
            db_role=who[:80],
            query=query,
        )
    )


def reads_by_query(conn, channel: str, query: str) -> list[dict]:
    r = read_log.c
    q = sa.select(r.run_id, r.db_role, r.query).where((r.channel == channel) & (r.query == query))
    return [dict(x._mapping) for x in conn.execute(q.order_by(r.read_id))]
