"""Run a YAML-configured backtest through backtrader and collect returns, trades, signals and reports."""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd

from kronos_model.errors import InsufficientHistoryError

from . import reporting, walkforward
from .config import BacktestConfig, ModelConfig, check_names, check_param_types, load_config
from .datacheck import DataWarning, data_warnings
from .errors import ConfigError
from .feeds import bar_timestamps, data_fingerprint, load_dataset, make_feed, read_ohlcv, slice_with_warmup
from .indicator import ForecastStats, KronosSignal
from .run_folders import point_latest, report_folder, run_folder  # noqa: F401  (public here too)
from .strategy import KronosStrategy, configure_broker, load_object

__all__ = ["BacktestResult", "load_model", "load_bars", "run_backtest"]

log = logging.getLogger(__name__)


@dataclass
class BacktestResult:
    """Everything one backtest produced; Series are indexed by bar timestamp over the trading period."""

    config: BacktestConfig
    metrics: dict[str, Any]
    benchmark_metrics: dict[str, Any]
    returns: pd.Series
    benchmark: pd.Series
    equity: pd.Series
    exposure: pd.Series
    close: pd.Series
    signals: pd.DataFrame  # indicator lines for every bar fed to backtrader (warm-up bars are NaN)
    fills: pd.DataFrame  # created / executed timestamps, size, price, value, commission
    trade_pnls: list[float]
    forecast_stats: ForecastStats
    model_fingerprint: str
    data_fingerprint: str
    periods_per_year: float
    seconds: float
    files: dict[str, Path] = field(default_factory=dict)
    warnings: list[DataWarning] = field(default_factory=list)  # data problems that are not errors
    start_note: str = ""  # why trading starts later than dates.start (warm-up), empty when it does not
    hints: list[str] = field(default_factory=list)  # 0 trades, costs eating the gross P&L


class _Recorder(bt.Analyzer):
    """Per bar: date number, portfolio value and position exposure (value of the position / equity)."""

    def start(self) -> None:
        self.rows: list[tuple[float, float, float]] = []

    def next(self) -> None:
        value = self.strategy.broker.getvalue()
        held = self.strategy.getposition(self.data).size * self.data.close[0]
        self.rows.append((self.data.datetime[0], value, held / value if value else 0.0))

    def get_analysis(self) -> list[tuple[float, float, float]]:
        return self.rows


def _model_key(model: ModelConfig) -> tuple[Any, ...]:
    return (model.name, model.revision, model.predictor, model.tokenizer, model.device, model.max_context)


@functools.lru_cache(maxsize=4)
def _load_model_cached(key: tuple[Any, ...]) -> Any:
    from kronos_model import Kronos, KronosPredictor, KronosTokenizer

    name, revision, predictor_dir, tokenizer_dir, device, max_context = key
    if predictor_dir is not None:
        return KronosPredictor(
            Kronos.from_pretrained(predictor_dir),
            KronosTokenizer.from_pretrained(tokenizer_dir),
            device=device,
            max_context=max_context or 512,
        )
    return KronosPredictor.from_pretrained(name, revision=revision, device=device, max_context=max_context)


def load_model(model: ModelConfig) -> Any:
    """The predictor a config names (loaded once per process and reused by later runs)."""
    return _load_model_cached(_model_key(model))


def load_bars(cfg: BacktestConfig) -> pd.DataFrame:
    """The validated bars a config points at (file paths relative to the working directory or the YAML)."""
    data = cfg.data
    if data.dataset is not None:
        return read_ohlcv(load_dataset(data.dataset), tz=data.tz, name=data.name or data.dataset)
    if data.source == "ccxt":  # cached exchange download (the paper-trading client)
        from .exchange.history import load_ccxt_bars

        name = data.name or f"{data.symbol} {data.timeframe}"
        return read_ohlcv(load_ccxt_bars(cfg), tz=data.tz, name=name)
    path = Path(data.path)
    if not path.is_absolute() and not path.exists() and cfg.source:
        beside = Path(cfg.source).parent / path
        path = beside if beside.exists() else path
    if not path.exists():
        raise ConfigError(
            f"data.path {data.path!r} does not exist; pass a CSV or Parquet file (--set data.path=...)"
        )
    return read_ohlcv(path, timestamp_column=data.timestamp_column, tz=data.tz, name=data.name or path.name)


