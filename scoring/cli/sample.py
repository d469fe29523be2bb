"""`credit sample`: double-random inspection plans (双随机、一公开)."""

from __future__ import annotations

import json

import pandas as pd

from scoring.cli.common import EXIT_GATE, EXIT_OK, CliError, add_common, home_dir, print_json
from scoring.history.store import Store
from scoring.publication.publish import load_agencies
from scoring.sampling import plans


def register(sub) -> None:
    sp = sub.add_parser(
        "sample", help="double-random plans: commit, draw, verify, results, show, advise"
    )
    sp.add_argument(
        "action",
        nargs="?",
        choices=["commit", "draw", "verify", "results", "show", "advise"],
        help="commit a plan (default); draw once the next publication exists; verify; enter results",
    )
    sp.add_argument("plan_id", nargs="?")
    sp.add_argument("--agency")
    sp.add_argument(
        "--ratios", help="all four tiers inside the bounds, e.g. A=0.03,B=0.1,C=0.4,D=0.8"
    )
    sp.add_argument(
        "--period", default=None, help="YYYY-MM (default: the month after the latest publication)"
    )
    sp.add_argument("--task", default="routine")
    sp.add_argument("--approver", default=None, help="re-draw only: who approved it")
    sp.add_argument("--reason", default=None, help="re-draw only: why")
    sp.add_argument(
        "--capacity",
        type=int,
        default=None,
        help="advise: inspections available (default: what's left)",
    )
    sp.add_argument(
        "--file", default=None, help="results: CSV with uscc, inspection_date, problem_found (0/1)"
    )
    sp.add_argument(
        "--landing", default=None, help="results: also deliver them to this landing folder (samr)"
    )
    add_common(sp)
    sp.set_defaults(func=cmd_sample)


def cmd_sample(args) -> int:
    """双随机、一公开: commit a plan, draw it once the next publication exists, verify, enter results."""
    if getattr(args, "agency", None) and args.agency not in {a["id"] for a in load_agencies()}:
        # Checked against the registry before the id goes anywhere near a path.
        raise CliError(f"unknown agency {args.agency!r}; `credit agencies` lists them")
    store = Store.open(args.db, home_dir(args))
    action = args.action or "commit"
    if action in ("verify", "results", "show") and not args.plan_id:
        raise CliError(f"usage: credit sample {action} PLAN_ID")
    if action == "verify":
        out = plans.verify_plan(store, args.plan_id)
        text = f"plan {out['plan_id']}: {'identical' if out['verified'] else 'DIFFERENT'} {out['checks']}"
        if args.json:
            print_json(out)
        else:
            print(text)
        return EXIT_OK if out["verified"] else EXIT_GATE
    out, text = ACTIONS[action](store, args)
    if args.json:
        print_json(out)
    else:
        print(text)
    return EXIT_OK


def _commit(store, args) -> tuple[dict, str]:
    """Commit a plan: its ingredients are fixed before the draw's seed exists."""
    if not args.agency or not args.ratios:
        raise CliError(
            "usage: credit sample commit --agency ID --ratios A=0.03,B=0.1,C=0.4,D=0.8 "
            "[--period YYYY-MM] [--task T] [--approver NAME --reason TEXT]"
        )
    rec = plans.commit_plan(
        store,
        args.agency,
        args.ratios,
        period=args.period,
        task=args.task,
        approver=args.approver,
        reason=args.reason,
    )
    out = {
        k: rec[k]
        for k in (
            "plan_id",
            "status",
            "period",
            "task",
            "commitment_sha256",
            "capacity",
            "exclusions_by_reason",
            "redraw",
        )
    } | {
        "base_run": rec["base"]["run_id"],
        "planned": plans.planned_count(rec["ingredients"]),
        "frame": rec["ingredients"]["frame"],
        "seed_source": rec["seed_source_rule"],
    }
    text = (
        f"plan {rec['plan_id']} committed ({out['planned']} inspections planned on {out['frame']}); "
        f"commitment {rec['commitment_sha256']}; drawn once the publication after {rec['base']['as_of']} exists"
    )
    return out, text


def _draw(store, args) -> tuple[dict, str]:
    """Draw one committed plan, or every plan whose publication now exists."""
    recs = [plans.draw_committed(store, args.plan_id)] if args.plan_id else plans.draw_ready(store)
    out = {
        "drawn": [
            {
                "plan_id": r["plan_id"],
                "seed": r["draw"]["seed"],
                "seed_source": r["seed_source"],
                "by_tier": {t: sum(d["tier"] == t for d in r["draw"]["drawn"]) for t in "ABCD"},
                "skipped": len(r["draw"]["skipped"]),
            }
            for r in recs
        ]
    }
    text = (
        "\n".join(
            f"plan {d['plan_id']} drawn: {d['by_tier']} (seed from {d['seed_source']['run_id']}); "
            f"{d['skipped']} excluded entities replaced"
            for d in out["drawn"]
        )
        or "nothing to draw"
    )
    return out, text


def _show(store, args) -> tuple[dict, str]:
    rec = plans.load_plan(store, args.plan_id)
    t = plans.targets(store, rec)
    load = {
        k: int(v)
        for k, v in sorted(
            pd.Series([i for team in t["inspectors"] for i in team], dtype=object)
            .value_counts()
            .items()
        )
    }
    out = {
        k: rec[k]
        for k in (
            "plan_id",
            "status",
            "period",
            "task",
            "commitment_sha256",
            "seed_source",
            "exclusions_by_reason",
            "redraw",
            "abandoned",
            "capacity",
            "joint_with",
        )
    } | {
        "targets": len(t),
        "recusals_applied": int(sum(len(r) for r in t["recused"])),
        "workload": load,
        "skipped": (rec.get("draw") or {}).get("skipped", []),
    }
    text = json.dumps(out, ensure_ascii=False, indent=1)
    return out, text


def _results(store, args) -> tuple[dict, str]:
    if not args.file:
        raise CliError("usage: credit sample results PLAN_ID --file RESULTS.csv [--landing DIR]")
    frame = pd.read_csv(args.file, dtype=str, encoding="utf-8-sig")
    out = plans.enter_results(store, args.plan_id, frame, landing=args.landing)
    text = f"plan {out['plan_id']}: {out['entered']} results entered ({out['results']} in all)" + (
        f"; delivery {out['delivery']}" if "delivery" in out else ""
    )
    return out, text


def _advise(store, args) -> tuple[dict, str]:
    if not args.agency:
        raise CliError(
            "usage: credit sample advise --agency ID [--capacity N] [--ratios ...] [--period YYYY-MM]"
        )
    plot = (
        home_dir(args) / "outbox" / args.agency / "sampling" / f"advice-{args.period or 'next'}.png"
    )
    plot.parent.mkdir(parents=True, exist_ok=True)
    out = plans.advise(
        store, args.agency, args.capacity, args.ratios, period=args.period, plot_path=plot
    )
    text = (
        f"hit rate by tier (random draws only) {out['hit_rate_by_tier']}; population {out['population']}\n"
        f"bounds {out['bounds']['tiers']} ({out['bounds']['source']})\n"
        f"capacity left {out['capacity_left']} of {out['capacity']}; advisor {out['proposal']}: "
        f"{out['proposal_expected']}; uniform {out['uniform_expected']}"
        + (f"\n{out['statement']}" if "statement" in out else "")
        + f"\nplot {out['plot']}"
    )
    return out, text


ACTIONS = {"commit": _commit, "draw": _draw, "show": _show, "results": _results, "advise": _advise}
