"""Run a ``universe:`` backtest: load and align the assets, forecast them, trade them in one Cerebro."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd

from kronos_model.calibration import CalibrationSpec

from .. import reporting
from ..config import BacktestConfig, check_names, load_config
from ..errors import ConfigError
from ..feeds import bar_timestamps, data_fingerprint, make_feed
from ..forecasting import ForecastSpec
from ..indicator import ForecastStats, resolve_cache
from ..run_folders import point_latest, report_folder
from ..runner import load_model
from ..strategy import configure_broker, load_object
from .assets import load_universe, universe_fingerprint, validated
from .calendar import AlignedUniverse, align_universe
from .config import UniverseConfig
from .signals import SignalTable, UniverseForecaster
from .strategy import UniverseStrategy

__all__ = ["UniverseResult", "equal_weight_returns", "prepare_universe", "run_universe_backtest"]


@dataclass
class UniverseResult:
    """Everything one universe backtest produced; Series are indexed by union bar over the trading period."""

    config: BacktestConfig
    universe: AlignedUniverse
    table: SignalTable
    metrics: dict[str, Any]
    benchmark_metrics: dict[str, Any]
    signal_metrics: dict[str, Any]
    returns: pd.Series
    benchmark: pd.Series
    equity: pd.Series
    weights: pd.DataFrame  # end-of-bar weight per asset plus ``cash`` (rows sum to 1)
    fills: pd.DataFrame
    trade_pnls: list[float]
    rebalances: pd.DatetimeIndex
    forecast_stats: ForecastStats
    periods_per_year: float
    model_fingerprint: str
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    walkforward: list[dict[str, Any]] = field(
        default_factory=list
    )  # one entry per fold with a finetune: block


def strategy_class(cfg: BacktestConfig) -> type[UniverseStrategy]:
    """The ranking strategy a config names (``topk``, ``long_short`` or ``module:Class``)."""
    cls = load_object(cfg.strategy.name, kind="strategy")
    if not (isinstance(cls, type) and issubclass(cls, UniverseStrategy)):
        raise ConfigError(
            f"strategy.name {cfg.strategy.name!r} is not a UniverseStrategy: a universe needs a ranking "
            "strategy such as topk or long_short"
        )
    check_names(cfg.strategy.params, cls.params._getkeys(), "strategy.params")
    return cls


def run_universe_backtest(
    config: BacktestConfig | str | Path | Mapping[str, Any],
    *,
    overrides: Sequence[str] = (),
    out_dir: str | Path | None = None,
    predictor: Any = None,
    frames: Mapping[str, pd.DataFrame] | None = None,
    write_reports: bool = True,
    new_folder: bool = False,
    force: bool = True,
) -> UniverseResult:
    """Run one universe backtest and (optionally) write its reports.

    ``frames`` (name -> ``read_ohlcv`` frame) and ``predictor`` replace what the config names (tests,
    notebooks); ``out_dir`` replaces ``output.dir``. Run folders as for one asset
    (:func:`kronos_strategies.runner.report_folder`): ``new_folder`` writes into a fresh
    ``<out>/<UTC time>-<hash>/`` and points ``<out>/latest`` at it, otherwise ``force=False`` refuses a folder
    that already holds a run. Bad input raises a ``KronosError`` naming the asset.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    cfg = config if isinstance(config, BacktestConfig) else load_config(config, overrides)
    if cfg.universe is None:
        raise ConfigError(
            "this config has no 'universe:' block; use kronos-bt run for single-asset backtests"
        )
    uni: UniverseConfig = cfg.universe
    strategy_cls = strategy_class(cfg)
    if cfg.finetune is not None and cfg.engine.mode != "vectorised":
        raise ConfigError(
            "walk-forward on a universe (finetune:) runs in vectorised mode: set engine.mode: vectorised"
        )
    raw = validated(dict(frames)) if frames is not None else load_universe(cfg)
    if write_reports:  # refused before any work, as for one asset
        base = Path(out_dir) if out_dir is not None else cfg.output_dir
        out_dir = report_folder(base, cfg, universe_fingerprint(raw), new_folder=new_folder, force=force)
    universe, forecaster = prepare_universe(cfg, raw, predictor, checked=True)
    timings["load_align"] = time.perf_counter() - started
    mark = time.perf_counter()
    folds = []
    if cfg.finetune is not None:  # each fold's windows by that fold's model, trained on every asset before it
        from ..walkforward.universe import run_universe_walkforward

        folds = run_universe_walkforward(cfg, raw, forecaster)
    elif cfg.engine.mode == "vectorised":
        forecaster.precompute()
    timings["forecasts"] = time.perf_counter() - mark

    mark = time.perf_counter()
    cerebro = bt.Cerebro(stdstats=False, runonce=cfg.engine.mode == "vectorised", preload=True)
    for name, frame in universe.frames.items():
        cerebro.adddata(make_feed(frame, name=name))
    configure_broker(
        cerebro, cash=cfg.broker.cash, commission=cfg.broker.commission, slippage=cfg.broker.slippage
    )
    cerebro.broker.set_coc(True)  # only orders marked coc=True (delisting closes) fill at their bar's close
    cerebro.addstrategy(strategy_cls, forecaster=forecaster, mode=cfg.engine.mode, band=uni.band,
                        allow_short=uni.shorting, **cfg.strategy.params)  # fmt: skip
    strat = cerebro.run()[0]
    timings["backtest"] = time.perf_counter() - mark
    if cfg.engine.mode == "event":
        timings["backtest"] -= forecaster.stats.seconds
        timings["forecasts"] = forecaster.stats.seconds

    mark = time.perf_counter()
    result = _collect(cfg, universe, forecaster, strat)
    result.model_fingerprint = str(getattr(predictor, "fingerprint", "unknown"))
    timings["metrics"] = time.perf_counter() - mark
    result.timings = timings
    result.walkforward = [f.as_dict() for f in folds]
    result.seconds = time.perf_counter() - started
    if write_reports:
        from .report import write_universe_reports

        mark = time.perf_counter()
        result.files = write_universe_reports(result, Path(out_dir))
        if new_folder:
            point_latest(Path(out_dir))
        timings["reports"] = time.perf_counter() - mark
        result.seconds = time.perf_counter() - started
    return result


