"""The backtest YAML: ``schema`` (keys and types, overrides), ``blocks`` (the common blocks and their rules),
one module per optional block (``finetune``, ``sweep``, ``paper``, ``universe``) and ``backtest``
(:class:`BacktestConfig`, :func:`load_config`). Nothing here imports the parts that use a block.
"""

from __future__ import annotations

from .backtest import OPTIONAL_BLOCKS, BacktestConfig, load_config, register_section
from .blocks import (
    BenchmarkConfig,
    BrokerConfig,
    DataConfig,
    DatesConfig,
    EngineConfig,
    IndicatorConfig,
    ModelConfig,
    OutputConfig,
    StrategyConfig,
    check_data_source,
)
from .finetune import WalkForwardConfig
from .paper import PaperSection
from .schema import apply_overrides, build_dataclass, check_names, check_param_types
from .sweep import SweepConfig
from .universe import UniverseConfig

__all__ = [
    "OPTIONAL_BLOCKS",
    "BacktestConfig",
    "BenchmarkConfig",
    "BrokerConfig",
    "DataConfig",
    "DatesConfig",
    "EngineConfig",
    "IndicatorConfig",
    "ModelConfig",
    "OutputConfig",
    "PaperSection",
    "StrategyConfig",
    "SweepConfig",
    "UniverseConfig",
    "WalkForwardConfig",
    "apply_overrides",
    "build_dataclass",
    "check_data_source",
    "check_names",
    "check_param_types",
    "load_config",
    "register_section",
]
