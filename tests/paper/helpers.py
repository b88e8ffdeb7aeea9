"""Strategies, candles and emulator builders shared by the paper-trading tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from statistics import NormalDist

import backtrader as bt
import numpy as np
import pandas as pd

from kronos_strategies.emulator import (
    ExchangeEmulator,
    FaultPlan,
    MarketRules,
    MatchingEngine,
    ReplayClock,
    load_candles,
)
from kronos_strategies.exchange.client import ExchangeClient, make_exchange
from kronos_strategies.paper.config import PaperConfig

API_KEY = "test-key-7f3a"
SECRET = "s3cr3t-do-not-print-9c1e55"
TF_MS = 60_000


def write_candles(path: Path, n: int = 400, seed: int = 0) -> Path:
    """A seeded random-walk 1m OHLCV CSV."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.002, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.002, n))
    stamps = pd.date_range("2024-01-01", periods=n, freq="1min")
    frame = pd.DataFrame({"timestamp": stamps, "open": open_, "high": high, "low": low, "close": close,
                          "volume": rng.uniform(5, 20, n)})  # fmt: skip
    frame.to_csv(path, index=False)
    return path


def start_emulator(csv: Path, *, start_index: int, bar_seconds: float, faults: FaultPlan | None = None,
                   liquidity: float | None = None, cash: float = 10_000.0) -> ExchangeEmulator:  # fmt: skip
    """An emulator replaying ``csv`` from candle ``start_index``, one candle per ``bar_seconds`` wall seconds."""
    candles = load_candles(csv)
    clock = ReplayClock(int(candles.index[start_index]), TF_MS / 1000.0 / bar_seconds)
    engine = MatchingEngine(
        candles, TF_MS, clock, MarketRules(), {"USDT": cash, "BTC": 0.0}, liquidity=liquidity
    )
    return ExchangeEmulator(engine, api_key=API_KEY, secret=SECRET, faults=faults, interval="1m").start()


class SmaCross(bt.Strategy):
    """Fast/slow SMA crossover, all-in/all-out with a fixed stake."""

    params = (("fast", 3), ("slow", 8), ("stake", 1.0))

    def __init__(self) -> None:
        self.cross = bt.indicators.CrossOver(
            bt.indicators.SMA(period=self.p.fast), bt.indicators.SMA(period=self.p.slow)
        )
        self.events: list[tuple] = []

    def notify_order(self, order: bt.Order) -> None:
        if order.status in (order.Completed, order.Partial, order.Rejected, order.Canceled, order.Margin):
            self.events.append((order.getstatusname(), order.isbuy(), order.executed.size, order.executed.price,
                                order.info.get("reason")))  # fmt: skip

    def next(self) -> None:
        if self.cross[0] > 0 and self.position.size <= 0:
            self.buy(size=self.p.stake)
        elif self.cross[0] < 0 and self.position.size > 0:
            self.sell(size=self.position.size)


class Churn(bt.Strategy):
    """Trades nearly every bar: market round trips and limit orders that are cancelled when stale."""

    params = (("stake", 0.5), ("limit_every", 3), ("max_age", 2))

    def __init__(self) -> None:
        self.pending: dict[int, tuple[bt.Order, int]] = {}
        self.rejections: list[str] = []

    def notify_order(self, order: bt.Order) -> None:
        if not order.alive():
            self.pending.pop(order.ref, None)
        if order.status == order.Rejected:
            self.rejections.append(order.info.get("reason") or "")

    def next(self) -> None:
        n = len(self)
        for order, born in list(self.pending.values()):
            if n - born >= self.p.max_age:
                self.cancel(order)
        if self.pending:
            return
        if n % self.p.limit_every == 0:
            order = self.buy(size=self.p.stake, exectype=bt.Order.Limit, price=self.data.close[0] * 0.999)
        elif self.position.size > 0:
            order = self.sell(size=self.position.size)
        else:
            order = self.buy(size=self.p.stake)
        self.pending[order.ref] = (order, n)


ENV = {"KRONOS_BT_API_KEY": API_KEY, "KRONOS_BT_API_SECRET": SECRET}


def fast_config(url: str, journal: Path, *, mode: str = "sandbox", **overrides: object) -> PaperConfig:
    """A PaperConfig tuned for a loopback emulator: short polls, timeouts and backoffs."""
    values: dict[str, object] = dict(symbol="BTC/USDT", timeframe="1m", mode=mode, url=url, journal=str(journal),
                                     warmup=20, poll=0.01, timeout_ms=300, backoff=0.01, max_backoff=0.05,
                                     commission=0.001, slippage=0.0, stale_after_bars=None,
                                     recv_window_ms=500, clock_skew_ms=50)  # fmt: skip
    values.update(overrides)
    return PaperConfig(**values)  # type: ignore[arg-type]


