"""Rolling-origin forecast evaluation of Kronos against simple baselines on one OHLCV series.

Each origin ``t`` is a bar inside the evaluation range; its window is the ``lookback`` bars strictly
before ``t`` and its targets are the closes of bars ``t .. t + horizon - 1``. Kronos forecasts all
windows through ``KronosPredictor.forecast_batch`` (the batched fast path); each baseline sees the
same windows; :mod:`kronos_model.metrics` scores every method per horizon on the same targets.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .baselines import BASELINES, run_baseline
from .calibration import CalibrationSpec, calibrate_paths
from .data import check_time_order, frame_timestamps, prepare_ohlcv
from .errors import DataError, InsufficientHistoryError, LookaheadError, SamplingError
from .evaluation_result import CALIBRATED, KRONOS, EvaluationResult, finite_or_none
from .metrics import METRIC_NAMES, score_paths
from .series import PreparedSeries

__all__ = ["EvaluationResult", "evaluate", "origin_positions"]  # EvaluationResult: see evaluation_result

logger = logging.getLogger(__name__)


def _bound(value: object, stamps: pd.DatetimeIndex, what: str) -> pd.Timestamp | None:
    """A start/end bound as a Timestamp comparable with ``stamps`` (time zone matched)."""
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} {value!r} is not a date: {exc}") from exc
    if stamps.tz is not None and ts.tz is None:
        return ts.tz_localize(stamps.tz)
    if stamps.tz is None and ts.tz is not None:
        return ts.tz_convert("UTC").tz_localize(None)
    return ts


def origin_positions(
    stamps: pd.DatetimeIndex,
    lookback: int,
    horizon: int,
    *,
    start: object = None,
    end: object = None,
    stride: int = 1,
) -> np.ndarray:
    """Row positions of the forecast origins, int64 [N].

    An origin ``p`` needs ``lookback`` bars before it (rows ``p - lookback .. p - 1``) and its
    ``horizon`` target bars ``p .. p + horizon - 1`` inside ``[start, end]`` (inclusive timestamps);
    origins are then thinned to every ``stride``-th one.
    """
    if lookback < 2 or horizon < 1 or stride < 1:
        raise DataError(f"need lookback >= 2, horizon >= 1, stride >= 1; got {lookback}, {horizon}, {stride}")
    lo, hi = _bound(start, stamps, "start"), _bound(end, stamps, "end")
    pos = np.arange(lookback, len(stamps) - horizon + 1)
    keep = np.ones(len(pos), bool)
    if lo is not None:
        keep &= stamps[pos] >= lo
    if hi is not None:
        keep &= stamps[pos + horizon - 1] <= hi
    pos = pos[keep][::stride]
    if len(pos) == 0:
        raise InsufficientHistoryError(
            f"no forecast origin fits: {len(stamps)} bars from {stamps[0]} to {stamps[-1]}, lookback {lookback}, "
            f"horizon {horizon}, range {start} .. {end}; widen the range or shorten lookback/horizon"
        )
    return pos


def _kronos_paths(
    predictor: Any,
    feats: pd.DataFrame,
    positions: np.ndarray,
    lookback: int,
    horizon: int,
    sample_count: int,
    sampling: dict[str, Any],
) -> np.ndarray:
    """Close paths float64 [N, S, H] of the windows ending before each origin, in one batched call.

    A predictor with ``forecast_series`` cuts the windows from the series prepared once; anything else
    gets one DataFrame per window through ``forecast_batch`` (same numbers).
    """
    if callable(getattr(predictor, "forecast_series", None)):
        series = PreparedSeries.from_arrays(feats.to_numpy(), pd.DatetimeIndex(feats.index), name="evaluate")
        forecasts = predictor.forecast_series(
            series, positions, horizon, lookback=lookback, sample_count=sample_count, **sampling
        )
    else:
        frames = [feats.iloc[p - lookback : p] for p in positions]
        forecasts = predictor.forecast_batch(frames, horizon, sample_count=sample_count, **sampling)
    for p, fc in zip(positions, forecasts, strict=True):
        if fc.history_end is not None and pd.Timestamp(fc.history_end) != feats.index[p - 1]:
            raise LookaheadError(
                f"forecast history ends at {fc.history_end}, window ends at {feats.index[p - 1]}"
            )
    return np.stack([fc.paths("close") for fc in forecasts]).astype(np.float64)


def evaluate(
    df: pd.DataFrame,
    predictor: Any = None,
    *,
    lookback: int,
    horizon: int,
    sample_count: int = 20,
    start: object = None,
    end: object = None,
    stride: int = 1,
    baselines: Sequence[str] = tuple(BASELINES),
    seed: int = 0,
    T: float = 1.0,
    top_k: int = 0,
    top_p: float = 0.9,
    batch_size: int = 64,
    level: float = 0.8,
    name: str = "series",
    verbose: bool = False,
    anchor: bool = False,
    calibration: CalibrationSpec | Mapping[str, Any] | bool | None = True,
) -> EvaluationResult:
    """Score Kronos (when ``predictor`` is given) and ``baselines`` on rolling origins of ``df``.

    Parameters
    ----------
    df : pd.DataFrame
        OHLCV bars with a DatetimeIndex or a ``timestamp`` column (validated by ``prepare_ohlcv``).
    predictor : KronosPredictor or None
        Anything with ``forecast_batch``; None scores the baselines only.
    lookback, horizon, sample_count, stride : int
        Window length, forecast steps H, sample paths S per window, bars between origins.
    start, end : date-like or None
        Inclusive range that every target bar must fall in (history may precede ``start``).
    seed : int
        Seeds Kronos sampling and, with the origin position, every baseline window.
    calibration : CalibrationSpec, mapping, bool or None
        Also score ``kronos_calibrated``: Kronos with its bands calibrated online (adaptive conformal
        inference, target coverage ``level`` unless the spec sets one); False / None: raw only.

    Returns
    -------
    EvaluationResult
        Scores per (method, horizon) plus the paths; see ``to_markdown``, ``to_json``, ``save``.
    """
    if sample_count < 1:
        raise SamplingError(f"sample_count must be >= 1, got {sample_count}")
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise DataError(f"unknown baseline(s) {unknown}; choose from {sorted(BASELINES)}")
    stamps = frame_timestamps(df)
    check_time_order(stamps, name=name)
    feats = prepare_ohlcv(df, name=name)
    feats.index = stamps
    positions = origin_positions(stamps, lookback, horizon, start=start, end=end, stride=stride)
    close = feats["close"].to_numpy()
    realised = np.stack([close[p : p + horizon] for p in positions])
    last_close = close[positions - 1]
    paths: dict[str, np.ndarray] = {}
    calibrated: dict[str, Any] | None = None
    if predictor is not None:
        sampling = {
            "T": T,
            "top_k": top_k,
            "top_p": top_p,
            "seed": seed,
            "batch_size": batch_size,
            "anchor": anchor,
        }
        paths[KRONOS] = _kronos_paths(
            predictor, feats, positions, lookback, horizon, sample_count, {**sampling, "verbose": verbose}
        )
        spec = CalibrationSpec.coerce(None if calibration is False else calibration, target=level)
        if spec is not None:
            # issued at the last history bar (origin - 1): only outcomes up to that bar are used
            paths[CALIBRATED], scales = calibrate_paths(paths[KRONOS], last_close, positions - 1, close, spec)
            calibrated = {
                "spec": spec.to_dict(),
                "mean_scale": [finite_or_none(np.mean(col[~np.isnan(col)])) if (~np.isnan(col)).any() else None
                               for col in scales.T],
                "raw_origins": [int(v) for v in np.isnan(scales).sum(axis=0)],  # warm-up: raw band issued
            }  # fmt: skip
    for i, b in enumerate(baselines, 1):
        logger.info("baseline %d/%d %s: fitting %d windows ...", i, len(baselines), b, len(positions))
        paths[b] = np.stack(
            [
                run_baseline(b, close[p - lookback : p], horizon, sample_count, (seed, int(p)))
                for p in positions
            ]
        )
        logger.info("baseline %s: %d windows", b, len(positions))
    if not paths:
        raise DataError("nothing to evaluate: give a predictor or at least one baseline")
    frames_out = []
    for method, arr in paths.items():
        scores = score_paths(arr, realised, last_close, level=level, stride=stride)
        frame = pd.DataFrame({k: scores[k] for k in METRIC_NAMES})
        frame.index = pd.MultiIndex.from_product(
            [[method], range(1, horizon + 1)], names=["method", "horizon"]
        )
        frames_out.append(frame)
    settings = {
        "lookback": lookback, "horizon": horizon, "sample_count": sample_count, "stride": stride,
        "start": start, "end": end, "seed": seed, "T": T, "top_k": top_k, "top_p": top_p, "level": level,
        "baselines": list(baselines), "model": getattr(predictor, "name", None),
        "model_fingerprint": getattr(predictor, "fingerprint", None),
    }  # fmt: skip
    return EvaluationResult(
        calibration=calibrated,
        name=name,
        settings=settings,
        origins=stamps[positions],
        positions=positions,
        scores=pd.concat(frames_out),
        paths=paths,
        realised=realised,
        last_close=last_close,
        close=feats["close"],
    )
