"""The ``paper:`` section of a backtest YAML (exchange, symbol, timeframe, mode, journal, emulator URL).

Registered with the backtest config loader, so ``kronos-bt paper cfg.yaml`` reads the very file a
backtest reads: the strategy, indicator and model sections are shared, cash and fees come from
``broker:``. :class:`PaperConfig` is the section plus those broker settings.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from kronos_strategies.config import BacktestConfig, register_section
from kronos_strategies.errors import ConfigError

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
        """Cross-field checks, each failing with the key and the fix."""
        if not isinstance(self.symbol, str) or "/" not in self.symbol:
            raise ConfigError(f"paper.symbol is required and must look like 'BTC/USDT', got {self.symbol!r}")
        if self.mode not in MODES:
            raise ConfigError(f"paper.mode must be one of {MODES}, got {self.mode!r}")
        if self.url is not None and not str(self.url).startswith(("http://", "https://")):
            raise ConfigError(f"paper.url must start with http:// or https://, got {self.url!r}")
        if not isinstance(self.recv_window_ms, int) or not 1 <= self.recv_window_ms <= 60_000:
            raise ConfigError(
                f"paper.recv_window_ms must be an integer in [1, 60000] (Binance's limit), got {self.recv_window_ms!r}"
            )
        if self.stale_after_bars is not None and (
            not isinstance(self.stale_after_bars, int | float) or self.stale_after_bars <= 0
        ):
            raise ConfigError(
                f"paper.stale_after_bars must be a positive number of bars (or null), got {self.stale_after_bars!r}"
            )
        for name in ("warmup", "timeout_ms", "retries", "clock_skew_ms"):
            if name == "warmup" and self.warmup is None:
                continue
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ConfigError(f"paper.{name} must be a non-negative integer, got {getattr(self, name)!r}")
        for name in ("poll", "backoff", "max_backoff"):
            if not isinstance(getattr(self, name), int | float) or getattr(self, name) <= 0:
                raise ConfigError(f"paper.{name} must be a positive number, got {getattr(self, name)!r}")
        if self.max_bars is not None and (not isinstance(self.max_bars, int) or self.max_bars < 1):
            raise ConfigError(f"paper.max_bars must be a positive integer, got {self.max_bars!r}")
        self.until_ms()

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


@dataclass
class PaperConfig(PaperSection):
    """The ``paper:`` section plus the paper broker's cash and costs (``broker:`` in the YAML)."""

    cash: float = 10_000.0  # paper mode starting cash (quote currency)
    commission: float = 0.001  # paper mode fee rate
    slippage: float = 0.0  # paper mode slippage, a fraction of the price

    def __post_init__(self) -> None:
        """Section checks plus the broker numbers."""
        super().__post_init__()
        if not isinstance(self.cash, int | float) or self.cash <= 0:
            raise ConfigError(f"broker.cash must be a positive number, got {self.cash!r}")
        for name in ("commission", "slippage"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value < 0.1:
                raise ConfigError(f"broker.{name} must be a fraction in [0, 0.1), got {value!r}")


def paper_config(cfg: BacktestConfig, **overrides: Any) -> PaperConfig:
    """The PaperConfig of a loaded backtest config (its ``paper:`` section and ``broker:`` costs)."""
    section = cfg.sections.get("paper")
    if section is None:
        where = cfg.source or "the config"
        raise ConfigError(
            f"{where} has no 'paper:' section (symbol, exchange, timeframe, mode, journal, ...)"
        )
    values = dataclasses.asdict(section) | {"cash": cfg.broker.cash, "commission": cfg.broker.commission,
                                            "slippage": cfg.broker.slippage}  # fmt: skip
    values |= {k: v for k, v in overrides.items() if v is not None}
    return PaperConfig(**values)


register_section("paper", PaperSection)
