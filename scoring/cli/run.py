"""`credit run` (one night or several, under the store's run lock) and `credit status`."""

from __future__ import annotations

import sys
from pathlib import Path

from scoring.cli.common import (
    EXIT_GATE,
    EXIT_OK,
    CliError,
    add_common,
    context,
    home_dir,
    print_json,
)
from scoring.history.folders import RunFolder
from scoring.history.runlock import EXIT_LOCKED, RunLocked, run_lock
from scoring.history.runs import run_list
from scoring.history.store import Store
from scoring.pipeline import STEP_NAMES, RunContext, run_summary, shown


def register(sub) -> None:
    sp = sub.add_parser("run", help="run the nightly pipeline for an as-of date")
    sp.add_argument(
        "--as-of", default=None, help="the night to run (or --from/--to for several, in order)"
    )
    sp.add_argument(
        "--from",
        dest="date_from",
        default=None,
        help="catch up nights from this date, each cut at the files landed by 01:00 the next day",
    )
    sp.add_argument("--to", dest="date_to", default=None, help="last night of --from (inclusive)")
    sp.add_argument(
        "--waive",
        action="append",
        default=[],
        metavar="GATE:SCOPE",
        help="waive one failed hard gate for this run, e.g. feed_present:court (needs --approver, --reason)",
    )
    sp.add_argument("--approver", default=None, help="who approved the waiver")
    sp.add_argument("--reason", default=None, help="why the gate may be waived for this run")
    sp.add_argument("--knowledge-cutoff", default=None)
    sp.add_argument("--landing", default=None)
    sp.add_argument(
        "--catalogue", default=None, help="catalogue file (default config/catalogue/v1.yaml)"
    )
    sp.add_argument(
        "--policy", default=None, help="policy file (default: the one in force on the as-of date)"
    )
    sp.add_argument(
        "--step",
        action="append",
        choices=list(STEP_NAMES),
        help="run only these steps (repeatable)",
    )
    sp.add_argument(
        "--partitions",
        type=int,
        default=None,
        help="entity-hash partitions of the evaluation (default CREDIT_PARTITIONS, else by size); "
        "any count gives the same results",
    )
    sp.add_argument(
        "--wait",
        type=float,
        default=0.0,
        help="seconds to wait for another run on the same store to finish (default: refuse at once)",
    )
    add_common(sp)
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("status", help="list stored runs, or show one night's run")
    sp.add_argument("--as-of", default=None, help="show the nightly run for this date")
    add_common(sp)
    sp.set_defaults(func=cmd_status)


def cmd_run(args) -> int:
    from scoring.pipeline import run_night, run_nights

    if bool(args.date_from) != bool(args.date_to) or bool(args.as_of) == bool(args.date_from):
        raise CliError("give either --as-of DATE or both --from DATE --to DATE")
    if args.date_from and args.knowledge_cutoff:
        raise CliError("--knowledge-cutoff applies to one night (--as-of), not to --from/--to")
    steps = STEP_NAMES if not args.step else tuple(args.step)
    probe = context(args, as_of=args.as_of or args.date_from)
    if not probe.landing.is_dir():
        raise CliError(
            f"landing folder {probe.landing} does not exist (generate one with `credit demo-data`)"
        )
    store = Store.open(probe.db_url, probe.home)
    holder = probe.run_id if args.as_of else f"nights {args.date_from}..{args.date_to}"
    try:
        with run_lock(store, holder, wait_seconds=args.wait):  # one run at a time per store
            if args.as_of:
                summaries = [run_night(probe, steps)]
            else:
                summaries = run_nights(
                    args.date_from, args.date_to, lambda d: context(args, as_of=d), steps
                )
    except RunLocked as exc:
        print(f"credit run: {exc}", file=sys.stderr)
        if args.json:
            print_json(
                {
                    "run_id": probe.run_id,
                    "status": "locked",
                    "message": str(exc),
                    "holder": exc.holder,
                }
            )
        return EXIT_LOCKED
    finally:
        store.engine.dispose()
    for s in summaries:
        if s.get("error"):
            print(f"credit run: {s['error']}", file=sys.stderr)
    code = (
        EXIT_OK
        if all(
            s["status"] == "published" or "publish" not in steps and not s.get("error")
            for s in summaries
        )
        else EXIT_GATE
    )
    if args.json:
        print_json(summaries[0] if args.as_of else {"nights": summaries})
    else:
        for s in summaries:
            print(
                f"run {s['run_id']}: {s['status']}; {s['entities_scored']:,} entities; tiers {s['tiers']}"
                + (
                    "; no new deliveries"
                    if s["no_new_deliveries"]
                    else f"; {s['deliveries']['files']} new files"
                )
                + "".join(
                    f"; WAIVED {w['gate']}:{w['scope']} by {w['approver']}" for w in s["waivers"]
                )
            )
            for p in s["landing_problems"]:
                print(f"  landing: {p['kind']}: {p['path']}: {p['message']}")
            print(f"  output_sha256 {s['output_sha256']}")
            print(f"  report: {s['report']}")
        if args.date_from and summaries and summaries[-1]["status"] != "published":
            print(
                f"stopped at {summaries[-1]['as_of']}; later nights were not run", file=sys.stderr
            )
    return code


def cmd_status(args) -> int:
    if args.as_of:
        home = home_dir(args)
        s = run_summary(
            shown(RunContext(as_of=args.as_of, landing=home / "landing", home=home, db_url=args.db))
        )
        if args.json:
            print_json(s)
            return EXIT_OK
        print(f"run {s['run_id']} (as of {s['as_of']}): {s['status']}")
        print(f"entities scored: {s['entities_scored']:,}")
        print("tiers: " + "  ".join(f"{t}={s['tiers'].get(t, 0):,}" for t in "ABCD"))
        print(f"output_sha256: {s['output_sha256']}")
        d = s["deliveries"]
        print(
            "deliveries:    "
            + (
                "no new deliveries (evaluated from the stored history)"
                if s["no_new_deliveries"]
                else f"{d['files']} new files ({d['same_content']} same content as earlier files, "
                f"{d['corrections']} corrections, {d['rejected']} rejected)"
            )
        )
        for w in s["waivers"]:
            print(
                f"WAIVER:        {w['gate']}:{w['scope']} approved by {w['approver']} ({w['reason']}); "
                f"covered {', '.join(w['covered']) or 'nothing'}"
            )
        for p in s["landing_problems"]:
            print(f"landing:       {p['kind']}: {p['path']}: {p['message']}")
        print(f"run report:    {s['report']}")
        rdir = RunFolder(Path(s["report"]).parent)
        for label, path in (
            ("provider report", rdir.provider_report),
            ("results", rdir.entity_score_csv),
            ("manifest", rdir.manifest),
        ):
            if path.exists():
                print(f"{label + ':':<15}{path}")
        docs = rdir.gx_data_docs
        if docs.exists():
            print(f"GX Data Docs:  {docs}")
        print(
            f"outboxes:      {home / 'outbox'} ({len({Path(p).parent for p in s['published']})} agency deliveries)"
        )
        return EXIT_OK if s["status"] in ("published", "scored") else EXIT_GATE
    store = Store.open(args.db, home_dir(args))
    with store.engine.connect() as conn:
        rows = run_list(conn)
    if args.json:
        print_json(rows)
    else:
        for r in rows:
            print(
                f"{r['run_id']:<24} {r['status']:<12} {r['entities_scored'] or 0:>9,} {r['tiers_json'] or ''}"
            )
    return EXIT_OK
