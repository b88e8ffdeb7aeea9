"""Paper trading of a universe: one session ranks several symbols with a ``UniverseStrategy`` (``topk``, ...).

The symbols' live feeds are polled together (:class:`~kronos_strategies.paper.livefeed.FeedGroup`), so the
strategy steps once per bar time over the symbols that have a closed bar then; a symbol without a bar (a hole)
is neither forecast nor traded at that time. :class:`LiveUniverseForecaster` forecasts, at each bar, the windows
of the symbols that have one in one batched call (the backtest's event mode, with the same cache keys).
Every order intent carries its symbol and a client order id with the symbol's index; each processed bar is
journaled with every symbol's candle and position and the strategy's targets, in one transaction, so a
restarted session resumes each symbol at its own bar and the ranking where it stopped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd

from kronos_strategies.config import BacktestConfig
from kronos_strategies.errors import ConfigError
from kronos_strategies.forecasting import Forecaster, ForecastSpec
from kronos_strategies.indicator import resolve_cache
from kronos_strategies.universe.calendar import AlignedUniverse
from kronos_strategies.universe.config import UniverseConfig, asset_label
from kronos_strategies.universe.signals import SignalTable, UniverseForecaster
from kronos_strategies.universe.strategy import UniverseStrategy

from .journal import Journal, SymbolBar

__all__ = ["LiveUniverseForecaster", "universe_markets", "universe_strategy"]

_DEPTH = 4  # rows of the signal table kept: the strategy only reads the row of the bar it is on


class _Rows:
    """The latest rows of a [bars x assets (x steps)] table, indexed by absolute bar row like the full table."""

    def __init__(self, shape: tuple[int, ...], fill: Any, dtype: Any) -> None:
        self._fill = fill
        self._a = np.full((_DEPTH, *shape), fill, dtype=dtype)

    def _key(self, key: Any) -> Any:
        return (key[0] % _DEPTH, *key[1:]) if isinstance(key, tuple) else key % _DEPTH

    def __getitem__(self, key: Any) -> Any:
        return self._a[self._key(key)]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._a[self._key(key)] = value

    def clear(self, t: int) -> None:
        """Empty row ``t`` before it is filled."""
        self._a[t % _DEPTH] = self._fill

    def to_numpy(self) -> _Rows:
        """Itself: the strategy keeps the reference and reads the current row (``eligible[t]``)."""
        return self


class LiveUniverseForecaster(UniverseForecaster):
    """Event-mode forecasts of a live universe: at each bar, one batched call over the symbols that have one.

    The strategy's row ``t`` (its bar count) is opened by the session with the symbols that may be ranked
    (a bar now and ``min_history`` bars of their own); the windows are the strategy's own ``lookback`` bars
    of each feed (nothing after the bar), forecast through ``cached_forecasts`` with the backtest's spec.
    """

    def __init__(self, names: Sequence[str], predictor: Forecaster, spec: ForecastSpec, cache: Any, *,
                 lookback: int, horizon: int, signal: str = "expected_return", batch_size: int = 64,
                 min_history: int | None = None) -> None:  # fmt: skip
        empty = AlignedUniverse(frames={n: pd.DataFrame() for n in names}, index=pd.DatetimeIndex([]),
                                close=pd.DataFrame(), eligible=pd.DataFrame(), position=pd.DataFrame(),
                                start=pd.Timestamp(0), last_bar={})  # fmt: skip  # no calendar: bars come live
        super().__init__(empty, predictor, spec, resolve_cache(cache), lookback=lookback, horizon=horizon,
                         signal=signal, batch_size=batch_size)  # fmt: skip
        self.need = max(lookback, min_history or lookback)
        n = len(names)
        empty.eligible = _Rows((n,), False, bool)  # type: ignore[assignment]
        self.table = SignalTable(pd.DatetimeIndex([]), list(names), _Rows((n,), np.nan, float),  # type: ignore[arg-type]
                                 _Rows((n,), np.nan, float), _Rows((n, spec.pred_len), np.nan, float),  # type: ignore[arg-type]
                                 _Rows((), False, bool))  # type: ignore[arg-type]  # fmt: skip

    def open_row(self, t: int, eligible: Sequence[bool]) -> None:
        """Start bar row ``t``: which symbols may be ranked, no signal yet."""
        for rows in (self.table.signal, self.table.prob_up, self.table.expected, self.table.done):
            rows.clear(t)  # type: ignore[attr-defined]
        self.universe.eligible[t] = np.asarray(eligible, bool)

    def at(self, t: int, windows: dict[str, pd.DataFrame]) -> None:
        """Forecast the windows of the symbols that have a bar at row ``t``, in one call (once per row)."""
        if self.table.done[t]:
            return
        index = {n: j for j, n in enumerate(self.table.names)}
        if windows:
            self._run([(t, index[n]) for n in windows], list(windows.values()))
        self.table.done[t] = True


def universe_markets(cfg: BacktestConfig, exchange: str, timeframe: str) -> dict[str, str]:
    """Asset name -> ccxt symbol of a ``universe:`` block that paper trading can run: ``source: ccxt`` assets
    with a symbol, on the paper section's exchange and timeframe."""
    uni: UniverseConfig = cfg.universe
    if not uni.assets:
        raise ConfigError(
            "paper trading a universe needs 'universe.assets' with 'source: ccxt' and a symbol for each asset "
            "(files / data_dir are for backtests)"
        )
    markets: dict[str, str] = {}
    for i, asset in enumerate(uni.assets):
        where = f"universe.assets[{i}] ({asset_label(asset, i)!r})"
        if asset.source != "ccxt" or not asset.symbol:
            raise ConfigError(f"{where}: paper trading needs 'source: ccxt' with a symbol for every asset")
        if asset.exchange != exchange or asset.timeframe != timeframe:
            raise ConfigError(
                f"{where} is {asset.exchange} {asset.timeframe} but paper: trades {exchange} {timeframe}; "
                "one session trades one exchange account at one timeframe: make them match"
            )
        markets[asset_label(asset, i)] = str(asset.symbol)
    if len(set(markets.values())) != len(markets):
        raise ConfigError(
            "universe.assets: a symbol is listed twice; paper trading holds one position per symbol"
        )
    return markets


