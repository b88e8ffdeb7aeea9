"""``KronosStrategy``: a backtrader strategy trading one feed on a ``KronosSignal``; extend it by hooks."""

from __future__ import annotations

import importlib
import importlib.util
import math
import warnings
from typing import Any

import backtrader as bt

from .errors import ConfigError
from .indicator import KronosSignal

__all__ = ["STRATEGIES", "FractionalCommission", "KronosStrategy", "configure_broker", "load_object"]

# Short names accepted in YAML ``strategy.name``; anything else is read as ``module:Class``.
# The repository's strategies/ folder is installed as the package ``kronos_strategies.builtin``.
STRATEGIES: dict[str, str] = {
    "threshold": "kronos_strategies.builtin.threshold:ThresholdStrategy",
    "vol_target": "kronos_strategies.builtin.vol_target:VolTargetStrategy",
    "topk": "kronos_strategies.builtin.topk:TopKStrategy",  # universe: (kronos_strategies.universe)
    "long_short": "kronos_strategies.builtin.long_short:LongShortStrategy",  # universe:
}
_OLD_BUILTIN_PREFIX = "strategies."  # spelling before 0.2; still resolved, with a DeprecationWarning


def load_object(spec: str, *, kind: str = "strategy") -> Any:
    """Import ``module:Class`` (or a short name from ``STRATEGIES``); a ConfigError says what failed."""
    target = STRATEGIES.get(spec, spec) if kind == "strategy" else spec
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        known = f"one of {sorted(STRATEGIES)} or " if kind == "strategy" else ""
        raise ConfigError(f"{kind} {spec!r} is not {known}'package.module:ClassName'")
    module_name = _builtin_module(module_name)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"{kind} {spec!r}: cannot import module {module_name!r} ({exc})") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"{kind} {spec!r}: module {module_name!r} has no {attr!r}") from None


def _builtin_module(module_name: str) -> str:
    """Map the pre-0.2 spelling ``strategies.X`` to ``kronos_strategies.builtin.X`` (with a warning) unless the
    user has a ``strategies`` package of their own on the path."""
    if not module_name.startswith(_OLD_BUILTIN_PREFIX) or importlib.util.find_spec("strategies") is not None:
        return module_name
    new = "kronos_strategies.builtin." + module_name.removeprefix(_OLD_BUILTIN_PREFIX)
    warnings.warn(
        f"{module_name!r} is now {new!r}; the old name goes in 0.3", DeprecationWarning, stacklevel=3
    )
    return new


class FractionalCommission(bt.CommInfoBase):
    """Percentage commission on traded value, allowing fractional sizes (crypto, index units)."""

    params = (("commission", 0.0), ("stocklike", True), ("commtype", bt.CommInfoBase.COMM_PERC),
              ("percabs", True))  # fmt: skip

    def getsize(self, price: float, cash: float) -> float:
        """Units that ``cash`` buys at ``price``, not rounded down to whole shares."""
        return self.p.leverage * (cash / price)


def configure_broker(cerebro: bt.Cerebro, *, cash: float, commission: float, slippage: float) -> None:
    """Starting cash, commission (fraction of value) and slippage (fraction of price, open fills included)."""
    cerebro.broker.setcash(cash)
    cerebro.broker.addcommissioninfo(FractionalCommission(commission=commission))
    if slippage > 0:
        cerebro.broker.set_slippage_perc(slippage, slip_open=True, slip_limit=True, slip_match=True)


