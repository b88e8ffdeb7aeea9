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

import math
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
    band, e.g. the indicator's quantiles), ACI step ``gamma``, rolling ``window`` of scores per horizon,
    ``warmup`` scores a horizon needs before its band is rescaled (until then the raw band is issued), and
    ``shift``: also re-centre each step on ``a + b * median`` fitted on recent outcomes (bias and noisy medians)."""

    method: str = "aci"
    target: float | None = None
    gamma: float = 0.005
    window: int = 500
    warmup: int = 20
    shift: bool = True

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
    median: float  # raw median return
    below: float  # raw median - lower band edge
    above: float  # raw upper band edge - median
    base: float  # last close the returns are measured from
    scale: float  # k issued for this step; NaN during warm-up (raw band, no ACI update)
    shift: float  # median shift issued (0 during warm-up)


class _History:
    """The last ``window`` resolved steps of one horizon: raw median, realised return and raw half-bands."""

    def __init__(self, window: int) -> None:
        self.data = np.zeros((4, window))
        self.n = 0
        self._next = 0

    def add(self, median: float, realised: float, below: float, above: float) -> None:
        self.data[:, self._next] = (median, realised, below, above)
        self._next = (self._next + 1) % self.data.shape[1]
        self.n = min(self.n + 1, self.data.shape[1])

    def view(self) -> np.ndarray:
        return self.data[:, : self.n]


def _centre(median: np.ndarray, realised: np.ndarray) -> tuple[float, float]:
    """Intercept and slope (clipped to [0, 1]) of realised on forecast median returns; the intercept is the
    median residual, so one wild outcome cannot move it far."""
    var = float(np.var(median))
    b = float(np.clip(np.cov(median, realised, bias=True)[0, 1] / var, 0.0, 1.0)) if var > 0 else 1.0
    return float(np.median(realised - b * median)), b


def _half_bands(below: np.ndarray, above: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half-bands below / above the median, each at least a quarter of their mean: a forecast whose samples
    bunch on one side of the median cannot make a score (and then a band) explode."""
    floor = np.maximum(0.25 * (below + above) / 2.0, _TINY)
    return np.maximum(below, floor), np.maximum(above, floor)


def _score(residual: float, below: float, above: float, shift: float) -> float:
    """One outcome's score (see ``_scores``)."""
    d = residual - shift
    return d / max(above, _TINY) if d >= 0 else -d / max(below, _TINY)


def _scores(residual: np.ndarray, below: np.ndarray, above: np.ndarray, shift: float) -> np.ndarray:
    """Distance of each outcome from the (shifted) median in units of the raw half-band on its side."""
    d = residual - shift
    return np.where(d >= 0, d / np.maximum(above, _TINY), -d / np.maximum(below, _TINY))


