"""kronos_model: the Kronos candlestick foundation model (tokenizer, predictor, fast inference, fine-tuning).

Checkpoint-compatible with the released NeoQuasar/Kronos-* weights; never imports backtrader.
"""

from __future__ import annotations

from . import _threads  # noqa: F401  (first: sets the OpenMP wait policy before torch loads)
from .calibration import CalibrationSpec, OnlineCalibrator, calibrate_forecasts
from .config import KronosConfig, KronosTokenizerConfig
from .errors import (
    ArgumentError,
    CheckpointError,
    ConfigError,
    DataError,
    ExchangeError,
    HubUnavailableError,
    KronosError,
    LookaheadError,
    SamplingError,
    TrainingError,
    UnknownNameError,
)
from .forecast import Forecast
from .predictor import KronosPredictor
from .tokenizer import KronosTokenizer
from .transformer import Kronos

__all__ = [
    "CalibrationSpec",
    "OnlineCalibrator",
    "calibrate_forecasts",
    "ArgumentError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "ExchangeError",
    "HubUnavailableError",
    "LookaheadError",
    "SamplingError",
    "TrainingError",
    "UnknownNameError",
    "Forecast",
    "Kronos",
    "KronosConfig",
    "KronosError",
    "KronosPredictor",
    "KronosTokenizer",
    "KronosTokenizerConfig",
    "load_default",
]


def load_default(device: str | None = "cpu") -> KronosPredictor:
    """The bundled offline model (``kronos-bt/nano``), ready to forecast."""
    return KronosPredictor.from_pretrained(None, device=device)