def strategy_classes(cfg: BacktestConfig) -> tuple[type[KronosSignal], type[KronosStrategy]]:
    """The indicator and strategy classes a config names (checked to be KronosSignal / KronosStrategy)."""
    indicator = load_object(cfg.indicator.type, kind="indicator")
    if not (isinstance(indicator, type) and issubclass(indicator, KronosSignal)):
        raise ConfigError(f"indicator.type {cfg.indicator.type!r} is not a KronosSignal subclass")
    strategy = load_object(cfg.strategy.name, kind="strategy")
    if not (isinstance(strategy, type) and issubclass(strategy, KronosStrategy)):
        raise ConfigError(f"strategy.name {cfg.strategy.name!r} is not a KronosStrategy subclass")
    check_names(cfg.indicator.params, indicator.params._getkeys(), "indicator.params")
    check_names(cfg.strategy.params, strategy.params._getkeys(), "strategy.params")
    cfg.indicator.params = check_param_types(
        cfg.indicator.params, dict(indicator.params._getitems()), "indicator.params"
    )
    cfg.strategy.params = check_param_types(
        cfg.strategy.params, dict(strategy.params._getitems()), "strategy.params"
    )
    return indicator, strategy


def indicator_params(cfg: BacktestConfig, predictor: Any) -> dict[str, Any]:
    """KronosSignal params from a config's ``indicator:`` section and a loaded predictor."""
    ind = cfg.indicator
    return {
        "predictor": predictor,
        "lookback": ind.lookback,
        "pred_len": ind.pred_len,
        "horizon": ind.horizon,
        "sample_count": ind.sample_count,
        "quantiles": tuple(ind.quantiles),
        "calibration": ind.calibration,
        "every": ind.every,
        "T": ind.T,
        "top_k": ind.top_k,
        "top_p": ind.top_p,
        "seed": ind.seed,
        "anchor": ind.anchor,
        "cache": ind.cache_dir,
        "batch_size": ind.batch_size,
        "device": cfg.model.device,
        "progress": cfg.engine.progress,
        **ind.params,
    }


def run_backtest(
    config: BacktestConfig | str | Path | Mapping[str, Any],
    *,
    overrides: Sequence[str] = (),
    out_dir: str | Path | None = None,
    predictor: Any = None,
    bars: pd.DataFrame | None = None,
    write_reports: bool = True,
    new_folder: bool = False,
    force: bool = True,
) -> BacktestResult:
    """Run one backtest: load bars and model, run backtrader, compute metrics and write the reports.

    ``predictor`` / ``bars`` replace what the config names (tests, notebooks); ``out_dir`` replaces
    ``output.dir``. ``new_folder`` writes into a fresh ``<out>/<UTC time>-<hash>/`` folder and points
    ``<out>/latest`` at it (the CLI's default); otherwise ``force=False`` refuses a folder that already
    holds a run. Bad input raises a ``KronosError`` subclass naming the problem.
    """
    started = time.perf_counter()
    cfg = config if isinstance(config, BacktestConfig) else load_config(config, overrides)
    indicator_cls, strategy_cls = strategy_classes(cfg)
    frame = load_bars(cfg) if bars is None else read_ohlcv(bars, name=cfg.data.name or "bars")
    if write_reports:
        base_dir = Path(out_dir) if out_dir is not None else cfg.output_dir
        out_dir = report_folder(base_dir, cfg, data_fingerprint(frame), new_folder=new_folder, force=force)
    history = frame  # all bars: walk-forward folds train on bars before dates.start too
    frame, start, note = _trading_bars(cfg, frame)
    label = str(cfg.data.name or cfg.data.dataset or cfg.data.path or "data")
    warnings_found = data_warnings(frame, label=label)
    # Annualisation: the calendar's bars per year (or data.periods_per_year), whole, as the tear-sheet uses.
    periods = float(round(cfg.data.periods_per_year or reporting.periods_per_year(frame.index)))
    predictor = predictor if predictor is not None else load_model(cfg.model)
    if cfg.engine.threads is not None:
        import torch

        torch.set_num_threads(cfg.engine.threads)
    if cfg.finetune is not None:  # walk-forward: each fold's bars are forecast by that fold's model
        report_dir = (Path(out_dir) if out_dir is not None else cfg.output_dir) if write_reports else None
        predictor = walkforward.prepare_backtest(
            cfg, predictor, history, start, frame.index[-1], report_dir=report_dir
        )

    strat, feed = _run_cerebro(cfg, frame, start, periods, predictor, indicator_cls, strategy_cls)
    result = _collect(cfg, strat, feed, frame, start, periods, cfg.broker.cash)
    if isinstance(predictor, walkforward.WalkForwardPredictor):
        _count_fold_cache(result.forecast_stats, predictor)
    result.warnings, result.start_note = warnings_found, note
    result.hints = run_hints(cfg, result)
    result.model_fingerprint = str(getattr(predictor, "fingerprint", "unknown"))
    result.seconds = time.perf_counter() - started
    if write_reports:
        out = Path(out_dir) if out_dir is not None else cfg.output_dir
        result.files = write_reports_for(result, out)
        result.seconds = time.perf_counter() - started  # the manifest keeps the time before the reports
        if new_folder:
            point_latest(out)
    return result