def prepare_universe(
    cfg: BacktestConfig, frames: Mapping[str, pd.DataFrame], predictor: Any = None, *, checked: bool = False
) -> tuple[AlignedUniverse, UniverseForecaster]:
    """Align the universe and set up its forecaster (the model, its context and threads checked).

    ``frames`` are ``read_ohlcv`` frames by asset name (validated here unless ``checked``); ``predictor`` None
    loads the config's model. Shared by the backtest and the sweep's forecast shards.
    """
    uni: UniverseConfig = cfg.universe
    ind = cfg.indicator
    raw = dict(frames) if checked else validated(dict(frames))
    universe = align_universe(
        raw, start=cfg.dates.start, end=cfg.dates.end, lookback=ind.lookback, min_history=uni.min_history
    )
    predictor = predictor if predictor is not None else load_model(cfg.model)
    limit = getattr(predictor, "max_context", None)
    if limit is not None and ind.lookback > int(limit):
        raise ConfigError(f"indicator.lookback={ind.lookback} exceeds the model's context of {limit} bars")
    if cfg.engine.threads is not None:
        import torch

        torch.set_num_threads(cfg.engine.threads)
    spec = ForecastSpec(pred_len=ind.pred_len, sample_count=ind.sample_count, T=ind.T, top_k=ind.top_k,
                        top_p=ind.top_p, seed=ind.seed, anchor=ind.anchor)  # fmt: skip
    lo, hi = ind.quantiles
    calibration = CalibrationSpec.coerce(
        ind.calibration, target=round(hi - lo, 12), where="indicator.calibration"
    )
    forecaster = UniverseForecaster(
        universe, predictor, spec, resolve_cache(ind.cache_dir), lookback=ind.lookback, horizon=ind.horizon,
        signal=uni.signal, batch_size=ind.batch_size, chunk=uni.chunk, calibration=calibration,
    )  # fmt: skip
    return universe, forecaster


