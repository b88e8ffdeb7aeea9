"""The ``paper:`` block: where and how a strategy trades live (exchange, symbol, timeframe, mode, journal, ...).

``kronos-bt paper cfg.yaml`` reads the very file a backtest reads: strategy, indicator and model are shared,
and cash and costs come from ``broker:`` with the same meaning as in the backtest.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["MODES", "PaperSection", "check_paper", "check_paper_symbol"]

MODES = ("paper", "sandbox", "live")


@dataclass
class PaperSection:
    """Where and how a strategy trades; credentials are never stored here, only their env var names."""

    symbol: str = ""
    exchange: str = "binance"
    timeframe: str = "1h"
    mode: str = "paper"  # paper: local fills · sandbox: exchange testnet · live: real money
    url: str | None = None  # API base URL override, e.g. the emulator's http://127.0.0.1:PORT
    journal: str = "paper_journal.sqlite"
    warmup: int | None = None  # history bars before the first live bar; None: indicator.lookback (CLI) or 500
    poll: float = 5.0  # seconds between polls for new candles and order states
    timeout_ms: int = 10_000
    recv_window_ms: int = 5_000  # Binance recvWindow: a timed-out order may still execute this long after
    clock_skew_ms: int = 1_000  # allowed offset of our clock from the exchange's, added to recv_window_ms
    stale_after_bars: float | None = 2.0  # a bar older than this when it arrives trades nothing; None: off
    retries: int = 6
    backoff: float = 0.5  # seconds; doubles per retry up to max_backoff
    max_backoff: float = 30.0
    api_key_env: str = "KRONOS_BT_API_KEY"
    secret_env: str = "KRONOS_BT_API_SECRET"
    until: str | None = None  # stop after the bar opening at/after this UTC time
    max_bars: int | None = None  # stop after this many processed bars

    def __post_init__(self) -> None:
        """Checked as it is built (from the YAML or in code)."""
        check_paper(self)

    def until_ms(self) -> int | None:
        """``until`` as epoch milliseconds (UTC)."""
        if self.until is None:
            return None
        try:
            stamp = dt.datetime.fromisoformat(str(self.until).replace("Z", "+00:00"))
        except ValueError as exc:
            raise ConfigError(
                f"paper.until must be an ISO time such as 2024-01-01T00:00Z, got {self.until!r}"
            ) from exc
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.timezone.utc)
        return int(stamp.timestamp() * 1000)


def check_paper(s: PaperSection) -> None:
    """Rules of the ``paper:`` block, each failing with the key and the fix."""
    # an empty symbol is left to check_paper_symbol: a universe: block names the symbols instead
    if s.symbol != "" and (not isinstance(s.symbol, str) or "/" not in s.symbol):
        raise ConfigError(f"paper.symbol is required and must look like 'BTC/USDT', got {s.symbol!r}")
    if s.mode not in MODES:
        raise ConfigError(f"paper.mode must be one of {MODES}, got {s.mode!r}")
    if s.url is not None and not str(s.url).startswith(("http://", "https://")):
        raise ConfigError(f"paper.url must start with http:// or https://, got {s.url!r}")
    if not isinstance(s.recv_window_ms, int) or not 1 <= s.recv_window_ms <= 60_000:
        raise ConfigError(
            f"paper.recv_window_ms must be an integer in [1, 60000] (Binance's limit), got {s.recv_window_ms!r}"
        )
    if s.stale_after_bars is not None and (
        not isinstance(s.stale_after_bars, int | float) or s.stale_after_bars <= 0
    ):
        raise ConfigError(
            f"paper.stale_after_bars must be a positive number of bars (or null), got {s.stale_after_bars!r}"
        )
    for name in ("warmup", "timeout_ms", "retries", "clock_skew_ms"):
        if name == "warmup" and s.warmup is None:
            continue
        if not isinstance(getattr(s, name), int) or getattr(s, name) < 0:
            raise ConfigError(f"paper.{name} must be a non-negative integer, got {getattr(s, name)!r}")
    for name in ("poll", "backoff", "max_backoff"):
        if not isinstance(getattr(s, name), int | float) or getattr(s, name) <= 0:
            raise ConfigError(f"paper.{name} must be a positive number, got {getattr(s, name)!r}")
    if s.max_bars is not None and (not isinstance(s.max_bars, int) or s.max_bars < 1):
        raise ConfigError(f"paper.max_bars must be a positive integer, got {s.max_bars!r}")
    s.until_ms()


def check_paper_symbol(s: PaperSection, *, universe: bool) -> None:
    """A one-symbol session needs ``paper.symbol``; with a ``universe:`` block its assets name the symbols."""
    if not s.symbol and not universe:
        raise ConfigError(
            "paper.symbol is required and must look like 'BTC/USDT' (or list the symbols in a universe: block)"
        )
