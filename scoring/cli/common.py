"""What every command shares: exit codes, the one-line error, output, the store's folder and a
night's run context."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from scoring.history.store import default_home
from scoring.pipeline import RunContext

EXIT_OK, EXIT_GATE, EXIT_UNUSABLE = 0, 1, 2


class CliError(Exception):
    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, sort_keys=True, default=str) + "\n")


def progress(args):
    if getattr(args, "json", False) or getattr(args, "quiet", False):
        return lambda msg: (
            print(msg, file=sys.stderr, flush=True) if os.environ.get("CREDIT_VERBOSE") else None
        )
    return lambda msg: print(msg, file=sys.stderr, flush=True)


def home_dir(args) -> Path:
    return Path(args.home).resolve() if getattr(args, "home", None) else default_home()


def add_common(sp, db: bool = True) -> None:
    """--db and --home for commands that touch the store; --json for all."""
    if db:
        sp.add_argument(
            "--db", default=None, help="database URL (default CREDIT_DB_URL or embedded SQLite)"
        )
        sp.add_argument("--home", default=None, help="data folder (default CREDIT_HOME or ./var)")
    sp.add_argument("--json", action="store_true", help="one JSON object on stdout")


def context(args, as_of=None):
    home = home_dir(args)
    landing = (
        Path(args.landing)
        if args.landing
        else Path(os.environ.get("CREDIT_LANDING") or home / "landing")
    )
    extra = {}
    if getattr(args, "catalogue", None):
        extra["catalogue_path"] = Path(args.catalogue).resolve()
    if getattr(args, "policy", None):
        extra["policy_path"] = Path(args.policy).resolve()
    if getattr(args, "partitions", None):
        extra["partitions"] = args.partitions
    return RunContext(
        as_of=as_of or args.as_of,
        landing=landing,
        home=home,
        db_url=args.db,
        knowledge_cutoff=getattr(args, "knowledge_cutoff", None),
        progress=progress(args),
        waivers=waivers(args),
        **extra,
    )


def waivers(args) -> tuple:
    from scoring.quality.waivers import WaiverError, parse_waiver

    specs = getattr(args, "waive", None) or []
    if not specs and (getattr(args, "approver", None) or getattr(args, "reason", None)):
        raise CliError("--approver/--reason given without --waive GATE:SCOPE")
    try:
        return tuple(parse_waiver(s, args.approver, args.reason).as_dict() for s in specs)
    except WaiverError as exc:
        raise CliError(str(exc)) from None