def exchange_client(
    url: str, *, secret: str = SECRET, retries: int = 4, sleep=None, recv_window_ms: int = 500
):
    """A loaded ExchangeClient on the emulator with fast retries and a short recvWindow."""
    kwargs = {} if sleep is None else {"sleep": sleep}
    exchange = make_exchange(
        "binance", url=url, api_key=API_KEY, secret=secret, timeout_ms=300, recv_window_ms=recv_window_ms
    )
    client = ExchangeClient(
        exchange, "BTC/USDT", retries=retries, backoff=0.01, max_backoff=0.05, clock_skew_ms=50, **kwargs
    )
    client.load("1m")
    return client


class PriceSignal(bt.Indicator):
    """Deterministic stand-in for ``KronosSignal`` (same lines and params the shipped strategies read).

    ``signal`` is the clipped ``period``-bar return times ``scale``; ``lower``/``upper`` are a normal band
    of width ``window``-bar return std x sqrt(horizon), so a strategy's decisions depend only on prices
    and the broker's answers, never on model sampling.
    """

    lines = ("expected_return", "prob_up", "lower", "upper", "signal")
    params = (("period", 3), ("window", 10), ("horizon", 5), ("quantiles", (0.1, 0.9)), ("scale", 40.0))

    def __init__(self) -> None:
        self.addminperiod(max(self.p.window, self.p.period) + 1)

    def next(self) -> None:
        closes = np.asarray(self.data.close.get(size=self.p.window + 1))
        close = closes[-1]
        expected = close / self.data.close[-self.p.period] - 1.0
        spread = float(np.diff(np.log(closes)).std()) * np.sqrt(self.p.horizon)
        z = NormalDist().inv_cdf(self.p.quantiles[1])
        self.lines.expected_return[0] = expected
        self.lines.signal[0] = max(-1.0, min(1.0, expected * self.p.scale))
        self.lines.prob_up[0] = (self.lines.signal[0] + 1.0) / 2.0
        self.lines.lower[0] = close * (1.0 - z * spread)
        self.lines.upper[0] = close * (1.0 + z * spread)


def recording(strategy: type[bt.Strategy]) -> type[bt.Strategy]:
    """``strategy`` with every order it sends listed in ``sent`` as (bar open ms, side, size)."""

    def _note(self: bt.Strategy, order: bt.Order | None) -> bt.Order | None:
        if order is not None:
            stamp = bt.num2date(self.data.datetime[0]).replace(tzinfo=dt.timezone.utc).timestamp()
            self.__dict__.setdefault("sent", []).append(
                (int(round(stamp)) * 1000, "buy" if order.isbuy() else "sell", abs(order.created.size))
            )
        return order

    def buy(self: bt.Strategy, *args: object, **kwargs: object) -> bt.Order | None:
        return _note(self, strategy.buy(self, *args, **kwargs))

    def sell(self: bt.Strategy, *args: object, **kwargs: object) -> bt.Order | None:
        return _note(self, strategy.sell(self, *args, **kwargs))

    return type(strategy.__name__, (strategy,), {"buy": buy, "sell": sell, "__module__": strategy.__module__})


SYMBOLS = {"BTC": "BTC/USDT", "ETH": "ETH/USDT", "SOL": "SOL/USDT"}


def start_universe_emulator(csvs: dict[str, Path], *, start_index: int, bar_seconds: float,
                            cash: float = 10_000.0) -> ExchangeEmulator:  # fmt: skip
    """One emulator serving every ``symbol -> csv`` market (holes allowed) from one account and one clock."""
    frames = {symbol: load_candles(path) for symbol, path in csvs.items()}
    first = next(iter(frames.values()))
    clock = ReplayClock(int(first.index[start_index]), TF_MS / 1000.0 / bar_seconds)
    engines = []
    for symbol, candles in frames.items():
        base, quote = symbol.split("/")
        engines.append(
            MatchingEngine(candles, TF_MS, clock, MarketRules(base=base, quote=quote), {quote: cash})
        )
    return ExchangeEmulator(engines, api_key=API_KEY, secret=SECRET, interval="1m").start()


class MomentumForecaster:
    """A deterministic stand-in for the model (a ``Forecaster``): every sample path continues the window's
    last ``period``-bar return, so a ranking depends only on prices, never on model sampling."""

    fingerprint = "momentum-stub-v1"
    max_context = 512

    def __init__(self, period: int = 3) -> None:
        self.period = period
        self.calls: list[int] = []  # windows per forecast_batch call

    def forecast_batch(self, df_list, pred_len, **kwargs):  # noqa: ANN001, ANN003 - the Forecaster signature
        from kronos_model.forecast import Forecast

        self.calls.append(len(df_list))
        out = []
        for df in df_list:
            close = df["close"].to_numpy(float)
            drift = close[-1] / close[-1 - self.period] - 1.0
            path = close[-1] * (1.0 + drift * np.arange(1, pred_len + 1) / pred_len)
            samples = np.repeat(path[None, :, None], 6, axis=2).astype(np.float32)
            samples = np.repeat(samples, int(kwargs.get("sample_count", 4)), axis=0)
            stamps = pd.DatetimeIndex(df.index[-1] + pd.Timedelta(minutes=1) * np.arange(1, pred_len + 1))
            out.append(Forecast(samples, stamps, float(close[-1]), history_end=df.index[-1]))
        return out
