"""Kronos forecasts of every asset's windows, reduced to a [bars x assets] signal table.

Vectorised mode forecasts all windows of all assets up front, asset by asset in chunks of ``chunk`` windows (each
chunk one ``cached_forecasts`` call; misses are cut from the asset's prepared series by ``forecast_series`` when
the predictor has it), so memory stays flat in the number of assets; event mode
forecasts, at each bar, the windows of the assets that have a bar, in one call. Windows are cut from each
asset's own bars and keyed exactly like the single-asset ``KronosSignal`` windows (``ForecastSpec.key``), so
a universe run and a single-asset run share cache entries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kronos_model.calibration import CalibrationSpec, OnlineCalibrator
from kronos_model.errors import LookaheadError
from kronos_model.forecast import Forecast
from kronos_model.series import PreparedSeries

from ..cache import ForecastCache
from ..forecasting import Forecaster, ForecastSpec, cached_forecasts
from ..indicator import ForecastStats
from .calendar import AlignedUniverse
from .table_cache import load_table, store_table, table_key

__all__ = ["SignalTable", "UniverseForecaster"]


@dataclass
class SignalTable:
    """Per union bar and asset: the ranking signal, P(up) at the horizon and the expected return per step."""

    index: pd.DatetimeIndex
    names: list[str]
    signal: np.ndarray  # [T, N] NaN where an asset has no forecast at t
    prob_up: np.ndarray  # [T, N]
    expected: np.ndarray  # [T, N, pred_len] mean cumulative return to each step
    done: np.ndarray = field(repr=False, default=None)  # type: ignore[assignment]  # [T] rows filled

    @classmethod
    def empty(cls, index: pd.DatetimeIndex, names: list[str], pred_len: int) -> SignalTable:
        t, n = len(index), len(names)
        return cls(index, names, np.full((t, n), np.nan), np.full((t, n), np.nan),
                   np.full((t, n, pred_len), np.nan), np.zeros(t, bool))  # fmt: skip

    def frame(self, what: str = "signal") -> pd.DataFrame:
        """``signal`` or ``prob_up`` as a DataFrame [bars x assets]."""
        return pd.DataFrame(getattr(self, what), index=self.index, columns=self.names)

    def expected_frame(self, step: int) -> pd.DataFrame:
        """Expected cumulative return to step ``step`` (1-based) as a DataFrame [bars x assets]."""
        return pd.DataFrame(self.expected[:, :, step - 1], index=self.index, columns=self.names)


class UniverseForecaster:
    """Forecasts the universe's windows through the shared cache and fills a :class:`SignalTable`."""

    def __init__(
        self,
        universe: AlignedUniverse,
        predictor: Forecaster,
        spec: ForecastSpec,
        cache: ForecastCache | None,
        *,
        lookback: int,
        horizon: int,
        signal: str = "expected_return",
        batch_size: int = 64,
        chunk: int = 2048,
        calibration: CalibrationSpec | None = None,
    ) -> None:
        self.universe = universe
        self.predictor = predictor
        self.spec = spec
        self.cache = cache if spec.seed is not None else None
        self.lookback = lookback
        self.horizon = horizon
        self.kind = signal
        self.batch_size = batch_size
        self.chunk = chunk
        self.stats = ForecastStats()
        self.table = SignalTable.empty(universe.index, universe.names, spec.pred_len)
        self._first = int(universe.index.searchsorted(universe.start))
        self._series: dict[int, PreparedSeries] = {}
        self.calibration = calibration  # one OnlineCalibrator per asset, fed that asset's own closes
        self.calibrators: dict[str, OnlineCalibrator] = {}
        self._observed: dict[int, int] = {}  # asset -> next own row its calibrator has not read

    # ------------------------------------------------------------------ both modes

    def _window(self, name: str, pos: int) -> pd.DataFrame:
        """The ``lookback`` bars of ``name`` ending at its own row ``pos`` (never another asset's calendar)."""
        return self.universe.frames[name].iloc[pos - self.lookback + 1 : pos + 1]

    def _run(
        self, cells: Sequence[tuple[int, int]], windows: Sequence[pd.DataFrame], *, series: bool = False
    ) -> None:
        """Forecast ``windows`` (one per (row, column) cell) and write their summaries into the table.

        With ``series`` (vectorised mode) and a predictor that has ``forecast_series``, missed windows are cut
        from each asset's prepared series (validated once) instead of being validated one by one.
        """
        compute = self._series_compute(cells) if series else None
        forecasts, served = cached_forecasts(
            self.predictor, windows, self.spec, self.cache, batch_size=self.batch_size, compute=compute
        )
        self.stats.windows += len(windows)
        self.stats.computed += served.computed
        self.stats.cache_hits += len(windows) - served.computed
        self.stats.model_calls += served.batches
        self.stats.seconds += served.seconds
        for (t, j), forecast in zip(cells, forecasts, strict=True):
            self._store(t, j, forecast)

    def _series_compute(
        self, cells: Sequence[tuple[int, int]]
    ) -> Callable[[list[int]], list[Forecast]] | None:
        """Forecasts of missed cells by index through ``forecast_series`` (one call per asset in the batch)."""
        if not callable(getattr(self.predictor, "forecast_series", None)):
            return None
        position = self.universe.position.to_numpy()

        def compute(chunk: list[int]) -> list[Forecast]:
            out: list[Forecast | None] = [None] * len(chunk)
            by_asset: dict[int, list[int]] = {}
            for k, i in enumerate(chunk):
                by_asset.setdefault(cells[i][1], []).append(k)
            for j, ks in by_asset.items():
                ends = [int(position[cells[chunk[k]][0], j]) + 1 for k in ks]
                got = self.predictor.forecast_series(
                    self._prepared(j), ends, self.spec.pred_len, lookback=self.lookback,
                    batch_size=self.batch_size, **self.spec.predictor_kwargs(),
                )  # fmt: skip
                for k, forecast in zip(ks, got, strict=True):
                    out[k] = forecast
            return out  # type: ignore[return-value]

        return compute

    def _prepared(self, j: int) -> PreparedSeries:
        """Asset ``j``'s bars as a prepared series (validated once per run)."""
        if j not in self._series:
            name = self.universe.names[j]
            frame = self.universe.frames[name]
            self._series[j] = PreparedSeries.from_arrays(frame.to_numpy(np.float64), frame.index, name=name)
        return self._series[j]

    def _calibrated(self, t: int, j: int, forecast: Forecast) -> Forecast:
        """Asset ``j``'s forecast at union row ``t`` calibrated on its own earlier outcomes (closes up to its bar)."""
        name = self.universe.names[j]
        pos = int(self.universe.position.iat[t, j])
        if name not in self.calibrators:
            self.calibrators[name] = OnlineCalibrator.from_spec(self.calibration)  # type: ignore[arg-type]
            self._observed[j] = pos
        if pos < self._observed[j] - 1:
            raise LookaheadError(
                f"{name}: a forecast at its row {pos} came after row {self._observed[j] - 1}"
            )
        close = self.universe.frames[name]["close"].to_numpy()
        for row in range(self._observed[j], pos + 1):
            self.calibrators[name].observe(close[row])
        self._observed[j] = max(self._observed[j], pos + 1)
        return self.calibrators[name].apply(forecast)

    def _store(self, t: int, j: int, forecast: Forecast) -> None:
        if self.calibration is not None:
            forecast = self._calibrated(t, j, forecast)
        cum = forecast.cumulative_returns()  # [S, pred_len]
        h = self.horizon - 1
        prob_up = float((cum[:, h] > 0).mean())
        self.table.expected[t, j] = cum.mean(axis=0)
        self.table.prob_up[t, j] = prob_up
        self.table.signal[t, j] = (
            float(cum[:, h].mean()) if self.kind == "expected_return" else 2 * prob_up - 1
        )

    # ------------------------------------------------------------------ vectorised mode

    def precompute(
        self, assets: Sequence[str] | None = None, rows: tuple[int, int] | None = None
    ) -> SignalTable:
        """Every eligible (bar, asset) window from the trading start on, in chunks of ``chunk`` windows.

        ``assets`` limits it to those assets' windows (a sweep's forecast shard), ``rows`` to the union rows
        ``[lo, hi)`` (a walk-forward fold); other cells stay empty. A whole run's table is cached as one file.
        """
        eligible = self.universe.eligible.to_numpy().copy()
        eligible[: self._first] = False
        if assets is not None:
            eligible &= np.isin(np.array(self.universe.names), list(assets))[None, :]
        if rows is not None:
            eligible[: rows[0]] = eligible[rows[1] :] = False
        whole = assets is None and rows is None
        key = table_key(self, eligible) if whole else None
        if key is not None and load_table(self, key, self.table):
            n = int(eligible.sum())
            self.stats.windows += n
            self.stats.cache_hits += n
            self.table.done[self._first :] = True
            return self.table
        self._forecast_cells(eligible)
        if key is not None:
            store_table(self, key, self.table)
        self.table.done[self._first :] = True
        return self.table

    def _forecast_cells(self, eligible: np.ndarray) -> None:
        """Forecast the cells marked in ``eligible`` [bars x assets] asset by asset, ``chunk`` windows per call."""
        position = self.universe.position.to_numpy()
        cols, rows = np.nonzero(eligible.T)  # asset by asset: a batch mostly cuts one series
        names = self.universe.names
        for lo in range(0, len(rows), self.chunk):
            cells = list(zip(rows[lo : lo + self.chunk].tolist(), cols[lo : lo + self.chunk].tolist()))
            windows = [self._window(names[j], int(position[t, j])) for t, j in cells]
            self._run(cells, windows, series=True)

    # ------------------------------------------------------------------ event mode

    def at(self, t: int, windows: dict[str, pd.DataFrame]) -> None:
        """Event mode: forecast the windows of the assets that have a bar at union row ``t`` in one call."""
        if self.table.done[t]:
            return
        index = {n: j for j, n in enumerate(self.table.names)}
        cells = [(t, index[n]) for n in windows]
        if cells:
            self._run(cells, list(windows.values()))
        self.table.done[t] = True
