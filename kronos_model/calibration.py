"""Leak-free online calibration of forecast bands: adaptive conformal inference (ACI) on past forecast errors.

Per horizon h, the score of a resolved forecast is how far its realised cumulative return fell from the
sample median, in units of the forecast's own half-band on that side (the central ``target`` interval): a
score <= 1 means the raw band covered the outcome. The calibrated band scales every forecast's return
distribution about its median by ``k_h``, the conformal quantile of recent scores at level ``1 - alpha_h``,
and ``alpha_h`` follows the ACI update of Gibbs & Candes (2021), ``alpha += gamma * (1 - target - miss)``,
so the long-run miss rate of the issued bands tracks ``1 - target`` even when the errors drift.

The calibrator is clocked by bars: :meth:`OnlineCalibrator.observe` reads one new close, and only then can the
steps of earlier forecasts that end on that bar be scored. A forecast applied after observing bar t therefore
depends only on forecasts issued at or before t - h whose outcomes (closes up to t) are known: nothing later.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError, DataError
from .forecast import Forecast

__all__ = ["CalibrationSpec", "OnlineCalibrator", "calibrate_forecasts", "calibrate_paths"]

METHODS: tuple[str, ...] = ("aci",)
_PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
_TINY = 1e-12  # floor of a half-band (return units) so a degenerate forecast cannot divide by zero


@dataclass(frozen=True)
class CalibrationSpec:
    """How to calibrate: ``method`` (``aci``), ``target`` coverage of the central band (None: the caller's
    band, e.g. the indicator's quantiles), ACI step ``gamma``, rolling ``window`` of scores per horizon, and
    ``warmup`` scores a horizon needs before its band is rescaled (until then the raw band is issued)."""

    method: str = "aci"
    target: float | None = None
    gamma: float = 0.005
    window: int = 500
    warmup: int = 20

    def check(self, where: str = "calibration") -> CalibrationSpec:
        """Raise a one-line ConfigError naming the key and the allowed range; return self."""
        rules = (
            (self.method in METHODS, f"'{where}.method' must be one of {list(METHODS)}, got {self.method!r}"),
            (self.target is None or 0.0 < self.target < 1.0,
             f"'{where}.target' must be a coverage in (0, 1), e.g. 0.8, got {self.target}"),
            (0.0 < self.gamma <= 0.5, f"'{where}.gamma' must be in (0, 0.5], e.g. 0.005, got {self.gamma}"),
            (self.window >= 10, f"'{where}.window' must be >= 10 past scores, got {self.window}"),
            (1 <= self.warmup <= self.window,
             f"'{where}.warmup' must be in [1, window={self.window}], got {self.warmup}"),
        )  # fmt: skip
        for ok, message in rules:
            if not ok:
                raise ConfigError(message)
        return self

    @classmethod
    def coerce(
        cls, value: object, *, target: float | None = None, where: str = "calibration"
    ) -> CalibrationSpec | None:
        """A checked spec from None / False (off), True (defaults), a mapping or a spec; ``target`` fills a None one."""
        if value is None or value is False:
            return None
        if value is True:
            spec = cls()
        elif isinstance(value, cls):
            spec = value
        elif isinstance(value, dict):
            unknown = sorted(set(value) - set(cls.__dataclass_fields__))
            if unknown:
                raise ConfigError(
                    f"unknown key '{where}.{unknown[0]}' (valid keys: {', '.join(cls.__dataclass_fields__)})"
                )
            spec = cls(**value)
        else:
            raise ConfigError(
                f"'{where}' must be a mapping such as {{method: aci, target: 0.8}} or null, got {value!r}"
            )
        if spec.target is None and target is not None:
            spec = replace(spec, target=float(target))
        return spec.check(where)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Pending:
    """One step of an issued forecast waiting for its outcome bar."""

    horizon: int
    median: float  # return units
    below: float  # median - lower band edge (raw)
    above: float  # upper band edge - median (raw)
    base: float  # last close the returns are measured from
    scale: float  # k issued for this step; NaN during warm-up (raw band, no ACI update)


class OnlineCalibrator:
    """Adaptive conformal calibration of one asset's forecast bands, per horizon 1..pred_len.

    Use it in time order: ``observe(close)`` for every bar, ``apply(forecast)`` for a forecast made at the
    last observed bar (it returns the calibrated forecast and remembers the raw one to score later)::

        cal = OnlineCalibrator(target=0.8)
        for t in range(len(closes)):
            cal.observe(closes[t])
            if t has a forecast:
                calibrated = cal.apply(forecast_made_at_t)
    """

    def __init__(
        self, target: float = 0.8, *, gamma: float = 0.005, window: int = 500, warmup: int = 20
    ) -> None:
        self.spec = CalibrationSpec(target=target, gamma=gamma, window=window, warmup=warmup).check()
        self.target = float(target)
        self._alpha: list[float] = []
        self._scores: list[deque[float]] = []  # per horizon: recent scores in arrival order ...
        self._sorted: list[list[float]] = []  # ... and the same scores sorted (quantiles in O(1))
        self._pending: dict[int, list[_Pending]] = {}
        self._bar = -1
        self.last_scales: np.ndarray = np.empty(0)  # k issued to the last applied forecast, per step
        # per horizon: outcomes scored, inside the raw band, inside the issued band (calibrated ones only)
        self._scored: list[int] = []
        self._raw_hits: list[int] = []
        self._issued: list[int] = []
        self._issued_hits: list[int] = []

    @classmethod
    def from_spec(cls, spec: CalibrationSpec, *, target: float = 0.8) -> OnlineCalibrator:
        """A calibrator from a spec (its ``target`` when set, else ``target``)."""
        return cls(spec.target if spec.target is not None else target, gamma=spec.gamma, window=spec.window,
                   warmup=spec.warmup)  # fmt: skip

    # ------------------------------------------------------------------ the clock

    @property
    def bars_observed(self) -> int:
        return self._bar + 1

    def observe(self, close: float) -> None:
        """The next bar's close is known: score every pending forecast step that ends on this bar."""
        close = float(close)
        if not math.isfinite(close) or close <= 0:
            raise DataError(f"calibration needs finite, positive closes, got {close} at bar {self._bar + 1}")
        self._bar += 1
        for item in self._pending.pop(self._bar, ()):
            self._resolve(item, close / item.base - 1.0)

    def _resolve(self, item: _Pending, realised: float) -> None:
        j = item.horizon - 1
        if realised >= item.median:
            score = (realised - item.median) / max(item.above, _TINY)
        else:
            score = (item.median - realised) / max(item.below, _TINY)
        self._scored[j] += 1
        self._raw_hits[j] += score <= 1.0
        if not math.isnan(item.scale):
            miss = score > item.scale
            self._issued[j] += 1
            self._issued_hits[j] += not miss
            alpha = self._alpha[j] + self.spec.gamma * ((1.0 - self.target) - miss)
            self._alpha[j] = min(max(alpha, 0.0), 1.0)  # 0: the widest band (max score) already missed
        recent, ordered = self._scores[j], self._sorted[j]
        if len(recent) == recent.maxlen:
            del ordered[bisect.bisect_left(ordered, recent[0])]
        recent.append(score)
        bisect.insort(ordered, score)

    def _grow(self, pred_len: int) -> None:
        while len(self._alpha) < pred_len:
            self._alpha.append(1.0 - self.target)
            self._scores.append(deque(maxlen=self.spec.window))
            self._sorted.append([])
            for counts in (self._scored, self._raw_hits, self._issued, self._issued_hits):
                counts.append(0)

    # ------------------------------------------------------------------ rescaling

    def scales(self, pred_len: int) -> np.ndarray:
        """Current band multiplier ``k`` per horizon [pred_len]; NaN where a horizon is still warming up."""
        self._grow(pred_len)
        out = np.full(pred_len, np.nan)
        for j in range(pred_len):
            ordered = self._sorted[j]
            n = len(ordered)
            if n < self.spec.warmup:
                continue
            rank = math.ceil((n + 1) * (1.0 - self._alpha[j]))  # finite-sample conformal quantile
            out[j] = 0.0 if rank <= 0 else ordered[min(rank, n) - 1]
        return out

    def _band(self, returns: np.ndarray) -> np.ndarray:
        """Median and central ``target`` band edges of cumulative returns [..., S, H]: [3, ..., H] (med, lo, hi)."""
        lo_q, hi_q = (1.0 - self.target) / 2.0, (1.0 + self.target) / 2.0
        lo, med, hi = np.quantile(np.asarray(returns, np.float64), [lo_q, 0.5, hi_q], axis=-2)
        return np.stack([med, lo, hi])

    def _issue(self, band: np.ndarray, base: float) -> np.ndarray:
        """Scales k [H] for a forecast made now (band [3, H] from ``_band``); its steps are queued for scoring."""
        med, lo, hi = band
        k = self.last_scales = self.scales(len(med))
        for j in range(len(med)):
            self._pending.setdefault(self._bar + j + 1, []).append(
                _Pending(
                    j + 1, float(med[j]), float(med[j] - lo[j]), float(hi[j] - med[j]), base, float(k[j])
                )
            )
        return k

    def apply_paths(self, paths: np.ndarray, last_close: float) -> np.ndarray:
        """Calibrated close paths [S, H] of a forecast made at the last observed bar (float64)."""
        paths = np.asarray(paths, np.float64)
        if paths.ndim != 2 or paths.shape[1] < 1:
            raise DataError(f"paths must be [samples, horizon], got shape {paths.shape}")
        base = _check_base(last_close)
        returns = paths / base - 1.0
        band = self._band(returns)
        k = self._issue(band, base)
        return base * (1.0 + _rescale(returns, band[0], k))

    def apply(self, forecast: Forecast) -> Forecast:
        """The calibrated forecast (price columns rescaled about the close's median return, per step).

        A forecast made at the last observed bar; during a horizon's warm-up its step is left as it is.
        """
        base = _check_base(forecast.last_close)
        band = self._band(forecast.paths("close").astype(np.float64) / base - 1.0)
        k, med = self._issue(band, base), band[0]
        if np.isnan(k).all():
            return forecast
        samples = forecast.samples.copy()
        for name in _PRICE_COLUMNS:
            if name in forecast.columns:
                c = forecast.columns.index(name)
                returns = samples[:, :, c].astype(np.float64) / base - 1.0
                samples[:, :, c] = (base * (1.0 + _rescale(returns, med, k))).astype(samples.dtype)
        return replace(forecast, samples=samples)

    # ------------------------------------------------------------------ what happened

    def coverage(self) -> dict[str, list[float | None] | list[int]]:
        """Per horizon: outcomes scored, realised coverage of the raw band, and of the issued calibrated band."""

        def share(hits: list[int], n: list[int]) -> list[float | None]:
            return [h / c if c else None for h, c in zip(hits, n)]

        return {
            "scored": list(self._scored),
            "raw": share(self._raw_hits, self._scored),
            "calibrated_scored": list(self._issued),
            "calibrated": share(self._issued_hits, self._issued),
        }

    @property
    def alphas(self) -> np.ndarray:
        """Current ACI miss level per horizon (starts at ``1 - target``)."""
        return np.asarray(self._alpha, float)


def _check_base(last_close: float) -> float:
    base = float(last_close)
    if not math.isfinite(base) or base <= 0:
        raise DataError(f"a forecast's last close must be finite and positive to calibrate it, got {base}")
    return base


def _rescale(returns: np.ndarray, median: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Returns [S, H] scaled about the median by k per step; NaN k (warm-up) leaves the step as it is.

    Kept above -100 % so a very wide band never produces a non-positive price.
    """
    k = np.where(np.isnan(k), 1.0, k)
    out = median + k * (returns - median)
    return np.maximum(out, -1.0 + 1e-6)


def calibrate_paths(
    paths: np.ndarray,
    last_close: np.ndarray,
    issue_bars: Sequence[int] | np.ndarray,
    closes: np.ndarray,
    spec: CalibrationSpec | None = None,
    *,
    target: float = 0.8,
) -> tuple[np.ndarray, np.ndarray]:
    """Calibrate a time-ordered set of close-path forecasts of one series, walking its bars in order.

    ``paths`` [N, S, H]; ``last_close`` [N]; ``issue_bars`` [N] the row of ``closes`` each forecast was made at
    (its last history bar, non-decreasing). Forecast n sees only closes up to ``issue_bars[n]``. Returns the
    calibrated paths [N, S, H] and the scales issued [N, H] (NaN during warm-up).
    """
    spec = spec or CalibrationSpec()
    paths = np.asarray(paths, np.float64)
    bars = np.asarray(issue_bars, np.int64)
    closes = np.asarray(closes, np.float64)
    if paths.ndim != 3 or len(bars) != len(paths) or len(last_close) != len(paths):
        raise DataError(
            f"need paths [N, S, H] with N issue bars and last closes, got {paths.shape}, {len(bars)}"
        )
    if len(bars) and (np.any(np.diff(bars) < 0) or bars[0] < 0 or bars[-1] >= len(closes)):
        raise DataError("issue bars must be non-decreasing rows of the close series")
    cal = OnlineCalibrator.from_spec(spec, target=target)
    bands = cal._band(
        paths / np.asarray(last_close, np.float64)[:, None, None] - 1.0
    )  # [3, N, H] in one call
    out = np.empty_like(paths)
    scales = np.full(paths.shape[::2], np.nan)
    next_bar = int(bars[0]) if len(bars) else 0
    for n, bar in enumerate(bars):
        while next_bar <= bar:
            cal.observe(closes[next_bar])
            next_bar += 1
        base = _check_base(last_close[n])
        scales[n] = cal._issue(bands[:, n], base)  # same as apply_paths, with the bands computed at once
        out[n] = base * (1.0 + _rescale(paths[n] / base - 1.0, bands[0, n], scales[n]))
    return out, scales


def calibrate_forecasts(
    forecasts: Sequence[Forecast],
    close: pd.Series,
    spec: CalibrationSpec | None = None,
    *,
    target: float = 0.8,
) -> list[Forecast]:
    """Calibrate one series' forecasts (in time order) against its closes; each sees only closes up to its
    ``history_end``. ``close`` is indexed by the bar timestamps the forecasts' ``history_end`` refer to."""
    spec = spec or CalibrationSpec()
    index = pd.DatetimeIndex(close.index)
    ends = []
    for fc in forecasts:
        pos = index.get_indexer([pd.Timestamp(fc.history_end)])[0] if fc.history_end is not None else -1
        if pos < 0:
            raise DataError(f"forecast history end {fc.history_end} is not a bar of the close series")
        ends.append(int(pos))
    if np.any(np.diff(ends) < 0):
        raise DataError("forecasts must be in time order (non-decreasing history_end) to calibrate them")
    values = close.to_numpy(np.float64)
    cal = OnlineCalibrator.from_spec(spec, target=target)
    out, next_bar = [], ends[0] if ends else 0
    for fc, bar in zip(forecasts, ends):
        while next_bar <= bar:
            cal.observe(values[next_bar])
            next_bar += 1
        out.append(cal.apply(fc))
    return out
