"""``credit``: the command line for operators, regulators and auditors.

Every command that touches the store takes ``--db URL`` (default CREDIT_DB_URL, else the embedded
SQLite under CREDIT_HOME) and ``--json``. Errors are one line on stderr with a non-zero exit. Each
command group registers its own subcommands (``register(sub)`` in its module).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from scoring.cli import (
    backfill,
    check,
    credentials,
    exchange,
    explain,
    layout,
    policy,
    reads,
    report,
    rerun,
    run,
    sample,
    world,
)
from scoring.cli.common import EXIT_GATE, EXIT_UNUSABLE, CliError
from scoring.common.config import ConfigError
from scoring.common.errors import PipelineError
from scoring.intake.ingest import UnusableFile

# The order of `credit --help`.
GROUPS = (
    world,
    run,
    backfill,
    check,
    layout,
    explain,
    report,
    rerun,
    sample,
    policy,
    reads,
    exchange,
    credentials,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="credit", description="Public credit composite evaluation pipeline (公共信用综合评价)"
    )
    sub = p.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CliError as exc:
        print(f"credit {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except Exception as exc:  # the contract: one clear line, never a traceback
        if isinstance(exc, UnusableFile):
            print(f"credit {args.command}: {getattr(args, 'file', '')}: {exc}", file=sys.stderr)
            return EXIT_UNUSABLE
        if isinstance(exc, PipelineError):
            print(f"credit {args.command}: {exc}", file=sys.stderr)
            return EXIT_GATE
        if isinstance(exc, ConfigError):
            print(f"credit {args.command}: configuration refused: {exc}", file=sys.stderr)
            return EXIT_UNUSABLE
        world = sys.modules.get(
            "scoring.world.params"
        )  # only a command that imported it can raise it
        if world is not None and isinstance(exc, world.WorldParamsError):
            print(f"credit {args.command}: {exc}", file=sys.stderr)
            return EXIT_UNUSABLE
        if os.environ.get("CREDIT_DEBUG"):
            raise
        print(
            f"credit {args.command}: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr
        )
        return 3
