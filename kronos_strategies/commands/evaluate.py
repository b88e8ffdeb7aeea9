"""``kronos-bt evaluate``: rolling-origin forecast skill of a Kronos model against simple baselines."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import pandas as pd

from kronos_model.baselines import BASELINES
from kronos_model.errors import DataError

from ..forecasting import ANCHOR_DEFAULT
from .options import add_deprecated_alias, add_no_progress

ARCH_DATASETS: tuple[str, ...] = ("sp500", "nasdaq")


def _load_arch(name: str) -> pd.DataFrame:
    """Daily index OHLCV shipped with the ``arch`` package (offline); the ``Close`` column is used."""
    from arch.data import nasdaq, sp500

    return {"sp500": sp500, "nasdaq": nasdaq}[name].load()


def _load_series(args: argparse.Namespace) -> tuple[pd.DataFrame, str]:
    """The validated OHLCV frame and its display name, from ``--csv`` or ``--arch``."""
    from kronos_strategies.feeds import read_ohlcv

    if args.csv:
        return read_ohlcv(args.csv), args.name or str(args.csv)
    return read_ohlcv(_load_arch(args.arch), name=args.arch), args.name or args.arch


def _load_predictor(args: argparse.Namespace) -> Any:
    """The predictor for ``--model`` (default: the bundled checkpoint); None for ``--model none``."""
    if args.model and args.model.lower() == "none":
        return None
    from kronos_model import KronosPredictor

    return KronosPredictor.from_pretrained(args.model, device=args.device, max_context=args.max_context)


class _CurrentStderr(logging.StreamHandler):
    """A log handler writing to whatever ``sys.stderr`` is when a line is emitted (wrappers replace it)."""

    @property
    def stream(self):  # noqa: ANN201 - logging's own attribute
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # noqa: ANN001
        pass


def _progress_to_stderr(logger_name: str) -> None:
    """Show a module's INFO progress lines on stderr (once per process)."""
    log = logging.getLogger(logger_name)
    if not any(getattr(h, "_kronos_progress", False) for h in log.handlers):
        handler = _CurrentStderr()
        handler.setFormatter(logging.Formatter("evaluate: %(message)s"))
        handler._kronos_progress = True  # type: ignore[attr-defined]
        log.addHandler(handler)
    log.setLevel(logging.INFO)


def _calibration_spec(args: argparse.Namespace) -> Any:
    """The --calibration-* flags as a checked CalibrationSpec (an error names the flag)."""
    from kronos_model.calibration import CalibrationSpec
    from kronos_model.errors import ConfigError

    spec = CalibrationSpec(
        gamma=args.calibration_gamma, window=args.calibration_window, warmup=args.calibration_warmup
    )
    try:
        return spec.check("calibration")
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("'calibration.", "'--calibration-")) from None


def handler(args: argparse.Namespace) -> int:
    """Run the evaluation, write report.md/report.json/fan.png/metrics.png and print the report."""
    from kronos_model.evaluation import evaluate

    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
    calibration = args.calibration and _calibration_spec(args)
    frame, name = _load_series(args)
    predictor = _load_predictor(args)
    if predictor is None and not baselines:
        raise DataError("nothing to evaluate: --model none needs at least one --baselines entry")
    if not args.no_progress:  # baselines (GARCH above all) can take a while: say which one is running
        _progress_to_stderr("kronos_model.evaluation")
    result = evaluate(
        frame,
        predictor,
        lookback=args.lookback,
        horizon=args.pred_len,
        sample_count=args.sample_count,
        start=args.start,
        end=args.end,
        stride=args.stride,
        baselines=baselines,
        seed=args.seed,
        T=args.temperature,
        top_p=args.top_p,
        batch_size=args.batch_size,
        name=name,
        verbose=not args.no_progress,
        calibration=calibration,
        anchor=args.anchor,
    )
    files = result.save(args.out)
    print(result.to_markdown())
    print("wrote " + ", ".join(str(p) for p in files.values()))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` sub-command."""
    p = subparsers.add_parser(
        "evaluate",
        help="forecast skill of a model vs random-walk, drift, bootstrap and GARCH baselines",
        description="Rolling-origin evaluation: every origin in [start, end] is forecast from the "
        "lookback bars strictly before it; metrics per horizon for the model and each baseline.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--csv", help="OHLCV CSV/Parquet file with a timestamp column")
    src.add_argument("--arch", choices=ARCH_DATASETS, help="daily index data shipped with the arch package")
    p.add_argument("--name", default=None, help="series name in the report (default: the file or data set)")
    p.add_argument("--start", default=None, help="first date a target bar may fall on (inclusive)")
    p.add_argument("--end", default=None, help="last date a target bar may fall on (inclusive)")
    p.add_argument("--lookback", type=int, default=256, help="history bars per window")
    p.add_argument("--pred-len", type=int, default=10, help="bars forecast per window (horizons 1..pred-len)")
    p.add_argument("--sample-count", type=int, default=32, help="sample paths per window")
    p.add_argument("--stride", type=int, default=5, help="bars between consecutive origins")
    p.add_argument(
        "--model", default=None, help="checkpoint path or hub id; default: bundled; 'none': baselines only"
    )
    p.add_argument("--device", default="cpu", help="torch device for the model")
    p.add_argument("--max-context", type=int, default=None, help="model context limit (default: the model's)")
    p.add_argument("--baselines", default=",".join(BASELINES), help="comma-separated baselines ('' for none)")
    p.add_argument("--seed", type=int, default=0, help="seed for model sampling and baselines")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature T")
    p.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling threshold")
    p.add_argument("--batch-size", type=int, default=64, help="windows per forward pass")
    p.add_argument("--out", default="evaluation", help="output directory for the report and plots")
    add_no_progress(p, help="no progress bar")
    p.add_argument(
        "--calibration",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also score kronos_calibrated: bands calibrated online (adaptive conformal inference) to the 80%% level",
    )
    p.add_argument("--calibration-gamma", type=float, default=0.005, help="ACI step size")
    p.add_argument("--calibration-window", type=int, default=500, help="past scores kept per horizon")
    p.add_argument(
        "--calibration-warmup", type=int, default=20, help="scores a horizon needs before rescaling"
    )
    p.add_argument(
        "--anchor",
        action=argparse.BooleanOptionalAction,
        default=ANCHOR_DEFAULT,
        help="shift paths by the tokenizer's error on the last history bar (KronosPredictor anchor)",
    )
    add_deprecated_alias(p, "--horizon", "--pred-len", type=int)  # before 0.2; horizon = one step ahead now
    add_deprecated_alias(p, "--samples", "--sample-count", type=int)
    p.set_defaults(func=handler)
