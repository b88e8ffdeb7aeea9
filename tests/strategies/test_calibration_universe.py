"""Universe backtests with ``indicator.calibration``: one calibrator per asset, fed only that asset's past closes."""

from __future__ import annotations

import numpy as np
import pytest

from kronos_strategies.universe.runner import run_universe_backtest
from tests.universe.conftest import make_assets, universe_config

CAL = {"method": "aci", "warmup": 3, "window": 10}


@pytest.mark.parametrize("mode", ["vectorised", "event"])
def test_each_asset_is_calibrated_on_its_own_past_only(tmp_path, sp500_bars, counting_predictor, mode):
    assets = make_assets(sp500_bars)
    cfg = universe_config(tmp_path, k=2, n_drop=1)
    cfg["engine"]["mode"] = mode
    cfg["indicator"]["cache_dir"] = None
    raw = run_universe_backtest(cfg, predictor=counting_predictor, frames=assets, write_reports=False)
    cfg["indicator"]["calibration"] = CAL
    base = run_universe_backtest(cfg, predictor=counting_predictor, frames=assets, write_reports=False)
    t0 = 50
    cut = assets["B"].index[t0]
    changed = dict(assets)
    b = assets["B"].copy()
    b.loc[b.index > cut, ["open", "high", "low", "close"]] *= 1.7
    changed["B"] = b
    other = run_universe_backtest(cfg, predictor=counting_predictor, frames=changed, write_reports=False)
    upto = base.table.index <= cut
    for what in ("signal", "prob_up", "expected"):  # nothing at <= t moves
        x, y = getattr(base.table, what)[upto], getattr(other.table, what)[upto]
        assert np.array_equal(x, y, equal_nan=True), what
    j = base.table.names.index("B")
    assert not np.array_equal(base.table.prob_up[~upto, j], other.table.prob_up[~upto, j], equal_nan=True)
    others = [i for i, n in enumerate(base.table.names) if n != "B"]  # another asset's errors never leak in
    assert np.array_equal(base.table.prob_up[:, others], other.table.prob_up[:, others], equal_nan=True)
    # calibration does act once the warm-up is over
    assert not np.array_equal(base.table.prob_up, raw.table.prob_up, equal_nan=True)
