"""`credit reads`: review the agencies' registered reads and what was delivered."""

from __future__ import annotations

from scoring.cli.common import EXIT_OK, CliError, add_common, home_dir, print_json
from scoring.history.exchange import agency_exchange
from scoring.history.reads import deliveries as delivered
from scoring.history.reads import registered_reads
from scoring.history.store import Store


def register(sub) -> None:
    sp = sub.add_parser(
        "reads", help="review agencies' registered reads and deliveries (query registration)"
    )
    sp.add_argument("--agency", default=None, help="only this agency id")
    sp.add_argument(
        "--server-log",
        default=None,
        help="the PostgreSQL server log: reconcile the agencies' logged statements with the reads",
    )
    add_common(sp)
    sp.set_defaults(func=cmd_reads)


def cmd_reads(args) -> int:
    """Review of the agencies' registered reads (the query registration and review the plan
    requires, 信息查询使用登记和审查制度) and of what was delivered."""
    store = Store.open(args.db, home_dir(args))
    with store.engine.connect() as conn:
        reads = registered_reads(conn, args.agency)
        deliveries = delivered(conn, args.agency)
        pushed = [a for a in agency_exchange(conn) if args.agency in (None, a["agency_id"])]
    check = _reconcile(store, args) if args.server_log else None
    if args.json:
        print_json(
            {
                "reads": reads,
                "deliveries": deliveries,
                "pushes": pushed,
                **({"server_log": check} if check else {}),
            }
        )
        return EXIT_OK
    for a in pushed:
        # Pushed to the agency's own system: what it confirmed receiving, and what it has not.
        print(
            f"push {a['agency_id']}: last pushed {a['last_pushed'] or '-'}, "
            f"last acknowledged {a['last_acknowledged'] or '-'}, "
            f"outstanding {', '.join(a['outstanding']) or 'none'}"
            + (f", {a['failed']} failed ({a.get('last_failure')})" if a["failed"] else "")
        )
    print(
        f"{len(deliveries)} delivered files, {len(reads)} registered reads"
        + (f" for {args.agency}" if args.agency else "")
    )
    for r in reads:
        print(
            f"{r['read_id']:>6} {str(r['read_at'])[:19]} {r['agency_id']:<14} {' '.join(str(r['query']).split())[:100]}"
        )
    if check:
        print(
            f"server log: {check['logged_reads']} agency reads logged, "
            f"{len(check['logged_but_not_registered'])} without a registration, "
            f"{check['failed_before_reading']} refused before reading"
        )
        for s in check["logged_but_not_registered"]:
            print(f"  NOT REGISTERED {s['at']} [{s['pid']}] {s['role']}: {s['sql'][:100]}")
    return EXIT_OK


def _reconcile(store, args) -> dict:
    """The server's statement log of the agencies' LOGIN sessions against the read log."""
    from scoring.publication.access import role_name, view_name
    from scoring.publication.publish import load_agencies
    from scoring.publication.reads import logged_statements, reconcile

    agencies = [a for a in load_agencies() if not args.agency or a["id"] == args.agency]
    database = store.engine.url.database
    try:
        with open(args.server_log, encoding="utf-8", errors="replace") as fh:
            logged = logged_statements(fh, {role_name(a["id"]) for a in agencies}, database)
    except OSError as exc:
        raise CliError(f"cannot read the server log {args.server_log}: {exc.strerror}") from None
    with store.engine.connect() as conn:
        registered = registered_reads(conn, args.agency)
    return reconcile(registered, logged, views=[view_name(a["id"]) for a in agencies])