class KronosStrategy(bt.Strategy):
    """Trade one data feed on a Kronos signal: enter, exit and size through small overridable hooks.

    Params:
      - ``indicator`` (KronosSignal): the indicator class built on the data by :meth:`make_signal`
      - ``indicator_params`` (None): dict of params for it (predictor, lookback, pred_len, ...)
      - ``stake`` (0.95): fraction of portfolio value held at full size (< 1 leaves room for gaps)
      - ``allow_short`` (False): let :meth:`should_enter` open short positions
      - ``rebalance_band`` (0.05): minimum change of the target exposure that sends an order
      - ``trade_start`` (None): datetime of the first bar that may trade (earlier bars are warm-up)

    Hooks (all take ``**kwargs`` so new arguments never break a subclass):
      - ``make_signal(data)``: the indicator to trade on
      - ``should_enter(signal)``: +1 go long, -1 go short, 0 no entry (default: the sign of the signal)
      - ``should_exit(signal, side)``: close the current side (default: the signal turned against it)
      - ``size(signal)``: fraction of portfolio value for an open position (default: ``stake``)

    Orders are market orders sent at the close of bar t; backtrader fills them at the open of t + 1.
    ``fills`` and ``closed_trades`` record what happened for the reports.
    """

    params = (
        ("indicator", KronosSignal),
        ("indicator_params", None),
        ("stake", 0.95),
        ("allow_short", False),
        ("rebalance_band", 0.05),
        ("trade_start", None),
    )

    # ------------------------------------------------------------------ hooks

    def make_signal(self, data: bt.AbstractDataBase, **kwargs: Any) -> KronosSignal:
        """Build the indicator on ``data``; override to combine several or pass computed params."""
        return self.p.indicator(data, **(self.p.indicator_params or {}))

    def should_enter(self, signal: float, **kwargs: Any) -> int:
        """+1 to go (or stay) long, -1 to go short, 0 for no entry."""
        return 1 if signal > 0 else (-1 if signal < 0 else 0)

    def should_exit(self, signal: float, side: int, **kwargs: Any) -> bool:
        """Whether to close the open ``side`` (+1 long, -1 short)."""
        return side * signal <= 0

    def size(self, signal: float, **kwargs: Any) -> float:
        """Target exposure as a fraction of portfolio value (>= 0) while a position is open."""
        return float(self.p.stake)

    # ------------------------------------------------------------------ engine side

    def __init__(self) -> None:
        self.kronos = self.make_signal(self.data)
        self.side = 0
        self.exposure_target = 0.0
        self.fills: list[dict[str, Any]] = []
        self.closed_trades: list[float] = []

    def _may_trade(self) -> bool:
        start = self.p.trade_start
        return start is None or self.data.datetime.datetime(0) >= start

    def next(self) -> None:
        signal = float(self.kronos.lines.signal[0])
        if not math.isfinite(signal) or not self._may_trade():
            return
        side = self.side
        enter = int(self.should_enter(signal))
        if enter < 0 and not self.p.allow_short:
            enter = 0
        if enter and enter != side:
            side = enter
        elif side and self.should_exit(signal, side):
            side = 0
        target = side * max(0.0, float(self.size(signal))) if side else 0.0
        self.side = side
        self.rebalance(target)

    def rebalance(self, target: float) -> None:
        """Send an order to ``target`` exposure when it moved by at least ``rebalance_band`` (or to/from 0)."""
        current = self.exposure_target
        crossing = (target == 0) != (current == 0) or target * current < 0
        if crossing or abs(target - current) >= self.p.rebalance_band:
            self.order_target_percent(target=target)
            self.exposure_target = target

    def session_state(self) -> dict[str, Any]:
        """What a restarted paper/live session must restore to decide as if it never stopped."""
        return {"side": self.side, "exposure_target": self.exposure_target}

    def restore_session_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`session_state` (called once, before the first bar a resumed session processes)."""
        self.side = int(state.get("side", 0))
        self.exposure_target = float(state.get("exposure_target", 0.0))

    def notify_order(self, order: bt.Order) -> None:
        if order.status == order.Completed:
            self.fills.append(
                {
                    "created": order.created.dt,
                    "executed": order.executed.dt,
                    "size": float(order.executed.size),
                    "price": float(order.executed.price),
                    "value": float(abs(order.executed.size) * order.executed.price),
                    "commission": float(order.executed.comm),
                }
            )
        elif order.status in (order.Margin, order.Rejected):
            # The order did not go through: the position is unchanged, so retry on the next signal.
            self.exposure_target = self._actual_exposure()

    def _actual_exposure(self) -> float:
        value = self.broker.getvalue()
        return float(self.position.size * self.data.close[0] / value) if value else 0.0

    def notify_trade(self, trade: bt.Trade) -> None:
        if trade.isclosed:
            self.closed_trades.append(float(trade.pnlcomm))


def check_strategy_params(cls: type, params: dict[str, Any], where: str = "strategy.params") -> None:
    """Raise a ConfigError naming an unknown strategy param and the closest valid one."""
    from .config import check_names

    check_names(params, cls.params._getkeys(), where)
