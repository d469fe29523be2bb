"""The synthetic province: `credit demo-data` and `credit world-experiment`."""

from __future__ import annotations

from pathlib import Path

from scoring.cli.common import EXIT_OK, add_common, home_dir, print_json, progress


def register(sub) -> None:
    sp = sub.add_parser("demo-data", help="write the synthetic province's deliveries up to a date")
    sp.add_argument("--out", required=True)
    sp.add_argument("--entities", type=int, default=20_000)
    sp.add_argument("--seed", type=int, default=42)
    sp.add_argument("--defect-rate", type=float, default=0.02)
    sp.add_argument("--as-of", default="2026-06-30")
    sp.add_argument(
        "--world", default="default", help="world-parameter file: default, mirror or a path"
    )
    add_common(sp, db=False)
    sp.set_defaults(func=cmd_demo_data)

    sp = sub.add_parser(
        "world-experiment",
        help="hand policy vs learned candidate in a synthetic world, with the oracle (model cards)",
    )
    sp.add_argument(
        "--world", default="default", help="world-parameter file: default, mirror or a path"
    )
    sp.add_argument("--seeds", default="42,43,44")
    sp.add_argument("--entities", type=int, default=20_000)
    sp.add_argument("--resamples", type=int, default=2000)
    sp.add_argument(
        "--out", default=None, help="folder for reports (default CREDIT_HOME/world_experiments)"
    )
    add_common(sp, db=False)
    sp.set_defaults(func=cmd_world_experiment)


def cmd_demo_data(args) -> int:
    from scoring.world.params import world_path
    from scoring.world.province import write_deliveries

    res = write_deliveries(
        args.out,
        args.as_of,
        n_entities=args.entities,
        seed=args.seed,
        defect_rate=args.defect_rate,
        progress=progress(args),
        world=world_path(args.world),
    )
    if args.json:
        print_json(res)
    else:
        print(f"landing folder: {res.get('landing', Path(args.out) / 'landing')}")
        print(
            f"delivered until {res['delivered_until']}: {len(res['files'])} new files; "
            f"injected defects {res.get('defects', {})}"
        )
    return EXIT_OK


def cmd_world_experiment(args) -> int:
    from scoring.world.experiment import run_world_experiments
    from scoring.world.params import world_path

    out = run_world_experiments(
        world_path(args.world),
        [int(s) for s in args.seeds.split(",")],
        args.entities,
        args.resamples,
        Path(args.out) if args.out else home_dir(args) / "world_experiments",
        progress=progress(args),
    )
    if args.json:
        print_json(out)
    else:
        for line in out["summary"]:
            print(line)
        print(f"reports and model cards under {out['folder']}")
    return EXIT_OK


# The learner (scikit-learn, SciPy) and the synthetic world are imported by the commands that use
# them: seconds of every `credit` start, a nightly run's included, that nothing else needs.
