"""`credit report USCC [--as-of D]`: the entity's own public credit information report (Art. 24),
as the entity would be handed it; every report is logged as a read."""

from __future__ import annotations

from scoring.cli.common import EXIT_OK, add_common, home_dir, print_json
from scoring.history.store import Store
from scoring.reporting.entity_report import write_entity_report


def register(sub) -> None:
    sp = sub.add_parser(
        "report", help="the entity's own public credit information report (HTML, and PDF)"
    )
    sp.add_argument("uscc")
    sp.add_argument("--as-of", help="the night to report (default: the latest scored night)")
    sp.add_argument("--out", help="folder for the report (default CREDIT_HOME/entity_reports)")
    add_common(sp)
    sp.set_defaults(func=cmd_report)


def cmd_report(args) -> int:
    home = home_dir(args)
    store = Store.open(args.db, home)
    out = args.out or (home / "entity_reports")
    path = write_entity_report(store, args.uscc, args.as_of, out)
    pdf = path.with_suffix(".pdf")
    result = {"html": str(path), "pdf": str(pdf) if pdf.exists() else None}
    if args.json:
        print_json(result)
    else:
        print(result["html"] + (f"\n{result['pdf']}" if result["pdf"] else ""))
    return EXIT_OK
