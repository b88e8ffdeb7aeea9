"""Bar lengths and bar times between ccxt (timeframe strings, epoch milliseconds) and backtrader (float days)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import backtrader as bt
import pandas as pd

from kronos_strategies.errors import ConfigError

__all__ = ["bar_ms", "bt_timeframe", "epoch_ms", "ms_to_datetime", "timeframe_ms"]


def timeframe_ms(exchange: object, timeframe: str) -> int:
    """Milliseconds in a ccxt timeframe string such as ``1m`` or ``4h``."""
    try:
        step = int(exchange.parse_timeframe(timeframe) * 1000)  # type: ignore[attr-defined]
    except Exception as exc:  # ccxt raises bare errors on malformed strings
        raise ConfigError(
            f"timeframe {timeframe!r} is not a ccxt timeframe such as '1m', '1h' or '1d'"
        ) from exc
    if step <= 0:
        raise ConfigError(f"timeframe {timeframe!r} is not a ccxt timeframe such as '1m', '1h' or '1d'")
    return step


def bt_timeframe(step_ms: int) -> tuple[int, int]:
    """backtrader (timeframe, compression) of a bar length in milliseconds."""
    if step_ms % 86_400_000 == 0:
        return bt.TimeFrame.Days, step_ms // 86_400_000
    if step_ms % 60_000 == 0:
        return bt.TimeFrame.Minutes, step_ms // 60_000
    return bt.TimeFrame.Seconds, max(step_ms // 1000, 1)


def ms_to_datetime(ms: int) -> dt.datetime:
    """Naive UTC datetime of an epoch-ms stamp (backtrader's convention)."""
    return dt.datetime.fromtimestamp(ms / 1000.0, tz=dt.timezone.utc).replace(tzinfo=None)


def epoch_ms(stamp: Any) -> int:
    """Epoch milliseconds of a timestamp or ISO date/time string (naive values are UTC, as the feeds stamp bars)."""
    ts = pd.Timestamp(stamp)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // 1_000_000)


def bar_ms(data: bt.feed.DataBase, ago: int = 0) -> int:
    """Epoch-ms open time of a backtrader bar (rounded to the second, backtrader stores float days)."""
    stamp = bt.num2date(data.datetime[ago]).replace(tzinfo=dt.timezone.utc).timestamp()
    return int(round(stamp)) * 1000
