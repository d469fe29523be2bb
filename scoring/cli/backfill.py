"""`credit backfill`: load a province's history from its landing folder file by file, before go-live
(scoring.pipeline.backfill); resumable, with progress."""

from __future__ import annotations

import sys

from scoring.cli.common import EXIT_OK, CliError, add_common, context, print_json
from scoring.history.runlock import EXIT_LOCKED, RunLocked


def register(sub) -> None:
    sp = sub.add_parser(
        "backfill",
        help="load a province's history from its landing folder, file by file (go-live)",
    )
    sp.add_argument("--landing", default=None, help="the landing folder (default CREDIT_LANDING)")
    sp.add_argument(
        "--as-of",
        required=True,
        help="the go-live night: files named up to this date are loaded, known from it",
    )
    sp.add_argument(
        "--catalogue", default=None, help="catalogue file (default config/catalogue/v1.yaml)"
    )
    sp.add_argument(
        "--wait",
        type=float,
        default=0.0,
        help="seconds to wait for another run on the same store to finish (default: refuse at once)",
    )
    add_common(sp)
    sp.set_defaults(func=cmd_backfill)


def cmd_backfill(args) -> int:
    """Text: one progress line per file on stderr, the summary on stdout. --json: one JSON object
    per line on stdout, a ``file`` event per file as it is done, then the ``done`` summary."""
    from scoring.pipeline.backfill import backfill

    ctx = context(args)
    if not ctx.landing.is_dir():
        raise CliError(f"landing folder {ctx.landing} does not exist")
    if args.json:
        ctx.progress = None  # the events are the progress

    def report(event: dict) -> None:
        if args.json:
            print_json({"event": "file", **event})
            sys.stdout.flush()

    try:
        out = backfill(ctx, report, wait_seconds=args.wait)
    except RunLocked as exc:
        print(f"credit backfill: {exc}", file=sys.stderr)
        if args.json:
            print_json({"event": "locked", "message": str(exc), "holder": exc.holder})
        return EXIT_LOCKED
    if args.json:
        print_json({"event": "done", **out})
        return EXIT_OK
    held = out["outcomes"].get("held", 0)
    print(
        f"backfill {out['as_of']}: {out['loaded_now']} files loaded now "
        f"({', '.join(f'{n} {k}' for k, n in sorted(out['outcomes'].items())) or 'nothing new'}), "
        f"{out['already_stored']} already stored; {out['rows']:,} rows in {out['seconds']} s"
    )
    print(f"  history_sha256 {out['history_sha256']}")
    if held:
        print(
            f"  {held} files held by a hard gate: the next night reads them again "
            "(see `credit status` and the run's report)"
        )
    return EXIT_OK
