"""`credit calibrate` and `credit policy`: learn a candidate, diff two policies, promote one, list
the policy registry.

The learner (scikit-learn, SciPy) is imported by the command that uses it: seconds of every
`credit` start that nothing else needs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from scoring.calibration.diff_views import diff_text, write_diff
from scoring.calibration.policy_change import policy_diff
from scoring.calibration.promotion import policy_history, promote_candidate, promote_file
from scoring.cli.common import EXIT_OK, CliError, add_common, home_dir, print_json
from scoring.history.store import Store


def register(sub) -> None:
    sp = sub.add_parser(
        "calibrate", help="learn a candidate policy from inspection outcomes (model card)"
    )
    sp.add_argument("--until", default=None, help="use inspections up to this date")
    add_common(sp)
    sp.set_defaults(func=cmd_calibrate)

    sp = sub.add_parser(
        "policy",
        help="policy changes: diff two policies on a date; promote an approved one; the registry",
    )
    sp.set_defaults(func=cmd_policy)
    actions = sp.add_subparsers(dest="action", required=True, metavar="{diff,promote,history}")
    a = actions.add_parser("diff", help="what a new policy would change on a night's inputs")
    a.add_argument("policy", help="the old policy file")
    a.add_argument("new", help="the new policy file")
    a.add_argument(
        "--as-of", default=None, help="evaluate both policies on what was known by this date"
    )
    a.add_argument("--out", default=None, help="folder for diff.json, the picture and HTML page")
    add_common(a)
    a = actions.add_parser(
        "promote", help="record an approved policy file or calibration candidate in the registry"
    )
    a.add_argument("policy", help="a policy file or a calibration candidate id")
    a.add_argument("--approved-by", default="", help="who approved (required)")
    a.add_argument("--reason", default="", help="why (required)")
    a.add_argument("--effective-from", default=None, help="first as-of date the policy applies to")
    a.add_argument(
        "--diff", default=None, help="a policy file: the diff.json it was approved on (required)"
    )
    add_common(a)
    a = actions.add_parser("history", help="every approval in the store's policy registry")
    add_common(a)


def cmd_calibrate(args) -> int:
    from scoring.calibration.calibrate import calibrate

    out = calibrate(Store.open(args.db, home_dir(args)), until=args.until)
    if args.json:
        print_json(out)
    else:
        c, t = out["comparison"], out["training_set"]
        print(
            f"training set: {t['random_from_stored_plans'] + t['random_reconstructed_draw']} randomly drawn inspections "
            f"weighted by 1 / inclusion probability ({t['random_from_stored_plans']} from stored plans, "
            f"{t['random_reconstructed_draw']} with the draw's tier reconstructed); {t['left_out_not_random']} "
            f"complaint-driven or otherwise not random left out; signals offered: {', '.join(t['signals_offered'])}"
        )
        print(
            f"candidate {out['candidate_id']}: AUC {out['auc']:.4f} (current {out['baseline']['auc']:.4f}), "
            f"KS {out['ks']:.4f}; hit rate by tier {out['hit_rate_by_tier']}"
        )
        print(
            f"AUC difference {c['auc_difference']:+.4f}, 95% interval {c['ci95'][0]:+.4f} to {c['ci95'][1]:+.4f} "
            f"(paired bootstrap of entities); hit rates rise A to D: {'yes' if c['hit_rates_rise_a_to_d'] else 'no'}"
        )
        print(f"model card: {out['model_card']}")
    return EXIT_OK


def cmd_policy(args) -> int:
    store = Store.open(args.db, home_dir(args))
    if args.action == "diff":
        return _policy_diff(args, store)
    if args.action == "history":
        return _policy_history(args, store)
    if args.effective_from is None:
        raise CliError("promote needs --effective-from DATE")
    recorded_at = dt.datetime.now(dt.UTC)  # clock-ok: when the approval is recorded
    if Path(args.policy).suffix.lower() in (".yaml", ".yml", ".json") or Path(args.policy).exists():
        entry = promote_file(
            store,
            args.policy,
            args.approved_by,
            args.reason,
            args.effective_from,
            args.diff,
            recorded_at,
        )
    else:  # a calibration candidate by id
        entry = promote_candidate(
            store, args.policy, args.approved_by, args.reason, args.effective_from, recorded_at
        )
    if args.json:
        print_json({k: v for k, v in entry.items() if k != "document"})
    else:
        print(
            f"{args.policy} is the policy for evaluations from {entry['effective_from']} "
            f"(approved by {entry['approved_by']}; policy registry entry {entry['entry_id']})"
        )
    return EXIT_OK


def _policy_history(args, store) -> int:
    entries = policy_history(store)
    if args.json:
        print_json(entries)
        return EXIT_OK
    for e in entries:
        print(
            f"{e['entry_id']:>3}  from {e['effective_from']}  {e['sha256'][:12]}  {e['policy']} "
            f"({e['origin']})  approved by {e['approved_by']}  "
            f"recorded {e['recorded_at'] or 'with the code'}"
        )
        print(f"     {e['reason']}" + (f"  [diff {e['diff_id'][:16]}]" if e["diff_id"] else ""))
    return EXIT_OK


def _policy_diff(args, store) -> int:
    if not args.as_of:
        raise CliError("usage: credit policy diff OLD NEW --as-of DATE")
    diff = policy_diff(store, args.policy, args.new, args.as_of)
    files = write_diff(diff, Path(args.out) if args.out else store.home / "policy" / "diffs")
    if args.json:
        print_json({**diff, "files": {k: str(v) for k, v in files.items()}})
    else:
        print(diff_text(diff))
        print(
            f"\nHTML page (migration matrix as a picture): {files['html']}\nJSON (name it when promoting): {files['json']}"
        )
    return EXIT_OK
