"""Long-short quantiles: long the top quantile of Kronos signals, short the bottom one, dollar-neutral."""

from __future__ import annotations

import pandas as pd

from kronos_strategies.universe.strategy import UniverseStrategy


class LongShortStrategy(UniverseStrategy):
    """Equal weights long the top ``quantile`` of assets by signal and short the bottom one.

    Each side holds ``gross / 2`` of portfolio value, so the book is dollar-neutral at every rebalance
    (prices drift it between rebalances). It sells short, so it needs a margin-capable broker setting:
    ``universe.shorting: true`` in the YAML (``allow_short=True`` when used directly). backtrader's
    default broker then credits short-sale proceeds to cash and marks shorts to market every bar; it
    charges no borrow fee, so add one to ``broker.commission`` when it matters.

    Params:
      - ``quantile`` (0.2): fraction of the ranked assets on each side (at least one name per side)
      - ``gross`` (1.0): sum of absolute weights (0.5 long + 0.5 short by default)
    """

    params = (("quantile", 0.2), ("gross", 1.0))

    def __init__(self) -> None:
        super().__init__()
        from kronos_strategies.errors import ConfigError

        if not self.p.allow_short:
            raise ConfigError("long_short sells short: set universe.shorting: true (a margin-capable broker)")
        if not 0 < float(self.p.quantile) <= 0.5:
            raise ConfigError(f"long_short: quantile must be in (0, 0.5], got {self.p.quantile}")
        if not 0 < float(self.p.gross) <= float(self.p.max_gross):
            raise ConfigError(
                f"long_short: gross must be in (0, max_gross={self.p.max_gross}], got {self.p.gross}"
            )

    def rank(self, signals: pd.Series) -> pd.Series:
        if len(signals) < 2:
            return pd.Series(dtype=float)
        n = max(1, int(len(signals) * float(self.p.quantile)))
        order = signals.sort_values(ascending=False, kind="mergesort")
        side = float(self.p.gross) / 2 / n
        longs = pd.Series(side, index=order.index[:n])
        shorts = pd.Series(-side, index=order.index[-n:])
        return pd.concat([longs, shorts])
