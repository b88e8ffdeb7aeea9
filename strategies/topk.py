"""Top-k with dropout: hold the k assets with the highest Kronos signals, replacing at most n_drop per rebalance."""

from __future__ import annotations

import pandas as pd

from kronos_strategies.universe.strategy import UniverseStrategy


class TopKStrategy(UniverseStrategy):
    """Hold the ``k`` highest-ranked assets, equal- or signal-weighted, as in the Kronos paper's test.

    At each rebalance the held names and the best names not held are ranked together; at most ``n_drop``
    held names that fall into the bottom ``n_drop`` of that list are sold and replaced by the best names
    not held (top-k-dropout, which bounds turnover). Empty slots (at the start, after a delisting) are
    filled with the best names not held. ``n_drop: null`` re-selects the top k every time.

    Params:
      - ``k`` (5): names held
      - ``n_drop`` (None): most names replaced per rebalance (None: no limit)
      - ``weighting`` ("equal"): "equal" (each name ``(1 - cash_buffer) / k``) or "signal" (by signal
        above the lowest held signal; equal when all are equal)
      - ``cash_buffer`` (0.02): fraction of portfolio value always kept in cash (absorbs opening gaps)
    """

    params = (("k", 5), ("n_drop", None), ("weighting", "equal"), ("cash_buffer", 0.02))

    def __init__(self) -> None:
        super().__init__()
        from kronos_strategies.errors import ConfigError

        if int(self.p.k) < 1:
            raise ConfigError(f"topk: k must be >= 1, got {self.p.k}")
        if self.p.n_drop is not None and int(self.p.n_drop) < 0:
            raise ConfigError(f"topk: n_drop must be >= 0 or null, got {self.p.n_drop}")
        if self.p.weighting not in ("equal", "signal"):
            raise ConfigError(f"topk: weighting must be 'equal' or 'signal', got {self.p.weighting!r}")
        if not 0 <= float(self.p.cash_buffer) < 1:
            raise ConfigError(f"topk: cash_buffer must be in [0, 1), got {self.p.cash_buffer}")

    def rank(self, signals: pd.Series) -> pd.Series:
        k = int(self.p.k)
        order = signals.sort_values(ascending=False, kind="mergesort")
        held_all = {n for n, w in self.targets.items() if w > 0}
        frozen = held_all - set(signals.index)  # held but no bar now: kept, and they use a slot
        held = [n for n in order.index if n in held_all]
        slots = max(0, k - len(frozen))
        if self.p.n_drop is None:
            keep = list(order.index[:slots])
        else:
            n_drop = int(self.p.n_drop)
            fresh = [n for n in order.index if n not in held_all]
            today = fresh[: max(0, n_drop + slots - len(held))]  # best names not held
            pool = [n for n in order.index if n in held or n in today]  # both, best first
            bottom = set(pool[len(pool) - n_drop :]) if n_drop else set()
            free = max(0, slots - len(held))
            sold = [n for n in reversed(held) if n in bottom][: max(0, len(today) - free)]  # worst first
            kept = [n for n in held if n not in sold]
            kept = kept[:slots]  # fewer slots than held names (e.g. k lowered): drop the worst
            keep = kept + today[: slots - len(kept)]
        return self._weights(signals[keep], frozen)

    def _weights(self, chosen: pd.Series, frozen: set[str]) -> pd.Series:
        budget = 1.0 - float(self.p.cash_buffer)
        per = budget / int(self.p.k)
        if self.p.weighting == "signal" and len(chosen) > 1:
            score = chosen - chosen.min()
            total = float(score.sum())
            if total > 0:
                free = budget - sum(self.targets[n] for n in frozen)
                return score / total * max(0.0, min(free, per * len(chosen)))
        return pd.Series(per, index=chosen.index, dtype=float)
