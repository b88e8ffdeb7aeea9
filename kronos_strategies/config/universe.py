"""The ``universe:`` block: which assets to rank (instead of ``data:``) and how.

Assets come from exactly one of: ``assets`` (a list of ``data:``-style mappings, each with an optional
``name``), ``files`` (a glob; names from the file names) or ``data_dir`` (a folder of CSV/Parquet files,
set by ``kronos-bt run --data-dir DIR``). Every error names the asset it is about.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .blocks import DataConfig, DatesConfig, IndicatorConfig, check_data_source

__all__ = ["SIGNALS", "UniverseConfig", "asset_label", "check_universe"]

SIGNALS = ("expected_return", "prob_up")  # what ranks the assets at the indicator horizon


@dataclass
class UniverseConfig:
    """Assets of a universe backtest and the calendar / ranking policy shared by all of them."""

    assets: tuple[DataConfig, ...] = ()  # data:-style mappings: path / dataset / source: ccxt + symbol
    files: str | None = None  # glob of CSV/Parquet files, e.g. data/us/*.csv (names: file stems)
    data_dir: str | None = None  # folder of CSV/Parquet files (kronos-bt run --data-dir DIR)
    tz: str | None = None  # timezone of naive timestamps in files / data_dir
    timestamp_column: str | None = None  # for files / data_dir (default: found by name)
    min_history: int | None = None  # bars an asset needs before it is ranked (default: indicator.lookback)
    signal: str = "expected_return"  # or "prob_up" (2 * P(up) - 1), both at indicator.horizon
    shorting: bool = False  # allow negative weights (long_short); backtrader credits short-sale cash
    band: float = 0.005  # skip an order when the weight moves by less than this
    quantiles: int = 5  # quantile portfolios of the signal report
    benchmark_asset: str | None = None  # also report buy-and-hold of this asset
    chunk: int = 2048  # windows forecast per chunk (memory stays flat in the number of assets)


def asset_label(asset: DataConfig, i: int) -> str:
    """How an asset is named in messages and reports: its name, symbol, data set or file stem."""
    if asset.name:
        return asset.name
    if asset.symbol:
        return asset.symbol
    if asset.dataset:
        return asset.dataset
    if asset.path:
        return asset.path.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return f"universe.assets[{i}]"


def check_universe(uni: UniverseConfig, data: DataConfig, dates: DatesConfig, ind: IndicatorConfig) -> None:
    """Cross-field rules of ``universe:`` (it replaces ``data:``; each asset follows the ``data:`` rules)."""
    given = [k for k, v in (("assets", uni.assets), ("files", uni.files), ("data_dir", uni.data_dir)) if v]
    if len(given) != 1:
        raise ConfigError(
            "set exactly one of 'universe.assets' (a list), 'universe.files' (a glob) and 'universe.data_dir' "
            f"(or kronos-bt run --data-dir DIR); got {given or 'none'}"
        )
    if data != DataConfig():
        raise ConfigError("'universe:' replaces 'data:': remove the 'data:' block")
    for i, asset in enumerate(uni.assets):
        where = f"universe.assets[{i}] ({asset_label(asset, i)!r})"
        check_data_source(asset, dates.start, prefix="", where=f"{where}: ")
    labels = [asset_label(a, i) for i, a in enumerate(uni.assets)]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise ConfigError(
            f"universe.assets: the name {dupes[0]!r} is used twice; give each asset a distinct 'name'"
        )
    if uni.assets and len(uni.assets) < 2:
        raise ConfigError("'universe.assets' needs at least 2 assets to rank (use data: for one asset)")
    if uni.min_history is not None and uni.min_history < ind.lookback:
        raise ConfigError(
            f"'universe.min_history' must be >= indicator.lookback={ind.lookback}, got {uni.min_history}"
        )
    if uni.signal not in SIGNALS:
        raise ConfigError(f"'universe.signal' must be one of {list(SIGNALS)}, got {uni.signal!r}")
    if not 0 <= uni.band < 1:
        raise ConfigError(f"'universe.band' must be in [0, 1), got {uni.band}")
    if uni.quantiles < 2:
        raise ConfigError(f"'universe.quantiles' must be >= 2, got {uni.quantiles}")
    if uni.chunk < 1:
        raise ConfigError(f"'universe.chunk' must be >= 1 window, got {uni.chunk}")