def _trading_bars(cfg: BacktestConfig, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Timestamp, str]:
    """The bars the backtest sees (dates plus the lookback warm-up), its first traded bar and the start note."""
    lookback = cfg.indicator.lookback
    try:
        frame, start = slice_with_warmup(frame, cfg.dates.start, cfg.dates.end, warmup=lookback - 1)
    except InsufficientHistoryError as exc:
        raise InsufficientHistoryError(
            f"{exc}; change dates.start / dates.end (--set dates.start=null: all bars)"
        ) from None
    if len(frame) < lookback + 2:
        raise InsufficientHistoryError(
            f"{len(frame)} bars between the warm-up start and dates.end; lookback={lookback} needs at least "
            f"{lookback + 2}: use longer data, an earlier dates.start or a shorter indicator.lookback"
        )
    requested = start
    start = max(start, frame.index[lookback - 1])  # the first bar with a forecast
    return frame, start, _start_note(cfg, frame, requested, start)


def _run_cerebro(
    cfg: BacktestConfig,
    frame: pd.DataFrame,
    start: pd.Timestamp,
    periods: float,
    predictor: Any,
    indicator_cls: type,
    strategy_cls: type,
) -> tuple[Any, Any]:
    """Set up cerebro (feed, broker, strategy with its indicator, recorder), run it; the strategy and feed."""
    strategy_params = dict(cfg.strategy.params)
    if "periods_per_year" in strategy_cls.params._getkeys():
        strategy_params.setdefault("periods_per_year", periods)
    cerebro = bt.Cerebro(stdstats=False, runonce=cfg.engine.mode == "vectorised", preload=True)
    feed = make_feed(frame, name=cfg.data.name or "data")
    cerebro.adddata(feed)
    configure_broker(
        cerebro, cash=cfg.broker.cash, commission=cfg.broker.commission, slippage=cfg.broker.slippage
    )
    cerebro.addstrategy(
        strategy_cls,
        indicator=indicator_cls,
        indicator_params=indicator_params(cfg, predictor),
        trade_start=start.tz_localize(None).to_pydatetime() if start.tzinfo else start.to_pydatetime(),
        **strategy_params,
    )
    cerebro.addanalyzer(_Recorder, _name="recorder")
    return cerebro.run()[0], feed


def _progress(cfg: BacktestConfig, line: str) -> None:
    """A progress line on stderr for a step that takes seconds (off with engine.progress: false)."""
    if cfg.engine.progress:
        print(line, file=sys.stderr, flush=True)


