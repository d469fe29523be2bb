"""`credit reads`: review the agencies' registered reads and what was delivered."""

from __future__ import annotations

import sqlalchemy as sa

from scoring.cli.common import EXIT_OK, add_common, home_dir, print_json
from scoring.history.store import Store, publications, read_log


def register(sub) -> None:
    sp = sub.add_parser(
        "reads", help="review agencies' registered reads and deliveries (query registration)"
    )
    sp.add_argument("--agency", default=None, help="only this agency id")
    add_common(sp)
    sp.set_defaults(func=cmd_reads)


def cmd_reads(args) -> int:
    """Review of the agencies' registered reads (the query registration and review the plan
    requires, 信息查询使用登记和审查制度) and of what was delivered."""
    store = Store.open(args.db, home_dir(args))
    with store.engine.connect() as conn:
        q = sa.select(
            read_log.c.read_id,
            read_log.c.agency_id,
            read_log.c.db_role,
            read_log.c.channel,
            read_log.c.read_at,
            read_log.c.query,
        ).order_by(read_log.c.read_id)
        d = sa.select(
            publications.c.run_id,
            publications.c.agency_id,
            publications.c.path,
            publications.c.rows,
            publications.c.sha256,
            publications.c.delivered_at,
        ).order_by(publications.c.run_id, publications.c.agency_id, publications.c.path)
        if args.agency:
            q = q.where(read_log.c.agency_id == args.agency)
            d = d.where(publications.c.agency_id == args.agency)
        reads = [dict(r._mapping) for r in conn.execute(q)]
        deliveries = [dict(r._mapping) for r in conn.execute(d)]
    if args.json:
        print_json({"reads": reads, "deliveries": deliveries})
        return EXIT_OK
    print(
        f"{len(deliveries)} delivered files, {len(reads)} registered reads"
        + (f" for {args.agency}" if args.agency else "")
    )
    for r in reads:
        print(
            f"{r['read_id']:>6} {str(r['read_at'])[:19]} {r['agency_id']:<14} {' '.join(str(r['query']).split())[:100]}"
        )
    return EXIT_OK
