"""The exchange emulator's state: candles on an accelerated clock, balances, orders, fills and their matching."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kronos_model.data import check_time_order, frame_timestamps, prepare_ohlcv
from kronos_model.errors import DataError

_EPS = 1e-12


class EmulatorReject(Exception):
    """A Binance-style error answer (HTTP status, negative code, message) produced by the emulator."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


@dataclass(frozen=True)
class MarketRules:
    """Symbol and filters of the one market the emulator lists (Binance spot filter names)."""

    base: str = "BTC"
    quote: str = "USDT"
    tick_size: float = 0.01
    step_size: float = 0.00001
    min_qty: float = 0.00001
    min_notional: float = 5.0
    fee_rate: float = 0.001

    @property
    def symbol_id(self) -> str:
        """Binance market id, e.g. ``BTCUSDT``."""
        return self.base + self.quote


class ReplayClock:
    """Market time that starts at ``start_ms`` and runs ``speed`` times faster than the wall clock."""

    def __init__(self, start_ms: int, speed: float, now: Callable[[], float] = time.monotonic) -> None:
        self._start_ms, self._speed, self._now, self._wall0 = int(start_ms), float(speed), now, now()

    def now_ms(self) -> int:
        """Current market time in epoch milliseconds."""
        return self._start_ms + int((self._now() - self._wall0) * self._speed * 1000.0)

    def set_speed(self, speed: float) -> None:
        """Continue from the current market time at a new speed."""
        self._start_ms, self._wall0, self._speed = self.now_ms(), self._now(), float(speed)


@dataclass
class EmuOrder:
    """One order as the emulated exchange stores it."""

    order_id: int
    client_id: str
    side: str  # BUY / SELL
    type: str  # MARKET / LIMIT
    qty: float
    price: float  # limit price, 0 for market
    time: int
    status: str = "NEW"
    executed: float = 0.0
    quote: float = 0.0
    update_time: int = 0
    locked: float = 0.0  # funds still reserved for the unfilled part

    @property
    def is_open(self) -> bool:
        """True while the order can still fill or be cancelled."""
        return self.status in ("NEW", "PARTIALLY_FILLED")


@dataclass
class EmuTrade:
    """One fill of an order."""

    trade_id: int
    order_id: int
    price: float
    qty: float
    commission: float
    commission_asset: str
    time: int
    is_buyer: bool
    is_maker: bool


def load_candles(path: str | Path) -> pd.DataFrame:
    """Read an OHLCV CSV (a timestamp/date column, UTC when naive) into a frame indexed by epoch-ms open time."""
    raw = pd.read_csv(path)
    for col in ("timestamps", "timestamp", "date", "datetime"):
        if col in raw.columns:
            values = raw[col]
            unit = "ms" if pd.api.types.is_numeric_dtype(values) else None
            try:
                raw[col] = pd.to_datetime(values, utc=True, unit=unit).dt.tz_localize(None)
            except (TypeError, ValueError) as exc:
                raise DataError(f"{path}: column {col!r} cannot be read as UTC datetimes: {exc}") from exc
            break
    stamps = frame_timestamps(raw)
    check_time_order(stamps, name=f"{path} timestamps")
    frame = prepare_ohlcv(raw, name=str(path)).reset_index(drop=True)
    frame.index = pd.Index(stamps.as_unit("ms").asi8.astype(np.int64), name="ts")
    if len(frame) < 2:
        raise DataError(f"{path} has {len(frame)} candle(s); the emulator needs at least 2")
    return frame


