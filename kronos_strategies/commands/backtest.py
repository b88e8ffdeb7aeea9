"""``kronos-bt run`` (a YAML backtest with reports) and ``kronos-bt forecast`` (CSV in, forecast out)."""

from __future__ import annotations

import argparse
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kronos_model.errors import DataError, InsufficientHistoryError

from ..forecasting import ANCHOR_DEFAULT
from .common import engine_overrides, num, pct
from .options import DeprecatedOptionWarning, add_no_progress

_ROWS: tuple[tuple[str, str, Any], ...] = (
    ("Total return", "total_return", pct),
    ("CAGR", "cagr", pct),
    ("Sharpe", "sharpe", num),
    ("Sortino", "sortino", num),
    ("Max drawdown", "max_drawdown", pct),
    ("Volatility (ann.)", "volatility", pct),
    ("Exposure", "exposure", pct),
    ("Turnover (x/yr)", "turnover", num),
    ("Trades", "trades", str),
    ("Hit rate", "hit_rate", pct),
)


def summary_table(result: Any) -> str:
    """Strategy vs buy-and-hold side by side, then forecast work, band coverage and the files written."""
    from ..reporting import band_line
    from ..runner import band_report

    cfg = result.config
    bench_title = cfg.benchmark.title
    idx = result.returns.index
    width = max(14, len(bench_title) + 2)
    lines = [
        f"{cfg.name}: {cfg.strategy.name} on {cfg.data.name or cfg.data.dataset or cfg.data.path}, "
        f"{_when(idx[0])} .. {_when(idx[-1])} ({len(idx)} bars, {result.periods_per_year:.0f} bars/yr)",
        *(f"note: {result.start_note}" for _ in [0] if result.start_note),
        *(f"warning: {w.message}" for w in result.warnings),
        f"{'':<20}{'Strategy':>14}{bench_title:>{width}}",
    ]
    for label, key, fmt in _ROWS:
        bench = "-" if key in ("trades", "hit_rate", "turnover") else fmt(result.benchmark_metrics.get(key))
        lines.append(f"{label:<20}{fmt(result.metrics.get(key)):>14}{bench:>{width}}")
    s = result.forecast_stats
    lines.append(
        f"forecasts: {s.windows} windows, {s.computed} computed, {s.cache_hits} from cache, "
        f"{s.seconds:.1f} s in the model; run and reports took {result.seconds:.1f} s"
    )
    band = band_line(band_report(result)) if hasattr(result.forecast_stats, "band_coverage") else None
    lines += [band] if band else []
    lines += [f"hint: {h}" for h in result.hints]
    if result.files:
        first = next(iter(result.files.values())).parent
        lines.append(f"wrote {first}/: " + ", ".join(p.name for p in result.files.values()))
    return "\n".join(lines)


def _when(stamp: Any) -> str:
    """A date for daily bars, the full timestamp otherwise."""
    return str(stamp.date()) if stamp == stamp.normalize() else str(stamp)


def data_overrides(config: str, data: str | None, name: str | None, sets: Sequence[str] = ()) -> list[str]:
    """``--set`` items for ``--data FILE`` / ``--name NAME``: the file, its label, the benchmark and the run name.

    The label is ``--name`` or the file's stem; the run is named ``<YAML name>-<label slug>`` so its
    reports land in their own ``runs/<run name>/`` folder, never in the YAML's default data's folder.
    """
    if data is None and name is None:
        return []
    from kronos_strategies.config import load_config

    out = [] if data is None else [f"data.path={_yaml_str(data)}", "data.dataset=null", "data.source=null"]
    base = load_config(config, [*out, *sets]).name  # the YAML's name (or the user's --set name=...)
    label = name or Path(data).stem  # type: ignore[arg-type]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "data"
    return out + [
        f"data.name={_yaml_str(label)}", f"benchmark.title={_yaml_str('Buy & hold ' + label)}",
        f"name={_yaml_str(base + '-' + slug)}", "output.title=null",
    ]  # fmt: skip


def _yaml_str(text: str) -> str:
    """A string as a YAML scalar that ``--set`` reads back unchanged (quoted)."""
    return "'" + text.replace("'", "''") + "'"


def run_handler(args: argparse.Namespace) -> int:
    """Load the YAML, apply overrides, run the backtest into a fresh run folder, print the summary table."""
    # --- universe backtests (issue 15): a YAML with `universe:` or --data-dir runs kronos_strategies.universe
    from kronos_strategies.universe.command import is_universe, run_universe

    if is_universe(args):
        return run_universe(args)
    # --- end universe
    from kronos_strategies.runner import run_backtest

    overrides = data_overrides(args.config, args.data, args.name, list(args.set or [])) + list(args.set or [])
    overrides += engine_overrides(args)
    result = run_backtest(
        args.config, overrides=overrides, out_dir=args.out, new_folder=args.out is None, force=args.force
    )
    print(summary_table(result))
    return 0


