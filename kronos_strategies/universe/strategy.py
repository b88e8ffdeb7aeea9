"""``UniverseStrategy``: a backtrader strategy that ranks many feeds by their Kronos signals and trades
target weights. Users extend it with one hook, :meth:`UniverseStrategy.rank`."""

from __future__ import annotations

from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd

from kronos_model.data import prepare_ohlcv

from ..errors import ConfigError
from ..feeds import bar_timestamps
from .signals import UniverseForecaster

__all__ = ["UniverseStrategy"]

_LINES = ("open", "high", "low", "close", "volume", "amount")


class UniverseStrategy(bt.Strategy):
    """Rank the assets that have a bar by their Kronos signal and hold the weights :meth:`rank` returns.

    One data feed per asset (its own bars; feeds are stepped on the union of their times). At each
    rebalance bar t the strategy collects the signals of the assets that have a bar at t and enough
    history, calls ``rank(signals) -> weights`` and sends ``order_target_percent`` orders at the close of
    t (filled at each asset's next open, with the broker's commission and slippage). An asset without a
    bar at t is neither ranked nor traded at t; its position is kept. An asset whose bars end (delisted) is
    closed at its last close by a cheat-on-close order, noted ``delisted`` in the trades.

    Params:
      - ``forecaster`` (UniverseForecaster): the universe's forecasts (set by the runner)
      - ``mode`` ("vectorised"): "vectorised" reads the precomputed table, "event" forecasts bar by bar
      - ``rebalance`` (1): rebalance every n bars of the union calendar
      - ``band`` (0.005): skip an order when the target weight moved by less than this
      - ``allow_short`` (False): accept negative weights (set by ``universe.shorting``)
      - ``max_gross`` (1.0): the largest sum of absolute weights ``rank`` may return

    Hook: ``rank(signals: pd.Series) -> pd.Series`` of weights by asset name (fractions of portfolio
    value; missing assets get 0). ``self.targets`` holds the current target weights.
    """

    params = (
        ("forecaster", None),
        ("mode", "vectorised"),
        ("rebalance", 1),
        ("band", 0.005),
        ("allow_short", False),
        ("max_gross", 1.0),
    )

    # ------------------------------------------------------------------ the hook

    def rank(self, signals: pd.Series) -> pd.Series:
        """Target weights by asset name from the signals of the tradable assets (override this)."""
        raise NotImplementedError("subclass UniverseStrategy and implement rank(signals) -> weights")

    # ------------------------------------------------------------------ engine side

    def __init__(self) -> None:
        if not isinstance(self.p.forecaster, UniverseForecaster):
            raise ConfigError(
                f"{type(self).__name__} needs forecaster=UniverseForecaster (run_universe_backtest sets it)"
            )
        if int(self.p.rebalance) < 1:
            raise ConfigError(f"{type(self).__name__}: rebalance must be >= 1 bar, got {self.p.rebalance}")
        self.fc: UniverseForecaster = self.p.forecaster
        self.names = [d._name for d in self.datas]
        self.col = {n: j for j, n in enumerate(self.fc.table.names)}
        self.first = int(self.fc.table.index.searchsorted(self.fc.universe.start))
        self.eligible = (
            self.fc.universe.eligible.to_numpy()
        )  # [union bars, assets]: bar at t + enough history
        self.targets: dict[str, float] = {}
        self.fills: list[dict[str, Any]] = []
        self.closed_trades: list[float] = []
        self.records: list[tuple[float, float, list[float]]] = []  # (equity, cash, position values)
        self.rebalances: list[int] = []  # union rows where rank ran
        self.delisted: dict[str, float] = {}
        self._pending: dict[str, bt.Order] = {}

    def prenext(self) -> None:
        self._step()  # assets that start late (IPO) have no bar yet: step anyway

    def next(self) -> None:
        self._step()

    def _step(self) -> None:
        t = len(self) - 1  # union row: the strategy's clock advances once per union timestamp
        now = self.datetime[0]
        self.records.append((self.broker.getvalue(), self.broker.getcash(),
                             [self.getposition(d).size * d.close[0] if len(d) else 0.0 for d in self.datas]))  # fmt: skip
        live = [d for d in self.datas if len(d) and d.datetime[0] == now]
        self._close_delisted(now)
        if t < self.first:
            return
        eligible = self.eligible[t]
        ranked = [d for d in live if eligible[self.col[d._name]]]
        if self.p.mode == "event":
            self.fc.at(t, {d._name: self._window(d) for d in ranked})
        if (t - self.first) % int(self.p.rebalance):
            return
        row = self.fc.table.signal[t]
        signals = pd.Series({d._name: row[self.col[d._name]] for d in ranked}, dtype=float)
        signals = signals[np.isfinite(signals.to_numpy())]
        weights = self._checked(self.rank(signals))
        self.rebalances.append(t)
        self._order(live, weights)

    def _window(self, d: bt.AbstractDataBase) -> pd.DataFrame:
        """The last ``lookback`` bars of ``d`` read with ``get`` (nothing after this bar is reachable)."""
        lb = self.fc.lookback
        cols = {name: np.asarray(getattr(d.lines, name).get(size=lb), float) for name in _LINES}
        stamps = bar_timestamps(d, np.asarray(d.datetime.get(size=lb), float))
        return prepare_ohlcv(pd.DataFrame(cols), name=d._name).set_axis(stamps)

    def _checked(self, weights: object) -> pd.Series:
        """The hook's weights as a float Series, checked against shorting and the gross limit."""
        weights = pd.Series(weights, dtype=float).fillna(0.0)
        unknown = sorted(set(weights.index) - set(self.names))
        if unknown:
            raise ConfigError(f"{type(self).__name__}.rank returned weights for unknown assets {unknown[:3]}")
        if not self.p.allow_short and (weights < -1e-12).any():
            raise ConfigError(
                f"{type(self).__name__}.rank returned negative weights: set universe.shorting: true"
            )
        if weights.abs().sum() > self.p.max_gross + 1e-9:
            raise ConfigError(
                f"{type(self).__name__}.rank returned gross weight {weights.abs().sum():.3f} > max_gross={self.p.max_gross}"
            )
        return weights

    def _order(self, live: list[bt.AbstractDataBase], weights: pd.Series) -> None:
        """Orders to the target weights of the assets that have a bar now; sells before buys."""
        value = self.broker.getvalue()
        moves = []
        for d in live:
            target = float(weights.get(d._name, 0.0))
            current = self.getposition(d).size * d.close[0] / value if value else 0.0
            self.targets[d._name] = target
            if abs(target - current) < self.p.band and not (target == 0.0 and current != 0.0):
                continue
            moves.append((target - current, d, target))
        for _, d, target in sorted(moves, key=lambda m: m[0]):
            old = self._pending.get(d._name)
            if old is not None and old.alive():
                self.cancel(old)
            self._pending[d._name] = self.order_target_percent(
                data=d, target=target, coc=False, note="rebalance"
            )

    def _close_delisted(self, now: float) -> None:
        """Close, at its last close, a position in an asset whose bars have ended (it is delisted)."""
        for d in self.datas:
            if d._name in self.delisted or not len(d) or d.datetime[0] >= now or len(d) < d.buflen():
                continue
            old = self._pending.get(d._name)
            if old is not None and old.alive():
                self.cancel(old)  # an order sent at its last bar can never fill
            self.delisted[d._name] = float(d.close[0])
            self.targets[d._name] = 0.0
            if self.getposition(d).size:
                self._pending[d._name] = self.close(data=d, coc=True, note="delisted")

    def notify_order(self, order: bt.Order) -> None:
        if order.status == order.Completed:
            self.fills.append(
                {
                    "created": order.created.dt,
                    "executed": order.executed.dt,
                    "asset": order.data._name,
                    "size": float(order.executed.size),
                    "price": float(order.executed.price),
                    "value": float(abs(order.executed.size) * order.executed.price),
                    "commission": float(order.executed.comm),
                    "note": order.info.get("note", ""),
                }
            )
        elif order.status in (order.Margin, order.Rejected):
            d = order.data  # not reached: hold what is held, the next rebalance retries
            value = self.broker.getvalue()
            self.targets[d._name] = self.getposition(d).size * d.close[0] / value if value else 0.0

    def notify_trade(self, trade: bt.Trade) -> None:
        if trade.isclosed:
            self.closed_trades.append(float(trade.pnlcomm))