def universe_strategy(cfg: BacktestConfig, markets: Mapping[str, str] | None,
                      predictor: Forecaster | None = None) -> tuple[type[UniverseStrategy], dict[str, Any]]:  # fmt: skip
    """The ranking strategy and its params as the universe backtest sets them, in event mode (forecasts bar
    by bar); ``predictor`` None loads the config's model."""
    from kronos_strategies.runner import load_model
    from kronos_strategies.universe.runner import strategy_class

    if not markets:
        raise ConfigError(
            f"strategy.name {cfg.strategy.name!r} ranks several assets: add a universe: block with "
            "'source: ccxt' assets to paper-trade it"
        )
    cls = strategy_class(cfg)  # a UniverseStrategy, its params checked
    uni: UniverseConfig = cfg.universe
    model = predictor if predictor is not None else load_model(cfg.model)
    forecaster = live_forecaster(cfg, list(markets), model)
    params = {"forecaster": forecaster, "mode": "event", "band": uni.band, "allow_short": uni.shorting,
              **cfg.strategy.params}  # fmt: skip
    return cls, params


def live_forecaster(
    cfg: BacktestConfig, names: Sequence[str], predictor: Forecaster
) -> LiveUniverseForecaster:
    """The config's forecast settings (``indicator:``, ``universe.signal`` / ``min_history``) for live bars."""
    uni: UniverseConfig = cfg.universe
    ind = cfg.indicator
    limit = getattr(predictor, "max_context", None)
    if limit is not None and ind.lookback > int(limit):
        raise ConfigError(f"indicator.lookback={ind.lookback} exceeds the model's context of {limit} bars")
    if (
        ind.calibration is not None
    ):  # the live forecaster has no per-asset calibrators: its orders would differ
        raise ConfigError(
            "indicator.calibration is not supported when paper-trading a universe yet (the live ranking would "
            "use raw bands while the backtest used calibrated ones): remove indicator.calibration for this session"
        )
    spec = ForecastSpec(pred_len=ind.pred_len, sample_count=ind.sample_count, T=ind.T, top_k=ind.top_k,
                        top_p=ind.top_p, seed=ind.seed, anchor=ind.anchor)  # fmt: skip
    return LiveUniverseForecaster(names, predictor, spec, ind.cache_dir, lookback=ind.lookback,
                                  horizon=ind.horizon, signal=uni.signal, batch_size=ind.batch_size,
                                  min_history=uni.min_history)  # fmt: skip


class UniverseProgress:
    """The universe parts of a session's bar: open the strategy's row, restore and journal its targets."""

    def __init__(self, journal: Journal, forecaster: LiveUniverseForecaster, processed_before: int) -> None:
        self.journal, self.fc, self.processed_before = journal, forecaster, processed_before
        self._phase_set = False

    def before(self, strategy: UniverseStrategy, resume_after: int | None) -> None:
        """Restore targets once after a restart, fix the rebalance phase, open this bar's row."""
        t = len(strategy) - 1
        if not self._phase_set:  # rebalance every n processed bars, counted over every run of the session
            self._phase_set = True
            strategy.first = t - self.processed_before
            state = self.journal.strategy_state(at=resume_after) if resume_after is not None else None
            if state is not None:
                strategy.targets = {str(k): float(v) for k, v in state.get("targets", {}).items()}
                self.journal.event("restore", f"universe targets {strategy.targets}")
        now = strategy.datetime[0]
        self.fc.open_row(
            t, [bool(len(d)) and d.datetime[0] == now and len(d) >= self.fc.need for d in strategy.datas]
        )

    def rows(self, strategy: bt.Strategy) -> tuple[list[SymbolBar], dict[str, Any]]:
        """Each symbol's candle (None without a bar now) and position, and the state to journal."""
        now, broker = strategy.datetime[0], strategy.broker
        rows = []
        for d in strategy.datas:
            pos = broker.getposition(d)
            has_bar = bool(len(d)) and d.datetime[0] == now
            ohlcv = (d.open[0], d.high[0], d.low[0], d.close[0], d.volume[0]) if has_bar else None
            rows.append(SymbolBar(d._name, ohlcv, float(pos.size), float(pos.price)))
        return rows, {"targets": dict(strategy.targets)}


def positions_by_symbol(broker: bt.BrokerBase, feeds: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """(size, price) per symbol name from a broker."""
    return {
        name: (float(broker.getposition(f).size), float(broker.getposition(f).price))
        for name, f in feeds.items()
    }