def _count_fold_cache(stats: ForecastStats, router: walkforward.WalkForwardPredictor) -> None:
    """Windows the indicator sent on but the walk-forward folds served from their cache count as cached.

    Computed = traded windows this run's fold precompute forecast plus those that reached a model later.
    """
    computed = min(stats.windows, router.precomputed + router.computed)
    stats.computed, stats.cache_hits = computed, stats.windows - computed


def _start_note(
    cfg: BacktestConfig, frame: pd.DataFrame, requested: pd.Timestamp, start: pd.Timestamp
) -> str:
    """Why trading starts at ``start`` rather than at dates.start / the first bar (the lookback warm-up)."""
    if start <= requested:
        return ""
    lookback = cfg.indicator.lookback
    asked = f"dates.start {cfg.dates.start}" if cfg.dates.start else "the first bar"
    start_s, requested_s, first_s = (_stamp_text(t) for t in (start, requested, frame.index[0]))
    return (
        f"trading starts {start_s} instead of {requested_s} ({asked}): the first {lookback - 1} bars from "
        f"{first_s} warm up indicator.lookback={lookback}; use data from before {requested_s} "
        "or a shorter lookback"
    )


def _stamp_text(stamp: pd.Timestamp) -> str:
    """A date for midnight stamps (daily bars), the full timestamp otherwise."""
    return str(stamp.date()) if stamp == stamp.normalize() else str(stamp)


# A run whose costs exceed this share of its gross P&L (before costs) gets a hint.
COST_SHARE_HINT = 0.5


def run_hints(cfg: BacktestConfig, result: BacktestResult) -> list[str]:
    """One-line hints for results that usually mean a setting is off: no trades, costs eating the P&L."""
    if result.metrics.get("orders_filled", 0) == 0:
        sig = result.signals.reindex(result.returns.index).get("signal")
        seen = (
            f" (the signal ranged {sig.min():.3g} .. {sig.max():.3g})"
            if sig is not None and sig.notna().any()
            else ""
        )
        return [
            f"no trades: the entry rule never fired with strategy.params {cfg.strategy.params}{seen}; "
            "loosen the entry threshold (e.g. --set strategy.params.enter=0.1) or look at signals.csv"
        ]
    fills = result.fills
    commission = float(fills["commission"].abs().sum())
    slippage = float((fills["size"].abs() * fills["price"]).sum() * cfg.broker.slippage)
    costs = commission + slippage
    gross = float(result.equity.iloc[-1] - cfg.broker.cash) + costs
    if costs > 0 and costs > COST_SHARE_HINT * abs(gross):
        return [
            f"costs ~{costs:,.0f} (commission {commission:,.0f} + slippage ~{slippage:,.0f}) exceed "
            f"{COST_SHARE_HINT:.0%} of the gross P&L {gross:+,.0f}: check broker.commission / broker.slippage "
            "for this market, or trade less (higher strategy.params.enter, indicator.every)"
        ]
    return []


def _collect(
    cfg: BacktestConfig,
    strat: KronosStrategy,
    feed: bt.AbstractDataBase,
    frame: pd.DataFrame,
    start: pd.Timestamp,
    periods: float,
    cash: float,
) -> BacktestResult:
    """Turn the strategy's records into Series over the trading period and compute the metrics."""
    rows = np.asarray(strat.analyzers.recorder.get_analysis(), dtype=float)
    stamps = bar_timestamps(feed, rows[:, 0])
    equity_all = pd.Series(rows[:, 1], index=stamps, name="equity")
    exposure_all = pd.Series(rows[:, 2], index=stamps, name="exposure")
    live = stamps >= start
    equity, exposure = equity_all[live], exposure_all[live]
    returns = (equity / equity.shift(1).fillna(cash) - 1.0).rename("Strategy")
    close = frame["close"].reindex(equity.index)
    benchmark = close.pct_change().fillna(0.0).rename(cfg.benchmark.title)

    ind = strat.kronos
    bars_index = bar_timestamps(feed, np.asarray(feed.datetime.array, dtype=float))
    signals = pd.DataFrame(
        {name: np.asarray(getattr(ind.lines, name).array, dtype=float)[: len(bars_index)]
         for name in ind.lines.getlinealiases()},
        index=bars_index,
    )  # fmt: skip
    fills = pd.DataFrame(strat.fills, columns=["created", "executed", "size", "price", "value", "commission"])
    for col in ("created", "executed"):
        fills[col] = bar_timestamps(feed, fills[col].to_numpy(dtype=float))
    metrics = reporting.performance_metrics(
        returns,
        periods=periods,
        exposure=exposure,
        fills=strat.fills,
        trade_pnls=strat.closed_trades,
        equity=equity,
    )
    held = pd.Series(1.0, index=benchmark.index)
    bench_metrics = reporting.performance_metrics(benchmark, periods=periods, exposure=held)
    return BacktestResult(
        config=cfg,
        metrics=metrics,
        benchmark_metrics=bench_metrics,
        returns=returns,
        benchmark=benchmark,
        equity=equity,
        exposure=exposure,
        close=close,
        signals=signals,
        fills=fills,
        trade_pnls=list(strat.closed_trades),
        forecast_stats=ind.stats,
        model_fingerprint="",
        data_fingerprint=data_fingerprint(frame),
        periods_per_year=periods,
        seconds=0.0,
    )


