"""Probability threshold: long (or short) when the Kronos signal is confident enough, flat otherwise."""

from __future__ import annotations

from typing import Any

from kronos_strategies.strategy import KronosStrategy


class ThresholdStrategy(KronosStrategy):
    """Long when ``signal >= enter``, short when ``signal <= -enter`` (if allowed), exit below ``exit``.

    With the default signal ``2 * prob_up - 1``, ``enter=0.1`` means "at least 55 % of the sample paths
    end higher after ``horizon`` bars", and ``exit=0.0`` closes a long once that share drops below 50 %.

    Params:
      - ``enter`` (0.1): signal level that opens a position
      - ``exit`` (0.0): a long closes when the signal falls below it (a short when above ``-exit``)
    """

    params = (("enter", 0.1), ("exit", 0.0))

    def should_enter(self, signal: float, **kwargs: Any) -> int:
        if signal >= self.p.enter:
            return 1
        return -1 if signal <= -self.p.enter else 0

    def should_exit(self, signal: float, side: int, **kwargs: Any) -> bool:
        return side * signal < self.p.exit
