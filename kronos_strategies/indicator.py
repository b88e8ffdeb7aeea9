"""``KronosSignal``: a backtrader indicator whose lines summarise Kronos forecasts of its data feed."""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from kronos_model.calibration import CalibrationSpec, OnlineCalibrator
from kronos_model.data import prepare_columns
from kronos_model.forecast import Forecast
from kronos_model.series import PreparedSeries

from .cache import ForecastCache
from .errors import ConfigError
from .feeds import bar_timestamps
from .forecasting import ANCHOR_DEFAULT, ForecastSpec, SeriesWindows, cached_forecasts

__all__ = ["ForecastStats", "KronosSignal", "resolve_cache", "resolve_predictor"]

log = logging.getLogger(__name__)

_PRICE_LINES: tuple[str, ...] = ("open", "high", "low", "close", "volume")


@functools.lru_cache(maxsize=4)
def _load_predictor(name: str | None, device: str) -> Any:
    from kronos_model import KronosPredictor

    return KronosPredictor.from_pretrained(name, device=device)


def resolve_predictor(spec: object, *, device: str = "cpu") -> Any:
    """A predictor from an instance, a local directory / hub id, or None for the bundled model."""
    if spec is None or isinstance(spec, str | Path):
        return _load_predictor(None if spec is None else str(spec), device)
    if not callable(getattr(spec, "forecast_batch", None)):
        raise ConfigError(
            f"predictor must be a KronosPredictor, a checkpoint directory or hub id, got {type(spec).__name__}"
        )
    return spec


def resolve_cache(spec: object) -> ForecastCache | None:
    """A forecast cache from an instance, a directory, or None (no cache)."""
    if spec is None or isinstance(spec, ForecastCache):
        return spec
    if isinstance(spec, str | Path):
        return ForecastCache(spec)
    raise ConfigError(f"cache must be a ForecastCache, a directory or None, got {type(spec).__name__}")


@dataclass
class ForecastStats:
    """What the indicator asked of the model: windows served, computed, read from the cache, seconds."""

    windows: int = 0
    computed: int = 0
    cache_hits: int = 0
    seconds: float = 0.0
    model_calls: int = 0
    band_scored: int = 0  # forecasts whose band target bar (issue + horizon) has been seen
    band_hits: int = 0  # ... whose close there fell inside the lower/upper band the lines carried
    raw_band_hits: int = 0  # ... inside the model's raw band (the same as band_hits without calibration)

    def band_coverage(self) -> dict[str, float | int | None]:
        """Realised coverage of the indicator's band over the run, and of the raw model band."""
        n = self.band_scored
        return {"scored": n, "coverage": self.band_hits / n if n else None,
                "raw_coverage": self.raw_band_hits / n if n else None}  # fmt: skip