def band_report(result: BacktestResult) -> dict[str, Any]:
    """Realised coverage of the indicator's band over the run (and of the raw model band)."""
    ind = result.config.indicator
    return reporting.band_summary(result.forecast_stats, horizon=ind.horizon, quantiles=ind.quantiles,
                                  calibration=ind.calibration)  # fmt: skip


def write_reports_for(result: BacktestResult, out: Path) -> dict[str, Path]:
    """Write metrics.json, tearsheet.html, chart.png, signals.csv, trades.csv and manifest.json into ``out``."""
    cfg = result.config
    out.mkdir(parents=True, exist_ok=True)
    title = (
        cfg.output.title
        or f"{cfg.name}: {cfg.strategy.name} on {cfg.data.name or cfg.data.dataset or 'data'}"
    )
    files: dict[str, Path] = {}
    stats = result.forecast_stats
    files["metrics"] = reporting.write_json(
        {
            "strategy": result.metrics,
            "benchmark": result.benchmark_metrics,
            "forecasts": {"windows": stats.windows, "computed": stats.computed, "cache_hits": stats.cache_hits,
                          "model_seconds": round(stats.seconds, 3), "band": band_report(result)},
            "period": {"start": result.returns.index[0], "end": result.returns.index[-1]},
        },
        out / "metrics.json",
    )  # fmt: skip
    if cfg.output.tearsheet:
        _progress(cfg, f"writing the quantstats tear-sheet into {out}/ ...")
        files["tearsheet"] = reporting.write_tearsheet(
            result.returns, benchmark=result.benchmark, output=out / "tearsheet.html", title=title,
            periods=result.periods_per_year,
        )  # fmt: skip
    if cfg.output.chart:
        _progress(cfg, "drawing chart.png ...")
        sig = result.signals.reindex(result.close.index)
        files["chart"] = reporting.plot_backtest(
            result.close, lower=sig["lower"], upper=sig["upper"], horizon=cfg.indicator.horizon, fills=result.fills,
            output=out / "chart.png", title=title,
        )  # fmt: skip
    result.signals.to_csv(out / "signals.csv", index_label="timestamp")
    files["signals"] = out / "signals.csv"
    result.fills.to_csv(out / "trades.csv", index=False)
    files["trades"] = out / "trades.csv"
    files["manifest"] = reporting.write_json(
        {
            "name": cfg.name,
            "config_file": cfg.source,
            "config": cfg.to_dict(),
            "model_fingerprint": result.model_fingerprint,
            "data_fingerprint": result.data_fingerprint,
            "seed": cfg.indicator.seed,
            "packages": reporting.package_versions(),
            "created": pd.Timestamp.now(tz="UTC").isoformat(),
            "seconds": round(result.seconds, 3),
            "trading_start": result.returns.index[0],
            "trading_start_note": result.start_note or None,
            "periods_per_year": result.periods_per_year,
            "data_warnings": [w.to_dict() for w in result.warnings],
            "hints": result.hints,
        },
        out / "manifest.json",
    )
    return files