def equal_weight_returns(universe: AlignedUniverse, every: int, start: pd.Timestamp) -> pd.Series:
    """Equal weight over the assets with a bar, reset every ``every`` bars from ``start``, drifting in between.

    An asset's return at t is close-to-close from its previous bar (0 when it has no bar at t); a delisted
    asset's weight turns to cash at its last close until the next reset.
    """
    close = universe.close
    prev = close.ffill().shift(1)
    asset_ret = (close / prev - 1.0).fillna(0.0).to_numpy()
    has_bar = close.notna().to_numpy()
    alive = np.array([[t <= universe.last_bar[n] for n in close.columns] for t in close.index])
    rows = np.flatnonzero(close.index >= start)
    out = np.zeros(len(rows))
    w = np.zeros(close.shape[1])
    for k, t in enumerate(rows):
        if k:
            growth = w * (1.0 + asset_ret[t])
            out[k] = growth.sum() + (1.0 - w.sum()) - 1.0
            total = out[k] + 1.0
            w = np.where(alive[t], growth, 0.0) / total
        if k % every == 0:
            members = has_bar[t] & alive[t]
            w = members / members.sum() if members.any() else np.zeros_like(w)
    return pd.Series(out, index=close.index[rows], name="Equal weight")


def _collect(
    cfg: BacktestConfig, universe: AlignedUniverse, fc: UniverseForecaster, strat: UniverseStrategy
) -> UniverseResult:
    """Series over the trading period, weights, fills and the metrics of strategy, benchmark and signal."""
    from .report import signal_report

    uni: UniverseConfig = cfg.universe
    index = universe.index
    equity_all = pd.Series([r[0] for r in strat.records], index=index, name="equity")
    values = pd.DataFrame([r[2] for r in strat.records], index=index, columns=strat.names)
    weights_all = values.div(equity_all, axis=0)
    weights_all["cash"] = 1.0 - weights_all.sum(axis=1)
    live = index >= universe.start
    equity = equity_all[live]
    returns = (equity / equity.shift(1).fillna(cfg.broker.cash) - 1.0).rename("Strategy")
    every = int(cfg.strategy.params.get("rebalance", 1))
    benchmark = equal_weight_returns(universe, every, universe.start)
    periods = reporting.periods_per_year(index[live] if live.sum() >= 3 else index)
    feed = strat.datas[0]
    fills = pd.DataFrame(strat.fills, columns=["created", "executed", "asset", "size", "price", "value", "commission", "note"])  # fmt: skip
    for col in ("created", "executed"):
        fills[col] = bar_timestamps(feed, fills[col].to_numpy(dtype=float))
    metrics = reporting.performance_metrics(returns, periods=periods, exposure=1.0 - weights_all["cash"][live],
                                            fills=strat.fills, trade_pnls=strat.closed_trades, equity=equity)  # fmt: skip
    bench_metrics = reporting.performance_metrics(
        benchmark, periods=periods, exposure=pd.Series(1.0, index=benchmark.index)
    )
    extra = {}
    if uni.benchmark_asset:
        if uni.benchmark_asset not in universe.close:
            raise ConfigError(
                f"universe.benchmark_asset {uni.benchmark_asset!r} is not an asset; assets are {universe.names}"
            )
        hold = universe.close[uni.benchmark_asset].ffill().pct_change().fillna(0.0)[live]
        hold.iloc[0] = (
            0.0  # like the strategy and the equal weight: growth counted from the first trading bar
        )
        extra[uni.benchmark_asset] = reporting.performance_metrics(hold, periods=periods)
    signal_metrics = signal_report(fc.table, universe, horizon=cfg.indicator.horizon, quantiles=uni.quantiles)
    signal_metrics["benchmark_assets"] = extra
    data_fp = {n: data_fingerprint(f) for n, f in universe.frames.items()}
    signal_metrics["data_fingerprints"] = data_fp
    return UniverseResult(
        config=cfg, universe=universe, table=fc.table, metrics=metrics, benchmark_metrics=bench_metrics,
        signal_metrics=signal_metrics, returns=returns, benchmark=benchmark, equity=equity,
        weights=weights_all[live], fills=fills, trade_pnls=list(strat.closed_trades),
        rebalances=index[strat.rebalances], forecast_stats=fc.stats, periods_per_year=periods,
        model_fingerprint="", seconds=0.0,
    )  # fmt: skip