class KronosSignal(bt.Indicator):
    """Kronos forecast of the data feed: expected return, probability of an up move, a band, a signal.

    At bar t the model sees the ``lookback`` bars ending at t (OHLCV plus ``amount`` when the feed has
    it, stamped with the feed's real datetimes) and samples ``sample_count`` paths of ``pred_len``
    future bars. The lines summarise the close ``horizon`` bars ahead. Nothing after t is read in
    either mode: event mode slices with ``get(size=lookback)``; vectorised mode (runonce) builds the
    same windows from the preloaded arrays and forecasts them in batches, with a seed making each
    window's result independent of its batch, so both modes give identical lines.

    Params:
      - ``predictor``: a ``KronosPredictor``, a checkpoint directory / hub id, or None (bundled model)
      - ``lookback`` (256): bars of history per forecast; also the indicator's minimum period
      - ``pred_len`` (5): bars forecast; ``horizon`` (5): the step the lines describe (<= pred_len)
      - ``sample_count`` (16), ``T``, ``top_k``, ``top_p``, ``seed`` (0): sampling, as ``forecast``
      - ``anchor`` (True): shift the paths so step 0 reconstructs the last bar (removes the tokenizer's
        step-one jump; ``KronosPredictor`` ``anchor``)
      - ``quantiles`` ((0.1, 0.9)): close quantile levels of the ``lower`` / ``upper`` band
      - ``calibration`` (None): e.g. ``{"method": "aci", "target": 0.8}`` rescales each forecast's return
        distribution online so the band covers ``target`` of outcomes (default target: upper - lower level);
        at bar t it uses only forecasts whose outcome bar is <= t (``kronos_model.calibration``). Every line
        then comes from the calibrated forecast; the cache keeps raw forecasts (keys unchanged)
      - ``every`` (1): re-forecast every N bars, holding the last forecast in between
      - ``cache``: a ``ForecastCache`` or directory (None: no cache; unseeded runs are never cached)
      - ``batch_size`` (64), ``device`` ("cpu"), ``progress`` (False: no progress bar)

    Lines:
      - ``expected_return``: mean simple return of the close from bar t to t + horizon
      - ``prob_up``: fraction of sample paths whose close at t + horizon is above the close at t
      - ``lower`` / ``upper``: close price quantiles at t + horizon
      - ``signal``: the :meth:`compute_signal` hook, by default ``2 * prob_up - 1`` in [-1, 1]; read it
        like any line, ``ind.signal[0]``

    Notes:
      Subclass and override :meth:`compute_signal` for another signal, and :meth:`extras` to fill lines you
      add (``lines = ("width",)``); both receive the full :class:`~kronos_model.forecast.Forecast` and
      work in both modes (overriding ``next`` alone would be skipped by runonce). ``latest_forecast`` is
      the newest :class:`~kronos_model.forecast.Forecast` made (event mode: at this bar or the held one;
      vectorised mode: the last window), e.g. for a paper session's journal.
    """

    alias = ("KronosSignal",)
    lines = ("expected_return", "prob_up", "lower", "upper", "signal")
    params = (
        ("predictor", None),
        ("lookback", 256),
        ("pred_len", 5),
        ("horizon", 5),
        ("sample_count", 16),
        ("quantiles", (0.1, 0.9)),
        ("calibration", None),
        ("every", 1),
        ("T", 1.0),
        ("top_k", 0),
        ("top_p", 0.9),
        ("seed", 0),
        ("anchor", ANCHOR_DEFAULT),
        ("cache", None),
        ("batch_size", 64),
        ("device", "cpu"),
        ("progress", False),
    )
    plotinfo = dict(subplot=False, plotname="Kronos band")
    plotlines = dict(
        expected_return=dict(_plotskip=True),
        prob_up=dict(_plotskip=True),
        signal=dict(_plotskip=True),
        lower=dict(ls="--"),
        upper=dict(ls="--", _fill_gt=("lower", "c")),
    )

    # ------------------------------------------------------------------ hooks for subclasses

    def compute_signal(self, forecast: Forecast) -> float:
        """The ``signal`` line from one forecast; override for your own (default ``2 * prob_up - 1``)."""
        return 2.0 * forecast.prob_up(self.p.horizon) - 1.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Subclasses written for 0.1 override ``signal(forecast)``, which hid the ``signal`` line: their hook
        still works for this release (as ``compute_signal``), with a DeprecationWarning; the line comes back."""
        super().__init_subclass__(**kwargs)
        old_hook = cls.__dict__.get("signal")
        if callable(old_hook):
            warnings.warn(
                f"{cls.__name__}.signal(forecast) is now compute_signal(forecast); the old name goes in 0.3",
                DeprecationWarning,
                stacklevel=2,
            )
            cls.compute_signal = old_hook
            del cls.signal

    def extras(self, forecast: Forecast) -> dict[str, float]:
        """Values of lines a subclass adds, by line name (default: none)."""
        return {}

    # ------------------------------------------------------------------ backtrader protocol

    def __init__(self) -> None:
        self._check_params()
        self.predictor = resolve_predictor(self.p.predictor, device=self.p.device)
        limit = getattr(self.predictor, "max_context", None)
        if limit is not None and self.p.lookback > int(limit):
            raise ConfigError(f"lookback={self.p.lookback} exceeds the model's context of {limit} bars")
        self.cache = resolve_cache(self.p.cache) if self.p.seed is not None else None
        if self.cache is not None and not getattr(self.predictor, "fingerprint", None):
            raise ConfigError("the forecast cache needs a predictor with a `fingerprint`; pass cache=None")
        self.stats = ForecastStats()
        self._held: dict[str, float] | None = None
        self.latest_forecast: Forecast | None = None  # the newest forecast made (read-only for callers)
        self.calibrator = self._make_calibrator()  # OnlineCalibrator or None (calibration off)
        self._bands: dict[int, tuple[float, float, float, float]] = {}  # target bar -> band, raw band
        self._once_done = 0
        self._bar: tqdm | None = None
        self.addminperiod(self.p.lookback)

    def next(self) -> None:
        """Event mode: forecast from the last ``lookback`` bars (on forecast bars) and write the lines."""
        i = len(self) - 1
        self._observe(i, float(self.data.close[0]))
        if self._held is None or self._is_forecast_bar(i):
            window = self._event_window()
            self.latest_forecast = self._calibrated(i, self._forecasts(window, [len(window)])[0])
            self._held = self._values(self.latest_forecast)
            self._tick()
        for name, value in self._held.items():
            getattr(self.lines, name)[0] = value

    def oncestart(self, start: int, end: int) -> None:
        """Vectorised mode: backtrader's first call covers one bar; do every bar in one batch instead."""
        self.once(start, self.buflen())

    def once(self, start: int, end: int) -> None:
        """Vectorised mode: forecast every needed window in batches, then fill the line arrays."""
        start = max(start, self._once_done)
        if start >= end:
            return
        series = self._preloaded(end)
        bars = [
            i for i in range(start, end) if self._is_forecast_bar(i) or (i == start and self._held is None)
        ]
        raw = dict(zip(bars, self._forecasts(series, [i + 1 for i in bars]), strict=True))
        close = self.data.close.array
        values: dict[int, dict[str, float]] = {}
        for i in range(start, end):  # bar by bar, as event mode: outcomes first, then the bar's forecast
            self._observe(i, float(close[i]))
            if i in raw:
                self.latest_forecast = self._calibrated(i, raw[i])
                values[i] = self._values(self.latest_forecast)
        arrays = {name: getattr(self.lines, name).array for name in self._line_names()}
        held: dict[str, float] = self._held or {}
        for i in range(start, end):
            held = values.get(i, held)
            for name, value in held.items():
                arrays[name][i] = value
        self._held = held
        self._once_done = end

    # ------------------------------------------------------------------ internals

    def _tick(self) -> None:
        """Event-mode progress: one step per forecast bar (total known when the feed is preloaded)."""
        if not self.p.progress:
            return
        if self._bar is None:
            total = self.data.buflen() - self.p.lookback + 1
            total = -(-total // self.p.every) if total > 1 else None
            self._bar = tqdm(total=total, desc="Kronos forecasts (event)", unit="bar", leave=False)
        self._bar.update(1)
        if self._bar.total is not None and self._bar.n >= self._bar.total:
            self._bar.close()

    def _check_params(self) -> None:
        p = self.p
        checks = (
            (p.lookback >= 8, f"lookback must be >= 8 bars, got {p.lookback}"),
            (p.pred_len >= 1, f"pred_len must be >= 1, got {p.pred_len}"),
            (1 <= p.horizon <= p.pred_len, f"horizon must be in [1, pred_len={p.pred_len}], got {p.horizon}"),
            (p.sample_count >= 1, f"sample_count must be >= 1, got {p.sample_count}"),
            (p.every >= 1, f"every must be >= 1, got {p.every}"),
            (isinstance(p.anchor, bool), f"anchor must be true or false, got {p.anchor!r}"),
            (len(p.quantiles) == 2 and 0 < p.quantiles[0] < p.quantiles[1] < 1,
             f"quantiles must be (lower, upper) with 0 < lower < upper < 1, got {p.quantiles}"),
        )  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"{type(self).__name__}: {message}")

    def _make_calibrator(self) -> OnlineCalibrator | None:
        lo, hi = self.p.quantiles
        try:
            spec = CalibrationSpec.coerce(self.p.calibration, target=round(hi - lo, 12))
        except ConfigError as exc:
            raise ConfigError(f"{type(self).__name__}: {exc}") from None
        return None if spec is None else OnlineCalibrator.from_spec(spec)

    def _observe(self, i: int, close: float) -> None:
        """Bar ``i``'s close is known: score the band aimed at it and feed the calibrator (never a later bar)."""
        if self.calibrator is not None:
            self.calibrator.observe(close)
        band = self._bands.pop(i, None)
        if band is not None:
            lo, hi, raw_lo, raw_hi = band
            self.stats.band_scored += 1
            self.stats.band_hits += lo <= close <= hi
            self.stats.raw_band_hits += raw_lo <= close <= raw_hi

    def _calibrated(self, i: int, forecast: Forecast) -> Forecast:
        """The forecast made at bar ``i`` as the lines use it (calibrated when on); its band is kept for scoring."""
        out = forecast if self.calibrator is None else self.calibrator.apply(forecast)
        h, levels = self.p.horizon, list(self.p.quantiles)
        raw_lo, raw_hi = forecast.quantile(levels, "close")[:, h - 1]
        lo, hi = (raw_lo, raw_hi) if out is forecast else out.quantile(levels, "close")[:, h - 1]
        self._bands[i + h] = (float(lo), float(hi), float(raw_lo), float(raw_hi))
        return out

    def _line_names(self) -> tuple[str, ...]:
        return tuple(self.lines.getlinealiases())

    def _is_forecast_bar(self, i: int) -> bool:
        return (i - (self.p.lookback - 1)) % self.p.every == 0

    def _series(self, columns: dict[str, np.ndarray], stamps: pd.DatetimeIndex) -> PreparedSeries:
        """Validated six features (amount derived from volume when the feed has no amount line) and stamps."""
        name = f"{type(self).__name__} input"
        values = prepare_columns(columns, stamps, name=name)
        return PreparedSeries.from_arrays(values, stamps, name=name)

    def _source_lines(self) -> tuple[str, ...]:
        names = self.data.lines.getlinealiases()
        return _PRICE_LINES + (("amount",) if "amount" in names else ())

    def _event_window(self) -> PreparedSeries:
        """The last ``lookback`` bars, read through ``get`` so nothing after this bar is reachable."""
        lb = self.p.lookback
        cols = {
            name: np.asarray(getattr(self.data.lines, name).get(size=lb), float)
            for name in self._source_lines()
        }
        stamps = bar_timestamps(self.data, np.asarray(self.data.datetime.get(size=lb), float))
        return self._series(cols, stamps)

    def _preloaded(self, end: int) -> PreparedSeries:
        """All preloaded bars up to ``end``, validated once; each window is a slice ending at its own bar.

        A window's future timestamps come from the bar interval when the bars are evenly spaced, which
        gives exactly what the window's own timestamps infer; no price or volume after the bar is read.
        """
        cols = {
            name: np.asarray(getattr(self.data.lines, name).array[:end], float)
            for name in self._source_lines()
        }
        stamps = bar_timestamps(self.data, np.asarray(self.data.datetime.array[:end], float))
        return self._series(cols, stamps)

    def _values(self, forecast: Forecast) -> dict[str, float]:
        h = self.p.horizon
        band = forecast.quantile(list(self.p.quantiles), "close")[:, h - 1]
        values = {
            "expected_return": forecast.expected_return(h),
            "prob_up": forecast.prob_up(h),
            "lower": float(band[0]),
            "upper": float(band[1]),
            "signal": float(self.compute_signal(forecast)),
        }
        extra = self.extras(forecast)
        unknown = set(extra) - set(self._line_names())
        if unknown:
            raise ConfigError(f"{type(self).__name__}.extras returned {sorted(unknown)}, which are not lines")
        values.update({k: float(v) for k, v in extra.items()})
        return values

    @functools.cached_property
    def spec(self) -> ForecastSpec:
        """What, besides the model and the window, makes this indicator's forecasts (and cache keys)."""
        p = self.p
        return ForecastSpec(pred_len=p.pred_len, sample_count=p.sample_count, T=p.T, top_k=p.top_k,
                            top_p=p.top_p, seed=p.seed, anchor=p.anchor)  # fmt: skip

    def _forecasts(self, series: PreparedSeries, ends: Sequence[int]) -> list[Forecast]:
        """Forecast the windows of ``series`` ending at ``ends`` (exclusive), reading and filling the cache."""
        p = self.p
        show = p.progress and len(ends) > 1
        with tqdm(
            total=len(ends), desc="Kronos forecasts", unit="window", disable=not show, leave=False
        ) as bar:
            forecasts, served = cached_forecasts(
                self.predictor, SeriesWindows(series, ends, p.lookback), self.spec, self.cache,
                batch_size=p.batch_size, on_batch=bar.update,
            )  # fmt: skip
        self.stats.windows += len(ends)
        self.stats.computed += served.computed
        self.stats.cache_hits += len(ends) - served.computed
        self.stats.model_calls += served.batches
        self.stats.seconds += served.seconds
        return forecasts