class OnlineCalibrator:
    """Adaptive conformal calibration of one asset's forecast bands, per horizon 1..pred_len.

    Use it in time order: ``observe(close)`` for every bar, ``apply(forecast)`` for a forecast made at the
    last observed bar (it returns the calibrated forecast and remembers the raw one to score later)::

        cal = OnlineCalibrator(target=0.8)
        for t in range(len(closes)):
            cal.observe(closes[t])
            if t has a forecast:
                calibrated = cal.apply(forecast_made_at_t)

    With ``shift`` (default) each step is also re-centred on ``a + b * median``, fitted on recent outcomes
    (``b`` in [0, 1]): a biased forecaster is moved by its bias, one whose median is noise towards its
    average outcome, before the spread is rescaled.
    """

    def __init__(
        self,
        target: float = 0.8,
        *,
        gamma: float = 0.005,
        window: int = 500,
        warmup: int = 20,
        shift: bool = True,
    ) -> None:
        self.spec = CalibrationSpec(
            target=target, gamma=gamma, window=window, warmup=warmup, shift=shift
        ).check()
        self.target = float(target)
        self._alpha: list[float] = []
        self._history: list[_History] = []
        self._pending: dict[int, list[_Pending]] = {}
        self._bar = -1
        self.last_scales: np.ndarray = np.empty(0)  # k issued to the last applied forecast, per step
        self.last_shifts: np.ndarray = np.empty(0)  # median shift issued to it, per step (return units)
        # per horizon: outcomes scored, inside the raw band, inside the issued band (calibrated ones only)
        self._scored: list[int] = []
        self._raw_hits: list[int] = []
        self._issued: list[int] = []
        self._issued_hits: list[int] = []

    @classmethod
    def from_spec(cls, spec: CalibrationSpec, *, target: float = 0.8) -> OnlineCalibrator:
        """A calibrator from a spec (its ``target`` when set, else ``target``)."""
        return cls(spec.target if spec.target is not None else target, gamma=spec.gamma, window=spec.window,
                   warmup=spec.warmup, shift=spec.shift)  # fmt: skip

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
        residual = realised - item.median
        self._scored[j] += 1
        self._raw_hits[j] += _score(residual, item.below, item.above, 0.0) <= 1.0
        if not math.isnan(item.scale):
            miss = _score(residual, item.below, item.above, item.shift) > item.scale
            self._issued[j] += 1
            self._issued_hits[j] += not miss
            alpha = self._alpha[j] + self.spec.gamma * ((1.0 - self.target) - miss)
            self._alpha[j] = min(max(alpha, 0.0), 1.0)  # 0: the widest band (max score) already missed
        self._history[j].add(item.median, realised, item.below, item.above)

    def _grow(self, pred_len: int) -> None:
        while len(self._alpha) < pred_len:
            self._alpha.append(1.0 - self.target)
            self._history.append(_History(self.spec.window))
            for counts in (self._scored, self._raw_hits, self._issued, self._issued_hits):
                counts.append(0)

    # ------------------------------------------------------------------ rescaling

    def scales(self, pred_len: int) -> np.ndarray:
        """Current band multiplier ``k`` per horizon [pred_len]; NaN where a horizon is still warming up."""
        return self._calibration(np.zeros(pred_len))[0]

    def _calibration(self, median: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Band multiplier k and median shift per horizon for a forecast with these medians [H] (NaN, 0 in warm-up).

        With ``shift`` the centre is ``a + b * median``, fitted on the resolved steps (least squares, b clipped
        to [0, 1], a the median remaining residual): a forecaster whose median is noise is pulled to its
        average outcome, one whose median is informative keeps it.
        """
        pred_len = len(median)
        self._grow(pred_len)
        k, shift = np.full(pred_len, np.nan), np.zeros(pred_len)
        for j in range(pred_len):
            hist = self._history[j]
            n = hist.n
            if n < self.spec.warmup:
                continue
            past, realised, below, above = hist.view()
            a, b = _centre(past, realised) if self.spec.shift else (0.0, 1.0)
            shift[j] = a + (b - 1.0) * float(median[j])
            scores = _scores(realised - past, below, above, a + (b - 1.0) * past)
            rank = math.ceil((n + 1) * (1.0 - self._alpha[j]))  # finite-sample conformal quantile
            k[j] = 0.0 if rank <= 0 else float(np.partition(scores, min(rank, n) - 1)[min(rank, n) - 1])
        return k, shift

    def _band(self, returns: np.ndarray) -> np.ndarray:
        """Median and central ``target`` band edges of cumulative returns [..., S, H]: [3, ..., H] (med, lo, hi)."""
        lo_q, hi_q = (1.0 - self.target) / 2.0, (1.0 + self.target) / 2.0
        lo, med, hi = np.quantile(np.asarray(returns, np.float64), [lo_q, 0.5, hi_q], axis=-2)
        return np.stack([med, lo, hi])

    def _issue(self, band: np.ndarray, base: float) -> tuple[np.ndarray, np.ndarray]:
        """(k, shift) [H] for a forecast made now (band [3, H] from ``_band``); its steps are queued for scoring."""
        med, lo, hi = band
        below, above = _half_bands(med - lo, hi - med)
        k, shift = self._calibration(med)
        self.last_scales, self.last_shifts = k, shift
        for j in range(len(med)):
            self._pending.setdefault(self._bar + j + 1, []).append(
                _Pending(j + 1, float(med[j]), float(below[j]), float(above[j]), base, float(k[j]),
                         float(shift[j]))
            )  # fmt: skip
        return k, shift

    def apply_paths(self, paths: np.ndarray, last_close: float) -> np.ndarray:
        """Calibrated close paths [S, H] of a forecast made at the last observed bar (float64)."""
        paths = np.asarray(paths, np.float64)
        if paths.ndim != 2 or paths.shape[1] < 1:
            raise DataError(f"paths must be [samples, horizon], got shape {paths.shape}")
        base = _check_base(last_close)
        returns = paths / base - 1.0
        band = self._band(returns)
        k, shift = self._issue(band, base)
        return base * (1.0 + _rescale(returns, band[0], k, shift))

    def apply(self, forecast: Forecast) -> Forecast:
        """The calibrated forecast (price columns rescaled about the close's median return, per step).

        A forecast made at the last observed bar; during a horizon's warm-up its step is left as it is.
        """
        base = _check_base(forecast.last_close)
        band = self._band(forecast.paths("close").astype(np.float64) / base - 1.0)
        (k, shift), med = self._issue(band, base), band[0]
        if np.isnan(k).all():
            return forecast
        samples = forecast.samples.copy()
        for name in _PRICE_COLUMNS:
            if name in forecast.columns:
                c = forecast.columns.index(name)
                returns = samples[:, :, c].astype(np.float64) / base - 1.0
                samples[:, :, c] = (base * (1.0 + _rescale(returns, med, k, shift))).astype(samples.dtype)
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


def _rescale(returns: np.ndarray, median: np.ndarray, k: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Returns [S, H] scaled about the median by k and moved by ``shift`` per step; NaN k (warm-up) leaves the
    step as it is. Kept above -100 % so a very wide band never produces a non-positive price."""
    nan = np.isnan(k)
    k, shift = np.where(nan, 1.0, k), np.where(nan, 0.0, shift)
    out = median + shift + k * (returns - median)
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
        scales[n], shift = cal._issue(bands[:, n], base)  # as apply_paths, with the bands computed at once
        out[n] = base * (1.0 + _rescale(paths[n] / base - 1.0, bands[0, n], scales[n], shift))
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
