"""YAML backtest config: keys and types (step 1), cross-field rules (step 2), --set overrides."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from kronos_strategies.config import BacktestConfig, apply_overrides, load_config, register_section
from kronos_strategies.config import backtest as config_backtest
from kronos_strategies.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["sp500_threshold", "crypto_intraday"])
def test_bundled_backtests_validate(name):
    cfg = load_config(ROOT / "backtests" / f"{name}.yaml")
    assert isinstance(cfg, BacktestConfig)
    assert cfg.name == name
    assert cfg.model.name is None  # the bundled model


def test_sp500_yaml_is_the_held_out_period():
    cfg = load_config(ROOT / "backtests" / "sp500_threshold.yaml")
    assert (cfg.data.dataset, cfg.dates.start, cfg.dates.end) == ("sp500", "2015-01-01", "2018-12-31")


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"indicatr": {}}, r"unknown key 'indicatr'; did you mean 'indicator'\?"),
        ({"indicator": {"lookbak": 64}}, r"unknown key 'indicator.lookbak'; did you mean 'indicator.lookback'\?"),
        ({"broker": {"comission": 0.1}}, r"unknown key 'broker.comission'; did you mean 'broker.commission'"),
        ({"zzz": 1}, r"unknown key 'zzz' \(valid keys: .*indicator"),
    ],
)  # fmt: skip
def test_unknown_keys_name_the_key_and_the_closest_one(raw, match):
    with pytest.raises(ConfigError, match=match):
        load_config({"data": {"dataset": "sp500"}, **raw})


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"indicator": {"lookback": "long"}}, r"'indicator.lookback' must be of type int, got 'long'"),
        ({"indicator": {"lookback": True}}, r"'indicator.lookback' must be of type int"),
        ({"broker": {"cash": "lots"}}, r"'broker.cash' must be of type float"),
        ({"indicator": {"quantiles": [0.1]}}, r"'indicator.quantiles' must have 2 values"),
        ({"strategy": {"params": [1, 2]}}, r"'strategy.params' must be of type dict"),
        ({"engine": "fast"}, r"'engine' must be a mapping"),
    ],
)  # fmt: skip
def test_wrong_types_name_the_key(raw, match):
    with pytest.raises(ConfigError, match=match):
        load_config({"data": {"dataset": "sp500"}, **raw})


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"data": {}}, "exactly one of 'data.path'"),
        ({"data": {"dataset": "sp500", "path": "x.csv"}}, "exactly one of 'data.path'"),
        ({"indicator": {"pred_len": 3, "horizon": 5}}, r"'indicator.horizon' must be in \[1, pred_len=3\]"),
        ({"indicator": {"quantiles": [0.9, 0.1]}}, "0 < lower < upper < 1"),
        ({"indicator": {"every": 0}}, "'indicator.every' must be >= 1"),
        ({"dates": {"start": "2018-01-01", "end": "2015-01-01"}}, "'dates.start' must be before 'dates.end'"),
        ({"dates": {"start": "soon"}}, "'dates.start' must be an ISO date"),
        ({"model": {"predictor": "p"}}, "'model.predictor' and 'model.tokenizer' go together"),
        ({"broker": {"cash": 0}}, "'broker.cash' must be > 0"),
        ({"benchmark": {"type": "SPY"}}, "'benchmark.type' must be 'buy_and_hold'"),
        ({"engine": {"mode": "fast"}}, "'engine.mode' must be 'vectorised' or 'event'"),
    ],
)  # fmt: skip
def test_cross_field_rules(raw, match):
    raw = {"data": {"dataset": "sp500"}, **raw} if "data" not in raw else raw
    with pytest.raises(ConfigError, match=match):
        load_config(raw)


def test_yaml_dates_become_iso_strings(tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text("data: {dataset: sp500}\ndates: {start: 2015-01-01, end: 2016-06-30}\n")
    cfg = load_config(path)
    assert (cfg.dates.start, cfg.dates.end) == ("2015-01-01", "2016-06-30")
    assert cfg.name == "b"  # from the file name


def test_set_overrides_parse_values_and_are_validated():
    cfg = load_config(
        {"data": {"dataset": "sp500"}},
        [
            "strategy.params.enter=0.25",
            "indicator.quantiles=[0.05, 0.95]",
            "engine.progress=false",
            "model.name=x/y",
        ],
    )
    assert cfg.strategy.params == {"enter": 0.25}
    assert cfg.indicator.quantiles == (0.05, 0.95)
    assert cfg.engine.progress is False
    assert cfg.model.name == "x/y"
    with pytest.raises(
        ConfigError, match="unknown key 'indicator.sample_cnt'; did you mean 'indicator.sample_count'"
    ):
        load_config({"data": {"dataset": "sp500"}}, ["indicator.sample_cnt=4"])
    with pytest.raises(ConfigError, match="expects key=value"):
        apply_overrides({}, ["indicator.lookback"])


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("data:\n  dataset: sp500\n indicator: [\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_optional_blocks_are_typed_fields_loaded_and_validated():
    from kronos_strategies.config import PaperSection, SweepConfig, UniverseConfig, WalkForwardConfig

    base = {"data": {"dataset": "sp500"}}
    cfg = load_config(base)
    assert (cfg.finetune, cfg.sweep, cfg.paper, cfg.universe) == (None, None, None, None)
    assert "finetune" not in cfg.to_dict()
    small = {**base, "indicator": {"lookback": 64}}
    cfg = load_config(
        {**small, "finetune": None, "paper": {"symbol": "BTC/USDT"}}
    )  # an empty block: defaults
    assert cfg.finetune == WalkForwardConfig() and isinstance(cfg.paper, PaperSection)
    with pytest.warns(DeprecationWarning, match="BacktestConfig.sections is deprecated"):
        assert cfg.sections == {
            "finetune": cfg.finetune,
            "paper": cfg.paper,
        }  # the old view, one more release
    assert cfg.to_dict()["finetune"]["every"] == 63 and cfg.to_dict()["paper"]["symbol"] == "BTC/USDT"
    uni = load_config({"universe": {"files": "x/*.csv"}}).universe
    assert isinstance(uni, UniverseConfig) and uni.files == "x/*.csv"
    assert SweepConfig().objective == "sharpe"
    with pytest.raises(ConfigError, match="unknown key 'finetune.stepz'; did you mean 'finetune.steps'"):
        load_config({**base, "finetune": {"stepz": 3}})
    with pytest.raises(ConfigError, match="unknown key 'finetun'; did you mean 'finetune'"):
        load_config({**base, "finetun": {}})
    with pytest.raises(ConfigError, match="'finetune.init' must be 'base' or 'previous'"):
        load_config({**base, "finetune": {"init": "scratch"}})
    with pytest.raises(ConfigError, match="'sweep.method' must be 'grid' or 'random'"):
        load_config({**base, "sweep": {"method": "bayes"}})
    with pytest.raises(ConfigError, match="paper.symbol is required"):
        load_config({**base, "paper": {}})
    with pytest.raises(ConfigError, match="'universe:' replaces 'data:'"):
        load_config({**base, "universe": {"files": "x/*.csv"}})


def test_register_section_still_works_for_one_release_with_a_deprecation_warning(monkeypatch):
    @dataclass
    class Extra:
        grid: dict | None = None
        workers: int = 1

    def check(section: Extra, cfg: BacktestConfig) -> None:
        if section.workers < 1:
            raise ConfigError("'extra.workers' must be >= 1")

    monkeypatch.setattr(config_backtest, "_EXTRA", {})
    with pytest.warns(DeprecationWarning, match="register_section is deprecated"):
        register_section("extra", Extra, check)
    cfg = load_config({"data": {"dataset": "sp500"}, "extra": {"workers": 3}})
    assert cfg.extra["extra"] == Extra(workers=3)
    assert cfg.to_dict()["extra"] == {"grid": None, "workers": 3}
    with pytest.raises(ConfigError, match="unknown key 'extra.worker'; did you mean 'extra.workers'"):
        load_config({"data": {"dataset": "sp500"}, "extra": {"worker": 3}})
    with pytest.raises(ConfigError, match="'extra.workers' must be >= 1"):
        load_config({"data": {"dataset": "sp500"}, "extra": {"workers": 0}})
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="built-in section"):
        register_section("sweep", Extra)
