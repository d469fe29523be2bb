"""`credit credentials`: issue (or withdraw) an agency's own database login (PostgreSQL)."""

from __future__ import annotations

from scoring.cli.common import EXIT_OK, CliError, add_common, home_dir, print_json
from scoring.history.store import Store


def register(sub) -> None:
    sp = sub.add_parser(
        "credentials",
        help="issue an agency's database login (its LOGIN role and a new password), or withdraw it",
    )
    sp.add_argument("--agency", required=True, help="the agency id (see `credit agencies`)")
    sp.add_argument("--revoke", action="store_true", help="the role can no longer log in")
    add_common(sp)
    sp.set_defaults(func=cmd_credentials)


def cmd_credentials(args) -> int:
    """A new password for the agency's LOGIN role, printed once (the old one stops working). The
    agency then connects as itself: its session limits apply and the server logs every statement
    it runs, beside the read log that every read writes."""
    from scoring.publication.access import issue_credentials, revoke_credentials
    from scoring.publication.publish import load_agencies

    store = Store.open(args.db, home_dir(args))
    if store.engine.dialect.name != "postgresql":
        raise CliError("credentials are for PostgreSQL stores (SQLite has no roles)")
    agencies = load_agencies()
    if args.agency not in {a["id"] for a in agencies}:
        raise CliError(f"unknown agency {args.agency!r} (see `credit agencies`)")
    with store.engine.begin() as conn:
        if args.revoke:
            revoke_credentials(conn, args.agency)
            out = {"agency_id": args.agency, "login": False}
        else:
            out = {**issue_credentials(conn, args.agency, agencies), "login": True}
    if args.json:
        print_json(out)
    elif args.revoke:
        print(f"{args.agency}: login withdrawn")
    else:
        print(f"{args.agency}: role {out['role']}, password {out['password']} (shown once)")
    return EXIT_OK
