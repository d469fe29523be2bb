"""`credit rerun`: recompute a past evaluation for auditors; never publishes."""

from __future__ import annotations

from scoring.audit.rerun import rerun
from scoring.cli.common import EXIT_OK, add_common, home_dir, print_json, progress


def register(sub) -> None:
    sp = sub.add_parser("rerun", help="recompute a past evaluation (auditors); never publishes")
    sp.add_argument("run_id")
    sp.add_argument("--mode", choices=["as-known-then", "as-known-now"], default="as-known-then")
    add_common(sp)
    sp.set_defaults(func=cmd_rerun)


def cmd_rerun(args) -> int:
    out = rerun(
        args.run_id, args.mode, db_url=args.db, home=home_dir(args), progress=progress(args)
    )
    if args.json:
        print_json(out)
    else:
        print(
            f"rerun {out['run_id']} ({out['mode']}): {'identical' if out['identical'] else 'DIFFERENT'}; "
            f"output_sha256 {out['output_sha256']}; {len(out['changed_entities'])} entities changed"
        )
        print(f"auditor report: {out['report']}")
    return EXIT_OK