@dataclass
class MatchingEngine:
    """Balances, orders and fills against replayed candles; market orders fill at the forming candle's open."""

    candles: pd.DataFrame
    timeframe_ms: int
    clock: ReplayClock
    rules: MarketRules = field(default_factory=MarketRules)
    balances: dict[str, float] = field(default_factory=lambda: {"USDT": 10_000.0, "BTC": 0.0})
    liquidity: float | None = None  # max share of a candle's volume one resting order may fill per candle
    slippage_bps: float = 0.0

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.ts = self.candles.index.to_numpy(dtype=np.int64)
        self.ohlcv = self.candles[["open", "high", "low", "close", "volume"]].to_numpy(dtype=np.float64)
        self.free = {k: float(v) for k, v in self.balances.items()}
        self.free.setdefault(self.rules.base, 0.0)
        self.free.setdefault(self.rules.quote, 0.0)
        self.locked = dict.fromkeys(self.free, 0.0)
        self.orders: list[EmuOrder] = []
        self.trades: list[EmuTrade] = []
        self._matched = self._closed_count(self.clock.now_ms())

    # --- clock and candles ---------------------------------------------------------------------------
    def _closed_count(self, now: int) -> int:
        """Number of candles whose close time has passed at ``now``."""
        return int(np.searchsorted(self.ts + self.timeframe_ms, now, side="right"))

    def now(self) -> int:
        """Advance matching to the clock and return market time (ms)."""
        with self.lock:
            now = self.clock.now_ms()
            closed = self._closed_count(now)
            while self._matched < closed:
                self._match_candle(self._matched)
                self._matched += 1
            return now

    def klines(self, start: int | None, end: int | None, limit: int) -> list[list]:
        """Binance klines rows visible at the current time; the forming candle shows only its open."""
        now = self.now()
        visible = int(np.searchsorted(self.ts, now, side="right"))
        lo = 0 if start is None else int(np.searchsorted(self.ts, start, side="left"))
        hi = visible if end is None else min(visible, int(np.searchsorted(self.ts, end, side="right")))
        if start is None:
            lo = max(lo, hi - limit)
        rows = []
        for i in range(lo, min(hi, lo + limit)):
            o, h, lw, c, v = self.ohlcv[i]
            if self.ts[i] + self.timeframe_ms > now:  # forming: nothing after the open is known yet
                h = lw = c = o
                v = 0.0
            close_time = int(self.ts[i] + self.timeframe_ms - 1)
            rows.append([int(self.ts[i]), _s(o), _s(h), _s(lw), _s(c), _s(v), close_time, _s(v * c), 1,
                         "0", "0", "0"])  # fmt: skip
        return rows

    def price(self) -> float:
        """The price now: open of the forming candle, or the last close once the replay has ended."""
        now = self.now()
        i = int(np.searchsorted(self.ts, now, side="right")) - 1
        if i < 0:
            return float(self.ohlcv[0, 0])
        if self.ts[i] + self.timeframe_ms > now:
            return float(self.ohlcv[i, 0])
        return float(self.ohlcv[i, 3])

    def last_closed(self) -> np.ndarray | None:
        """OHLCV of the last closed candle (for the 24h ticker), or None before the first close."""
        n = self._closed_count(self.now())
        return self.ohlcv[n - 1] if n else None

    # --- orders --------------------------------------------------------------------------------------
    def place(self, side: str, otype: str, qty: float, price: float | None, client_id: str) -> EmuOrder:
        """Validate, lock funds and match a new order; raises EmulatorReject with Binance's codes."""
        with self.lock:
            now = self.now()
            if any(o.is_open and o.client_id == client_id for o in self.orders):
                raise EmulatorReject(400, -2010, "Duplicate order sent.")
            market_px = self.price()
            self._check_filters(otype, qty, price, market_px)
            order = EmuOrder(
                len(self.orders) + 1, client_id, side, otype, qty, price or 0.0, now, update_time=now
            )
            self._lock_funds(order, market_px)
            self.orders.append(order)
            marketable = otype == "MARKET" or (price >= market_px if side == "BUY" else price <= market_px)
            if marketable:
                fill_px = market_px * (1 + self.slippage_bps / 1e4 * (1 if side == "BUY" else -1))
                self._fill(order, qty, fill_px, now, maker=False)
            return order

    def _check_filters(self, otype: str, qty: float, price: float | None, market_px: float) -> None:
        """LOT_SIZE, PRICE_FILTER and NOTIONAL checks as Binance spot applies them."""
        r = self.rules
        if not (qty > 0 and math.isfinite(qty)):
            raise EmulatorReject(400, -1013, "Invalid quantity.")
        if qty < r.min_qty - _EPS or abs(round(qty / r.step_size) * r.step_size - qty) > r.step_size * 1e-6:
            raise EmulatorReject(400, -1013, "Filter failure: LOT_SIZE")
        if otype == "LIMIT":
            if price is None or not price > 0:
                raise EmulatorReject(400, -1013, "Invalid price.")
            if abs(round(price / r.tick_size) * r.tick_size - price) > r.tick_size * 1e-6:
                raise EmulatorReject(400, -1013, "Filter failure: PRICE_FILTER")
        if qty * (price if otype == "LIMIT" else market_px) < r.min_notional:
            raise EmulatorReject(400, -1013, "Filter failure: NOTIONAL")

    def _lock_funds(self, order: EmuOrder, market_px: float) -> None:
        """Reserve quote (buys, fee included) or base (sells); -2010 when the free balance is short."""
        r = self.rules
        if order.side == "BUY":
            need = order.qty * (order.price or market_px) * (1 + r.fee_rate)
            asset = r.quote
        else:
            need, asset = order.qty, r.base
        if self.free[asset] + _EPS < need:
            raise EmulatorReject(400, -2010, "Account has insufficient balance for requested action.")
        self.free[asset] -= need
        self.locked[asset] += need
        order.locked = need

    def _fill(self, order: EmuOrder, qty: float, px: float, now: int, *, maker: bool) -> None:
        """Book one fill: move funds, charge the fee in the quote asset, record the trade."""
        r = self.rules
        cost = qty * px
        fee = cost * r.fee_rate
        share = qty / (order.qty - order.executed)
        release = order.locked * share
        order.locked -= release
        if order.side == "BUY":
            self.locked[r.quote] -= release
            self.free[r.quote] += release - cost - fee
            self.free[r.base] += qty
        else:
            self.locked[r.base] -= release
            self.free[r.quote] += cost - fee
        order.executed += qty
        order.quote += cost
        order.update_time = now
        order.status = "FILLED" if order.executed >= order.qty - _EPS else "PARTIALLY_FILLED"
        trade = EmuTrade(
            len(self.trades) + 1, order.order_id, px, qty, fee, r.quote, now, order.side == "BUY", maker
        )
        self.trades.append(trade)

    def _match_candle(self, i: int) -> None:
        """Fill resting limit orders placed before candle ``i`` opened whose price the candle crossed."""
        _, high, low, _, volume = self.ohlcv[i]
        close_time = int(self.ts[i] + self.timeframe_ms - 1)
        for order in self.orders:
            if not order.is_open or order.type != "LIMIT" or order.time >= self.ts[i]:
                continue
            crossed = low <= order.price if order.side == "BUY" else high >= order.price
            if not crossed:
                continue
            qty = order.qty - order.executed
            if self.liquidity is not None:
                step = self.rules.step_size
                cap = math.floor(self.liquidity * volume / step) * step
                qty = round(min(qty, max(cap, step)), 10)
            self._fill(order, qty, order.price, close_time, maker=True)

    def find(self, order_id: int | None = None, client_id: str | None = None) -> EmuOrder:
        """The order with this id, or the latest one with this client id; -2013 when there is none."""
        with self.lock:
            self.now()
            for order in reversed(self.orders):
                if (order_id is not None and order.order_id == order_id) or (
                    order_id is None and order.client_id == client_id
                ):
                    return order
        raise EmulatorReject(400, -2013, "Order does not exist.")

    def cancel(self, order_id: int | None = None, client_id: str | None = None) -> EmuOrder:
        """Cancel an open order and release its reserved funds; -2011 when it is unknown or closed."""
        with self.lock:
            try:
                order = self.find(order_id, client_id)
            except EmulatorReject:
                raise EmulatorReject(400, -2011, "Unknown order sent.") from None
            if not order.is_open:
                raise EmulatorReject(400, -2011, "Unknown order sent.")
            asset = self.rules.quote if order.side == "BUY" else self.rules.base
            self.locked[asset] -= order.locked
            self.free[asset] += order.locked
            order.locked = 0.0
            order.status = "CANCELED"
            order.update_time = self.now()
            return order

    def open_orders(self) -> list[EmuOrder]:
        """Orders that are still open."""
        with self.lock:
            self.now()
            return [o for o in self.orders if o.is_open]

    def my_trades(self, *, order_id: int | None, from_id: int | None, start: int | None, end: int | None,
                  limit: int) -> list[EmuTrade]:  # fmt: skip
        """Fills filtered like GET /api/v3/myTrades, ascending by id."""
        with self.lock:
            self.now()
            out = [
                t for t in self.trades
                if (order_id is None or t.order_id == order_id)
                and (from_id is None or t.trade_id >= from_id)
                and (start is None or t.time >= start)
                and (end is None or t.time <= end)
            ]  # fmt: skip
            return out[:limit]

    def balance_rows(self) -> list[dict[str, str]]:
        """Binance ``balances`` entries (free and locked per asset)."""
        with self.lock:
            self.now()
            return [{"asset": a, "free": _s(max(self.free[a], 0.0)), "locked": _s(max(self.locked[a], 0.0))}
                    for a in sorted(self.free)]  # fmt: skip


def share_account(engines: Sequence[MatchingEngine]) -> None:
    """One account for several markets, as on an exchange: every engine books into the first engine's balances
    under its lock (the others' starting balances are ignored); each market keeps its own orders, fills and ids
    (numbered per symbol, like Binance's)."""
    first = engines[0]
    for engine in engines[1:]:
        for asset in (engine.rules.base, engine.rules.quote):
            first.free.setdefault(asset, 0.0)
            first.locked.setdefault(asset, 0.0)
        engine.free, engine.locked, engine.lock = first.free, first.locked, first.lock


def _s(x: float) -> str:
    """Format a number the way Binance sends it (a decimal string)."""
    return format(float(x), ".10f").rstrip("0").rstrip(".") or "0"
