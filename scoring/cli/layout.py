"""`credit layout suggest FILE`: the nearest layout for a file that matches none, the columns
matched and not, and a provider override to review and commit (Chinese first)."""

from __future__ import annotations

from pathlib import Path

from scoring.cli.common import EXIT_OK, CliError, add_common, print_json


def register(sub) -> None:
    sp = sub.add_parser(
        "layout",
        help="provider layouts: suggest the nearest layout and an override for a file",
        description="credit layout suggest FILE [--provider ID] [--json]",
    )
    sp.add_argument("action", choices=["suggest"])
    sp.add_argument("file")
    sp.add_argument("--provider", default=None, help="the provider the override is for")
    add_common(sp, db=False)
    sp.set_defaults(func=cmd_layout)


def cmd_layout(args) -> int:
    from scoring.intake.suggest import render, suggest

    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    s = suggest(path.read_bytes(), path.name)
    if args.json:
        print_json(s)
    else:
        print(render(s, args.provider or "PROVIDER"))
    return EXIT_OK
