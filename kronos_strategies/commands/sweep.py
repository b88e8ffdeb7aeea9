"""``kronos-bt sweep``: a backtest YAML with a ``sweep:`` block, run over a dask cluster."""

from __future__ import annotations

import argparse

from .options import add_no_progress


def sweep_handler(args: argparse.Namespace) -> int:
    """Run the sweep (a local 127.0.0.1 cluster unless --scheduler names one) and print the best runs."""
    from kronos_strategies.sweep import run_sweep

    result = run_sweep(
        args.config, scheduler=args.scheduler, workers=args.workers, threads_per_worker=args.threads_per_worker,
        dashboard=args.dashboard, out=args.out, top_n=args.top, overrides=list(args.set or []),
        progress=not args.no_progress,
    )  # fmt: skip
    print(result)
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sweep`` sub-command."""
    sweep = subparsers.add_parser(
        "sweep",
        help="parameter sweep over strategies and assets on dask, forecasts computed once",
        description=(
            "Grid or random search over strategy/indicator keys and assets (the YAML's sweep: block). Forecasts "
            "go once into the shared cache, backtests run as dask tasks, finished runs are kept: re-running "
            "skips them. Writes results.parquet/.csv, heatmap.png and tear-sheets of the top runs."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sweep.add_argument("config", help="YAML backtest with a sweep: block, e.g. backtests/sp500_sweep.yaml")
    sweep.add_argument(
        "--workers",
        type=_positive,
        default=None,
        help="local worker processes (default: sweep.workers, else one per core up to 8)",
    )
    sweep.add_argument(
        "--threads-per-worker",
        type=_positive,
        default=None,
        help="threads per local worker (default: sweep.threads_per_worker, 1)",
    )
    sweep.add_argument(
        "--scheduler",
        default=None,
        help="tcp://HOST:PORT of a running dask scheduler, or 'sequential' for no dask at all",
    )
    sweep.add_argument("--dashboard", action="store_true", help="serve the dask dashboard on 127.0.0.1:8787")
    sweep.add_argument("--out", default=None, help="output directory (default: sweep.out of the YAML)")
    sweep.add_argument(
        "--top", type=int, default=None, help="tear-sheets for the best N runs (default: sweep.top_n)"
    )
    sweep.add_argument(
        "--set", action="append", metavar="KEY=VALUE", default=[],
        help="override a YAML key, e.g. --set sweep.objective=sortino (repeatable)",
    )  # fmt: skip
    add_no_progress(sweep, help="no progress bar")
    sweep.set_defaults(func=sweep_handler)
