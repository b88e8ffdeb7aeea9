"""The reference's ``predict`` / ``predict_batch``: mean forecasts as DataFrames indexed by ``y_timestamp``.

Kept signature for signature (positional ``T``, ``top_k``, ``top_p``, ``sample_count``, ``verbose``) so code
written for the official ``KronosPredictor`` runs unchanged; :class:`kronos_model.KronosPredictor` mixes it in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from .data import FEATURE_COLUMNS
from .errors import DataError
from .series import ForecastWindow


class ReferenceAPI:
    """``predict`` and ``predict_batch`` on top of a predictor's ``_window`` and ``_generate_all``."""

    def predict(
        self,
        df: pd.DataFrame,
        x_timestamp,
        y_timestamp,
        pred_len: int,
        T: float = 1.0,
        top_k: int = 0,
        top_p: float = 0.9,
        sample_count: int = 1,
        verbose: bool = True,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> pd.DataFrame:
        """Mean forecast (reference signature): DataFrame of the six columns indexed by ``y_timestamp``."""
        window = self._window(df, x_timestamp, y_timestamp, pred_len, "df")
        paths = self._generate_all(
            [window], pred_len, sample_count, T, top_k, top_p, seed, generator, use_cache, None, False
        )
        return self._mean_frame(window, paths[0])

    def predict_batch(
        self,
        df_list: Sequence[pd.DataFrame],
        x_timestamp_list,
        y_timestamp_list,
        pred_len: int,
        T: float = 1.0,
        top_k: int = 0,
        top_p: float = 0.9,
        sample_count: int = 1,
        verbose: bool = True,
        *,
        seed: int | Sequence[int] | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        batch_size: int | None = None,
    ) -> list[pd.DataFrame]:
        """Mean forecasts of several windows in one batched call; lookbacks may differ in length."""
        for arg, label in (
            (df_list, "df_list"),
            (x_timestamp_list, "x_timestamp_list"),
            (y_timestamp_list, "y_timestamp_list"),
        ):
            if not isinstance(arg, list | tuple):
                raise DataError(f"{label} must be a list or tuple, got {type(arg).__name__}")
        if not len(df_list) == len(x_timestamp_list) == len(y_timestamp_list):
            raise DataError(
                f"df_list, x_timestamp_list and y_timestamp_list must have equal lengths, got "
                f"{len(df_list)}, {len(x_timestamp_list)}, {len(y_timestamp_list)}"
            )
        if not df_list:
            raise DataError("df_list is empty")
        windows = [
            self._window(df, xs, ys, pred_len, f"df_list[{i}]")
            for i, (df, xs, ys) in enumerate(zip(df_list, x_timestamp_list, y_timestamp_list))
        ]
        paths = self._generate_all(
            windows, pred_len, sample_count, T, top_k, top_p, seed, generator, use_cache, batch_size, False
        )
        return [self._mean_frame(w, p) for w, p in zip(windows, paths)]

    @staticmethod
    def _mean_frame(window: ForecastWindow, paths: np.ndarray) -> pd.DataFrame:
        mean_norm = np.mean(paths, axis=0)  # average in normalised space, as the reference does
        values = mean_norm * (window.std + 1e-5) + window.mean
        return pd.DataFrame(values, columns=list(FEATURE_COLUMNS), index=window.y_index)
