"""`credit pull` and `credit push`: the exchange with providers' and agencies' systems, with
credentials from the environment (CREDIT_CONN_<ID> or AIRFLOW_CONN_<ID>, a URI)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from scoring.cli.common import EXIT_OK, CliError, add_common, home_dir, print_json, progress
from scoring.common.config import ConfigError
from scoring.exchange.night import night_of, pull_all, push_all
from scoring.exchange.secrets import conn_from_env
from scoring.exchange.sources import load_exchange
from scoring.history.store import Store
from scoring.publication.publish import DEFAULT_AGENCIES, load_agencies

EXIT_SOURCE_FAILED = 4


def register(sub) -> None:
    sp = sub.add_parser("pull", help="pull a provider's sources (前置机, SFTP, HTTP) into landing")
    sp.add_argument("--provider", required=True, help="provider id (config/providers.yaml)")
    sp.add_argument("--since", default=None, help="pull after this watermark, not the stored one")
    sp.add_argument("--as-of", default=None, help="the night it feeds (default: from the clock)")
    sp.add_argument("--landing", default=None, help="landing folder (default CREDIT_LANDING)")
    sp.add_argument(
        "--registry",
        default=None,
        help="provider registry with the sources (config/providers.yaml)",
    )
    add_common(sp)
    sp.set_defaults(func=cmd_pull)
    sp = sub.add_parser("push", help="push the published night to agencies' own systems")
    sp.add_argument("--agency", default=None, help="only this agency id")
    sp.add_argument("--run", default=None, help="run id (default: the latest published night)")
    sp.add_argument("--agencies", default=None, help="agency registry (config/agencies.yaml)")
    add_common(sp)
    sp.set_defaults(func=cmd_push)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)  # clock-ok: a pull's arrival time is when it happened


def cmd_pull(args) -> int:
    now = _now()
    as_of = dt.date.fromisoformat(args.as_of) if args.as_of else night_of(now)
    try:
        exchange = load_exchange(as_of, *([args.registry] if args.registry else []))
    except (ConfigError, ValueError) as exc:
        raise CliError(str(exc)) from None
    if not any(s.provider == args.provider for s in exchange.sources):
        raise CliError(f"provider {args.provider} has no exchange source")
    home = home_dir(args)
    landing = Path(args.landing or os.environ.get("CREDIT_LANDING") or home / "landing")
    store = Store.open(args.db, home)
    rows = pull_all(
        store,
        landing,
        exchange,
        conn_from_env,
        as_of,
        now,
        providers=[args.provider],
        since=args.since,
        say=progress(args),
        # Tonight's pull (no --as-of) keeps the sources' windows; a chosen night is a catch-up.
        now=None if args.as_of else now,
    )
    if args.json:
        print_json({"pulls": rows})
    else:
        for r in rows:
            print(f"{r['source_id']}: {r['status']} — {r['message']}")
    return (
        EXIT_SOURCE_FAILED if any(r["status"] in ("failed", "skipped") for r in rows) else EXIT_OK
    )


def cmd_push(args) -> int:
    agencies = load_agencies(args.agencies or DEFAULT_AGENCIES)
    if args.agency and args.agency not in {a["id"] for a in agencies}:
        raise CliError(f"no agency {args.agency}")
    store = Store.open(args.db, home_dir(args))
    rows = push_all(
        store,
        agencies,
        conn_from_env,
        _now(),
        run_id=args.run,
        only=args.agency,
        say=progress(args),
    )
    if args.json:
        print_json({"pushes": rows})
    else:
        for r in rows:
            print(f"{r['agency_id']}: {r['status']} — {r['message']}")
    return EXIT_SOURCE_FAILED if any(r["status"] == "failed" for r in rows) else EXIT_OK
