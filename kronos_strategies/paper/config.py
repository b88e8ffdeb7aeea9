"""The ``paper:`` section of a YAML config: exchange, symbol, timeframe, mode, journal, fees, emulator URL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kronos_strategies.errors import ConfigError

MODES = ("paper", "sandbox", "live")


@dataclass
class PaperConfig:
    """Where and how a strategy trades; credentials are never stored here, only the names of their env vars."""

    symbol: str
    exchange: str = "binance"
    timeframe: str = "1h"
    mode: str = "paper"  # paper: local fills · sandbox: exchange testnet · live: real money
    url: str | None = None  # API base URL override, e.g. the emulator's http://127.0.0.1:PORT
    journal: str = "paper_journal.sqlite"
    warmup: int = 500  # bars of history before the first live bar (>= the strategy's lookback)
    cash: float = 10_000.0  # paper mode starting cash (quote currency)
    commission: float = 0.001  # paper mode fee rate
    slippage: float = 0.0  # paper mode slippage, a fraction of the price
    poll: float = 5.0  # seconds between polls for new candles and order states
    timeout_ms: int = 10_000
    retries: int = 6
    backoff: float = 0.5  # seconds; doubles per retry up to max_backoff
    max_backoff: float = 30.0
    api_key_env: str = "KRONOS_BT_API_KEY"
    secret_env: str = "KRONOS_BT_API_SECRET"
    until: str | None = None  # stop after the bar opening at/after this UTC time
    max_bars: int | None = None  # stop after this many processed bars
    strategy: str | None = None  # "package.module:Class" when the YAML has no strategy section
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Cross-field checks, each failing with the key and the fix."""
        if not isinstance(self.symbol, str) or "/" not in self.symbol:
            raise ConfigError(f"paper.symbol must look like 'BTC/USDT', got {self.symbol!r}")
        if self.mode not in MODES:
            raise ConfigError(f"paper.mode must be one of {MODES}, got {self.mode!r}")
        if self.url is not None and not str(self.url).startswith(("http://", "https://")):
            raise ConfigError(f"paper.url must start with http:// or https://, got {self.url!r}")
        for name in ("warmup", "timeout_ms", "retries"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ConfigError(f"paper.{name} must be a non-negative integer, got {getattr(self, name)!r}")
        for name in ("cash", "poll", "backoff", "max_backoff"):
            if not isinstance(getattr(self, name), int | float) or getattr(self, name) <= 0:
                raise ConfigError(f"paper.{name} must be a positive number, got {getattr(self, name)!r}")
        for name in ("commission", "slippage"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value < 0.1:
                raise ConfigError(f"paper.{name} must be a fraction in [0, 0.1), got {value!r}")
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
            raise ConfigError(f"paper.until must be an ISO time such as 2024-01-01T00:00Z, got {self.until!r}") from exc
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.timezone.utc)
        return int(stamp.timestamp() * 1000)


def paper_config_from_dict(section: dict[str, Any], *, where: str = "paper") -> PaperConfig:
    """Build a PaperConfig; an unknown key is an error naming the closest valid one."""
    if not isinstance(section, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(section).__name__}")
    names = [f.name for f in dataclasses.fields(PaperConfig)]
    for key in section:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(names)}"
            raise ConfigError(f"unknown key {where}.{key}{hint}")
    if "symbol" not in section:
        raise ConfigError(f"{where}.symbol is required (e.g. 'BTC/USDT')")
    try:
        return PaperConfig(**section)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def load_paper_config(path: str | Path) -> tuple[PaperConfig, dict[str, Any]]:
    """Read a YAML file's ``paper:`` section; returns it and the whole document (for the strategy part)."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}".splitlines()[0]) from exc
    if not isinstance(doc, dict) or "paper" not in doc:
        raise ConfigError(f"{path} has no 'paper:' section (exchange, symbol, timeframe, mode, ...)")
    return paper_config_from_dict(doc["paper"], where="paper"), doc