def forecast_handler(args: argparse.Namespace) -> int:
    """Forecast the bars after the last row of a CSV: forecast CSV + fan chart PNG."""
    from kronos_model import KronosPredictor
    from kronos_strategies.feeds import as_index_time, read_ohlcv
    from kronos_strategies.reporting import plot_fan

    frame = read_ohlcv(args.csv, timestamp_column=args.timestamp_column, tz=args.tz)
    if args.end:
        frame = frame[frame.index <= as_index_time(args.end, frame.index)]
    if len(frame) < 3:
        raise InsufficientHistoryError(f"{args.csv} has {len(frame)} bars up to --end; need at least 3")
    try:
        quantiles = tuple(float(q) for q in args.quantiles.split(","))
    except ValueError:
        raise DataError(f"--quantiles must be comma-separated numbers, got {args.quantiles!r}") from None
    predictor = KronosPredictor.from_pretrained(args.model, device=args.device)
    window = frame.iloc[-min(args.lookback, predictor.max_context) :]
    forecast = predictor.forecast(
        window, args.pred_len, sample_count=args.sample_count, T=args.temperature, top_k=args.top_k,
        top_p=args.top_p, seed=args.seed, anchor=args.anchor,
    )  # fmt: skip
    out_csv = _forecast_csv(args.csv, args.out)
    out_png = Path(args.png) if args.png else out_csv.with_suffix(".png")
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    forecast.to_frame(quantiles).to_csv(out_csv, index_label="timestamp")
    plot_fan(window["close"].iloc[-3 * args.pred_len :], forecast, output=out_png, quantiles=quantiles)
    print(
        f"{len(window)} bars up to {window.index[-1]} -> {args.pred_len} bars ahead, {args.sample_count} paths: "
        f"expected return {100 * forecast.expected_return():+.2f}%, P(up) {100 * forecast.prob_up():.0f}% "
        f"at the last step\nwrote {out_csv}, {out_png}"
    )
    return 0


def _forecast_csv(source: str, out: str | None) -> Path:
    """Where ``kronos-bt forecast`` writes its CSV: ``<out>/forecast.csv``, or next to the input."""
    if out is None:
        return Path(f"{Path(source).with_suffix('')}_forecast.csv")
    if Path(out).suffix.lower() == ".csv":  # before 0.2 --out named the CSV file itself
        warnings.warn(
            f"kronos-bt forecast: --out {out} names a file; --out is a directory now (forecast.csv and "
            "forecast.png go into it), a .csv file name keeps working for this release",
            DeprecatedOptionWarning,
            stacklevel=2,
        )
        return Path(out)
    return Path(out) / "forecast.csv"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``run`` and ``forecast`` sub-commands."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    run = subparsers.add_parser(
        "run",
        help="run a YAML backtest and write a tear-sheet, metrics, chart and manifest",
        description="Backtest a Kronos strategy described by a YAML file (see backtests/*.yaml).",
        formatter_class=fmt,
    )
    run.add_argument("config", help="YAML backtest file, e.g. backtests/sp500_threshold.yaml")
    run.add_argument(
        "--out", default=None,
        help="report directory; refused when it holds a run unless --force "
        "(default: a new <output.dir>/<UTC time>-<hash>/ folder and a 'latest' link to it)",
    )  # fmt: skip
    run.add_argument("--force", action="store_true", help="overwrite the run already in --out")
    run.add_argument(
        "--name", default=None, help="label of the data in titles and the run name (default: --data's stem)"
    )
    run.add_argument(
        "--set", action="append", metavar="KEY=VALUE", default=[],
        help="override a YAML key, e.g. --set strategy.params.enter=0.2 (repeatable)",
    )  # fmt: skip
    run.add_argument(
        "--data", default=None, help="CSV/Parquet file to backtest (shortcut for --set data.path=...)"
    )
    run.add_argument(  # universe backtests (issue 15)
        "--data-dir", default=None, help="folder of CSV/Parquet files: the assets of a universe: YAML"
    )
    run.add_argument("--mode", choices=("vectorised", "event"), default=None, help="override engine.mode")
    add_no_progress(run)
    run.add_argument("--threads", type=int, default=None, help="torch CPU threads (override engine.threads)")
    run.set_defaults(func=run_handler)

    fc = subparsers.add_parser(
        "forecast",
        help="forecast the bars after a CSV's last row: forecast CSV + fan chart PNG",
        description="Sample Kronos paths after the last bar of a CSV/Parquet file and summarise them.",
        formatter_class=fmt,
    )
    fc.add_argument("csv", help="OHLCV file with a timestamp column")
    fc.add_argument(
        "--out", default=None,
        help="directory for forecast.csv and forecast.png (default: <input>_forecast.csv/.png next to the input)",
    )  # fmt: skip
    fc.add_argument("--png", default=None, help="fan chart PNG file (default: next to the CSV)")
    fc.add_argument("--model", default=None, help="hub id or checkpoint directory (default: bundled model)")
    fc.add_argument("--device", default="cpu")
    fc.add_argument("--lookback", type=int, default=256, help="history bars given to the model")
    fc.add_argument("--pred-len", type=int, default=24, help="bars to forecast")
    fc.add_argument("--sample-count", type=int, default=32, help="sample paths")
    fc.add_argument("--quantiles", default="0.1,0.5,0.9", help="close quantile levels in the CSV")
    fc.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (T in Python/YAML)")
    fc.add_argument("--top-k", type=int, default=0)
    fc.add_argument("--top-p", type=float, default=0.9)
    fc.add_argument("--seed", type=int, default=0, help="sampling seed")
    fc.add_argument(
        "--anchor",
        action=argparse.BooleanOptionalAction,
        default=ANCHOR_DEFAULT,
        help="start the paths from the last bar, not from the tokenizer's reconstruction of it",
    )
    fc.add_argument("--end", default=None, help="forecast from the bars up to this timestamp (default: all)")
    fc.add_argument("--timestamp-column", default=None)
    fc.add_argument("--tz", default=None, help="timezone of naive timestamps, e.g. UTC")
    fc.set_defaults(func=forecast_handler)
