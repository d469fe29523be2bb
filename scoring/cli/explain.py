"""`credit agencies` and `credit explain`: who receives results, and every record behind one
entity's evaluation."""

from __future__ import annotations

from scoring.cli.common import EXIT_OK, add_common, home_dir, print_json
from scoring.evaluation.explain import explain_entity
from scoring.publication.labels import variant
from scoring.publication.publish import load_agencies


def register(sub) -> None:
    sp = sub.add_parser("agencies", help="list the registered supervisory agencies")
    add_common(sp, db=False)
    sp.set_defaults(func=cmd_agencies)

    sp = sub.add_parser("explain", help="every record behind one entity's evaluation in a run")
    sp.add_argument("uscc")
    sp.add_argument("--run", required=True)
    add_common(sp)
    sp.set_defaults(func=cmd_explain)


def cmd_agencies(args) -> int:
    ag = load_agencies()
    rows = [
        {
            "id": a["id"],
            "name": a["name"],
            "level": a["level"],
            "domain": a["domain"],
            "scope": {"divisions": a.get("divisions", []), "industries": a.get("industries", [])},
            "channel": a.get("channel"),
            "encoding": a.get("encoding"),
            "files": {"labels": variant(a), "xlsx": bool(a.get("xlsx"))},
        }
        for a in ag
    ]
    if args.json:
        print_json(rows)
    else:
        for r in rows:
            print(
                f"{r['id']:<14} {r['name']}  divisions={','.join(r['scope']['divisions'])} "
                f"industries={','.join(r['scope']['industries']) or 'all'} "
                f"files={r['files']['labels']}{'+xlsx' if r['files']['xlsx'] else ''}"
            )
    return EXIT_OK


def cmd_explain(args) -> int:
    out = explain_entity(args.uscc, args.run, db_url=args.db, home=home_dir(args))
    if args.json:
        print_json(out)
    else:
        print(out["text"])
    return EXIT_OK
