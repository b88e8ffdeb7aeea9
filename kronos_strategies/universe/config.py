"""The ``universe:`` block of a backtest YAML (which assets to rank, instead of ``data:``, and how).

The block is part of the one backtest config model: it is defined and validated in
:mod:`kronos_strategies.config.universe` and re-exported here for the universe modules.
"""

from __future__ import annotations

from ..config.universe import SIGNALS, UniverseConfig, asset_label, check_universe

__all__ = ["SIGNALS", "UniverseConfig", "asset_label", "check_universe"]
