"""The ``kronos-bt`` command line: one argparse sub-command per job, each defined in its own module."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from kronos_model.errors import KronosError

# Each module defines ``register(subparsers)`` which adds its sub-command(s) and sets ``func``.
COMMAND_MODULES: tuple[str, ...] = (
    "kronos_strategies.commands.backtest",  # run, forecast
    "kronos_strategies.commands.dashboard",  # dashboard
    "kronos_strategies.commands.evaluate",  # evaluate
    "kronos_strategies.commands.finetune",  # finetune
    "kronos_strategies.commands.paper",  # paper, paper report, emulator
    "kronos_strategies.commands.sweep",  # sweep
)


def build_parser() -> argparse.ArgumentParser:
    """The full parser; modules that are not present yet are skipped."""
    parser = argparse.ArgumentParser(
        prog="kronos-bt",
        description="Backtest, evaluate and paper-trade Kronos forecasts with backtrader.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; bad input ends with a one-line message and exit code 2, never a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except KronosError as exc:
        print(f"kronos-bt: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"kronos-bt: error: file not found: {exc.filename or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kronos-bt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
