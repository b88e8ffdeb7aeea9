"""A whole backtest YAML: the common blocks plus the optional ``finetune:``, ``sweep:``, ``paper:`` and
``universe:`` blocks, loaded with ``yaml.safe_load`` into typed dataclasses and validated in two steps.

Step 1 checks every key and type (:mod:`.schema`); step 2 runs one validator per block, each message naming
the key to change. ``--set a.b=value`` overrides are applied to the raw mapping first, so they are validated
exactly like the file.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    check_benchmark,
    check_broker,
    check_data,
    check_dates,
    check_engine,
    check_indicator,
    check_model,
)
from .finetune import WalkForwardConfig, check_finetune
from .paper import PaperSection, check_paper_symbol
from .schema import apply_overrides, build_dataclass, check_names, read_yaml
from .sweep import SweepConfig, check_sweep
from .universe import UniverseConfig, check_universe

__all__ = ["OPTIONAL_BLOCKS", "BacktestConfig", "load_config", "register_section"]

# The optional top-level blocks and their types (each is a field of BacktestConfig, None when absent).
OPTIONAL_BLOCKS: dict[str, type] = {
    "finetune": WalkForwardConfig,
    "sweep": SweepConfig,
    "paper": PaperSection,
    "universe": UniverseConfig,
}


@dataclass
class BacktestConfig:
    """A whole backtest; an optional block that is absent is None."""

    name: str = "backtest"
    data: DataConfig = field(default_factory=DataConfig)
    dates: DatesConfig = field(default_factory=DatesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    indicator: IndicatorConfig = field(default_factory=IndicatorConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    finetune: WalkForwardConfig | None = None  # walk-forward fine-tuning (kronos_strategies.walkforward)
    sweep: SweepConfig | None = None  # parameter sweep (kronos_strategies.sweep)
    paper: PaperSection | None = None  # paper / live trading (kronos_strategies.paper)
    universe: UniverseConfig | None = None  # many assets instead of data: (kronos_strategies.universe)
    extra: dict[str, Any] = field(default_factory=dict, init=False)  # blocks of register_section (deprecated)
    source: str | None = field(default=None, init=False)  # the YAML file it came from, if any

    @property
    def sections(self) -> dict[str, Any]:
        """Deprecated (one release): the optional blocks that are set, by name; read ``cfg.finetune`` etc."""
        warnings.warn(
            "BacktestConfig.sections is deprecated: read cfg.finetune, cfg.sweep, cfg.paper, cfg.universe "
            "(None when absent) or cfg.extra",
            DeprecationWarning,
            stacklevel=2,
        )
        given = {name: getattr(self, name) for name in OPTIONAL_BLOCKS if getattr(self, name) is not None}
        return given | self.extra

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping (for the run manifest); optional blocks appear only when set."""
        out = dataclasses.asdict(self)
        extra = out.pop("extra")
        out.pop("source")
        for name in OPTIONAL_BLOCKS:
            if out[name] is None:
                del out[name]
        for key, value in extra.items():
            out[key] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
        return out

    @property
    def output_dir(self) -> Path:
        """The report directory with ``{name}`` filled in."""
        return Path(self.output.dir.replace("{name}", self.name))


def _check_sweep(cfg: BacktestConfig) -> None:
    """The sweep block's own rules, then every swept value and source as a runnable backtest."""
    check_sweep(cfg.sweep, universe=cfg.universe is not None)
    from ..sweep.plan import check_sweep_runs  # strategy classes (backtrader): only for a sweep block

    check_sweep_runs(cfg.sweep, cfg)


_CHECK_BLOCK: dict[str, Callable[[BacktestConfig], None]] = {
    "finetune": lambda cfg: check_finetune(cfg.finetune, cfg.indicator),
    "sweep": _check_sweep,
    "paper": lambda cfg: check_paper_symbol(cfg.paper, universe=cfg.universe is not None),  # rest: as built
    "universe": lambda cfg: check_universe(cfg.universe, cfg.data, cfg.dates, cfg.indicator),
}


def _validate(cfg: BacktestConfig, order: Sequence[str]) -> None:
    """Step 2: the common blocks, then the optional ones in the order the file gives them."""
    check_data(cfg.data, cfg.dates, has_source=cfg.universe is None)  # universe: replaces data:
    check_dates(cfg.dates)
    check_model(cfg.model)
    check_indicator(cfg.indicator)
    check_broker(cfg.broker)
    check_benchmark(cfg.benchmark)
    check_engine(cfg.engine)
    for name in order:
        if name in _CHECK_BLOCK:
            _CHECK_BLOCK[name](cfg)
        elif _EXTRA[name][1] is not None:
            _EXTRA[name][1](cfg.extra[name], cfg)


def load_config(source: str | Path | Mapping[str, Any], overrides: Sequence[str] = ()) -> BacktestConfig:
    """Read a YAML file (or a mapping), apply ``--set`` overrides and validate in two steps."""
    path = None if isinstance(source, Mapping) else Path(source)
    raw = dict(source) if path is None else read_yaml(path)
    raw = apply_overrides(raw, overrides)
    if path is not None:
        raw.setdefault("name", path.stem)
    check_names(raw, _BLOCKS | set(_EXTRA), "")
    order = [name for name in raw if name in OPTIONAL_BLOCKS or name in _EXTRA]
    # optional blocks first, in file order; an empty block (``finetune:``) means all defaults, not absent
    optional = {name: build_dataclass({**OPTIONAL_BLOCKS, **{k: v[0] for k, v in _EXTRA.items()}}[name],
                                      raw.pop(name), name) for name in order}  # fmt: skip
    cfg = build_dataclass(BacktestConfig, raw, "")
    for name, block in optional.items():
        if name in OPTIONAL_BLOCKS:
            setattr(cfg, name, block)
        else:
            cfg.extra[name] = block
    cfg.source = None if path is None else str(path)
    _validate(cfg, order)
    return cfg


# ----------------------------------------------------------------------------- deprecated: register_section

_BLOCKS = {f.name for f in dataclasses.fields(BacktestConfig) if f.init}
_EXTRA: dict[str, tuple[type, Callable[[Any, BacktestConfig], None] | None]] = {}


def register_section(
    name: str, cls: type, validate: Callable[[Any, BacktestConfig], None] | None = None
) -> None:
    """Deprecated (one release): accept a top-level ``name:`` block into ``cfg.extra[name]``.

    The built-in blocks are typed fields of :class:`BacktestConfig` now; a block of your own can be read
    from the raw YAML by your own code instead.
    """
    warnings.warn(
        "register_section is deprecated: finetune, sweep, paper and universe are typed fields of BacktestConfig; "
        "read a block of your own from the YAML mapping yourself",
        DeprecationWarning,
        stacklevel=2,
    )
    if name in _BLOCKS:
        raise ValueError(f"{name!r} is a built-in section of the backtest config")
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"section {name!r} needs a dataclass, got {cls!r}")
    _EXTRA[name] = (cls, validate)
