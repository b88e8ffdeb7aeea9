"""Walk-forward fine-tuning: schedule, no refit sees what it trades, resume, cache, backtest wiring, report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kronos_model.errors import InsufficientHistoryError
from kronos_model.series import PreparedSeries
from kronos_strategies.cache import ForecastCache
from kronos_strategies.config import load_config
from kronos_strategies.errors import ConfigError
from kronos_strategies.runner import run_backtest
from kronos_strategies.walkforward import (
    SignalSpec,
    WalkForwardConfig,
    make_schedule,
    run_walkforward,
    skill,
    write_walkforward_report,
)
from kronos_strategies.walkforward import engine as walkforward  # fold training calls engine.finetune

from .conftest import tiny_config

SPEC = SignalSpec(lookback=32, pred_len=4, horizon=4, sample_count=4, seed=0)
SETTINGS = dict(every=25, window=120, steps=2, batch_size=8, lookback=24, horizon=4, val_bars=40,
                max_val_windows=8, progress=False)  # fmt: skip


@pytest.fixture
def bars(sp500_bars: pd.DataFrame) -> pd.DataFrame:
    """245 daily bars: 150 of history, then 4 folds of 25 traded bars (the last one 20)."""
    return sp500_bars.loc["2014-01-01":].iloc[:245].copy()


def _run(predictor, bars, root: Path, **overrides):  # noqa: ANN001, ANN202 - test helper
    settings = WalkForwardConfig(**{**SETTINGS, **overrides})
    folds = make_schedule(bars.index, bars.index[150], every=settings.every, window=settings.window)
    return run_walkforward(predictor, bars, folds, settings, SPEC, fold_dir=root / "folds",
                           cache=ForecastCache(root / "forecasts"))  # fmt: skip


_REAL_FINETUNE = walkforward.finetune


class _Interrupted(RuntimeError):
    """Stands for a crash or Ctrl-C in the middle of a walk-forward run."""


class _CountFinetune:
    """Wraps ``kronos_model.training.finetune``, counting calls; raises _Interrupted after ``stop_after``."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.calls, self.stop_after = 0, stop_after
        self.real = _REAL_FINETUNE

    def __call__(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN204
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise _Interrupted("simulated interruption")
        self.calls += 1
        return self.real(*args, **kwargs)


def _weights(result, k: int) -> dict[str, torch.Tensor]:  # noqa: ANN001
    return result.predictor.slots[k].predictor.model.state_dict()


def _samples(result) -> dict[int, np.ndarray]:  # noqa: ANN001
    return {int(p): f.samples for o in result.folds for p, f in zip(o.positions, o.forecasts, strict=True)}


# ------------------------------------------------------------------------------------------ schedule


def test_schedule_fold_boundaries_and_train_ranges(sp500_bars: pd.DataFrame) -> None:
    times = sp500_bars.index
    lo = int(times.searchsorted(pd.Timestamp("2015-01-01")))
    hi = int(times.searchsorted(pd.Timestamp("2015-12-31"), side="right"))
    folds = make_schedule(times, "2015-01-01", "2015-12-31", every=50, window=300)
    assert [f.first for f in folds] == list(range(lo, hi, 50))
    assert [f.stop for f in folds] == [*range(lo + 50, hi, 50), hi]
    for f in folds:
        assert f.train_start == f.first - 300
        assert (f.train_from, f.train_to, f.trade_from) == (
            times[f.first - 300],
            times[f.first - 1],
            times[f.first],
        )
        assert f.train_to < f.trade_from
    expanding = make_schedule(times, "2015-01-01", "2015-12-31", every=50, window="expanding")
    assert all(f.train_start == 0 for f in expanding)


def test_schedule_quarterly_refits_start_each_quarter(sp500_bars: pd.DataFrame) -> None:
    folds = make_schedule(sp500_bars.index, "2015-01-01", "2018-12-31", every="Q", window=504)
    assert len(folds) == 16
    for f in folds:
        assert f.trade_from.month in (1, 4, 7, 10)
        assert (
            sp500_bars.index[f.first - 1].quarter != f.trade_from.quarter
        )  # the previous bar is last quarter's
        assert f.trade_to.quarter == f.trade_from.quarter


def test_schedule_window_longer_than_history_is_an_error(sp500_bars: pd.DataFrame) -> None:
    with pytest.raises(InsufficientHistoryError, match="needs 300 training bars"):
        make_schedule(sp500_bars.index, sp500_bars.index[100], every=50, window=300)


# ------------------------------------------------------------------------------------------ no lookahead


def test_changing_bars_from_fold_k_leaves_fold_k_and_earlier_forecasts_identical(
    counting_predictor, bars: pd.DataFrame, tmp_path: Path
) -> None:
    base = _run(counting_predictor, bars, tmp_path / "a", steps=4)
    k = 1
    cut = base.folds[k].fold.first
    changed = bars.copy()
    changed.iloc[cut:] = changed.iloc[cut:].to_numpy()[
        ::-1
    ]  # bars from fold k's first traded bar on, reversed
    other = _run(counting_predictor, changed, tmp_path / "b", steps=4)

    for j in range(k + 1):
        for name, w in _weights(base, j).items():
            assert torch.equal(w, _weights(other, j)[name]), f"fold {j} weight {name} changed"
    a, b = _samples(base), _samples(other)
    assert all(np.array_equal(a[p], b[p]) for p in a if p < cut)
    assert not all(np.array_equal(a[p], b[p]) for p in a if p >= cut)  # the change did reach later forecasts
    # the change is visible to later folds: fold k+1 validates on it, fold k+2 trains on it
    assert base.folds[k + 1].record["val_loss"] != other.folds[k + 1].record["val_loss"]
    later = _weights(base, k + 2)
    assert not all(torch.equal(w, _weights(other, k + 2)[n]) for n, w in later.items())


def test_router_serves_each_bar_with_its_folds_model(
    counting_predictor, bars: pd.DataFrame, tmp_path: Path
) -> None:
    result = _run(counting_predictor, bars, tmp_path)
    router = result.predictor
    assert router.fold_for(bars.index[149]) == -1  # before the first fold: the base model
    for o in result.folds:
        assert router.fold_for(o.fold.trade_from) == o.fold.index
        assert router.fold_for(o.fold.trade_to) == o.fold.index
        assert o.fold.train_to < o.fold.trade_from
    p = int(result.folds[2].positions[3])
    window = bars.iloc[p - SPEC.lookback + 1 : p + 1]
    kwargs = dict(sample_count=SPEC.sample_count, seed=SPEC.seed, anchor=SPEC.anchor)  # as the run forecast
    again = router.forecast(window, SPEC.pred_len, **kwargs)
    direct = result.predictor.slots[2].predictor.forecast(window, SPEC.pred_len, **kwargs)
    assert np.array_equal(again.samples, direct.samples)
    assert np.array_equal(again.samples, result.folds[2].forecasts[3].samples)
    # windows sliced from one prepared series go to the same models with the same numbers
    ends = [149, *(int(o.positions[1]) + 1 for o in result.folds)]
    sliced = router.forecast_series(PreparedSeries.from_frame(bars), ends, SPEC.pred_len, lookback=SPEC.lookback,
                                    **kwargs)  # fmt: skip
    frames = router.forecast_batch([bars.iloc[e - SPEC.lookback : e] for e in ends], SPEC.pred_len, **kwargs)
    for a, b in zip(sliced, frames, strict=True):
        assert a.history_end == b.history_end and np.array_equal(a.samples, b.samples)


# ------------------------------------------------------------------------------------------ resume and cache


def test_resumed_run_equals_uninterrupted_run(
    counting_predictor, bars: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = _run(counting_predictor, bars, tmp_path / "whole")
    monkeypatch.setattr(walkforward, "finetune", _CountFinetune(stop_after=2))
    with pytest.raises(_Interrupted):
        _run(counting_predictor, bars, tmp_path / "resumed")
    counter = _CountFinetune()
    monkeypatch.setattr(walkforward, "finetune", counter)
    resumed = _run(counting_predictor, bars, tmp_path / "resumed")
    assert counter.calls == len(whole.folds) - 2
    assert [o.trained for o in resumed.folds] == [False, False, True, True]
    assert resumed.predictor.fingerprint == whole.predictor.fingerprint
    a, b = _samples(whole), _samples(resumed)
    assert a.keys() == b.keys() and all(np.array_equal(a[p], b[p]) for p in a)


def test_cached_rerun_trains_and_computes_nothing(
    counting_predictor, bars: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _run(counting_predictor, bars, tmp_path)
    counter = _CountFinetune()
    monkeypatch.setattr(walkforward, "finetune", counter)
    before = counting_predictor.windows_computed
    again = _run(counting_predictor, bars, tmp_path)
    assert counter.calls == 0 and again.trained == 0
    assert counting_predictor.windows_computed == before  # base forecasts came from the cache too
    assert sum(o.computed for o in again.folds) == 0
    assert again.predictor.fingerprint == first.predictor.fingerprint
    changed = _run(counting_predictor, bars, tmp_path, lr=1e-4)  # another fine-tuning setting: new folds
    assert changed.trained == len(first.folds)


# ------------------------------------------------------------------------------------------ backtest wiring


def _wf_config(tmp_path: Path, **finetune: object) -> dict:
    cfg = tiny_config(tmp_path, dates={"start": "2015-01-01", "end": "2015-03-31"})
    cfg["finetune"] = {**SETTINGS, "every": "M", "window": 150, **finetune}
    return cfg


def test_backtest_with_finetune_uses_precomputed_folds_and_reruns_without_training(
    counting_predictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _wf_config(tmp_path)
    cfg["output"].update(tearsheet=False, chart=False)  # quantstats is slow; the runner's own tests cover it
    plain = {k: v for k, v in cfg.items() if k != "finetune"}
    frozen = run_backtest(plain, predictor=counting_predictor, write_reports=False)
    tuned = run_backtest(cfg, predictor=counting_predictor)
    assert tuned.model_fingerprint != frozen.model_fingerprint
    out = Path(cfg["output"]["dir"])
    report = json.loads((out / "walkforward.json").read_text())
    assert [f["trade_from"][:7] for f in report["folds"]] == ["2015-01", "2015-02", "2015-03"]
    assert all(f["train_to"] < f["trade_from"] for f in report["folds"])
    assert (out / "walkforward_skill.png").stat().st_size > 0 and (out / "metrics.json").is_file()

    counter = _CountFinetune()
    monkeypatch.setattr(walkforward, "finetune", counter)
    before = counting_predictor.windows_computed
    other = {**cfg, "strategy": {"name": "threshold", "params": {"enter": 0.3}}}
    again = run_backtest(other, predictor=counting_predictor, write_reports=False)
    assert counter.calls == 0 and counting_predictor.windows_computed == before
    assert again.model_fingerprint == tuned.model_fingerprint
    sig = tuned.signals.loc["2015-01-01":]
    assert np.array_equal(sig.to_numpy(), again.signals.loc["2015-01-01":].to_numpy(), equal_nan=True)


def test_backtest_reads_precomputed_forecasts_of_each_fold(
    counting_predictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kronos_model.predictor import KronosPredictor

    cfg = load_config(_wf_config(tmp_path, compare_base=False))
    history = _history(cfg)
    traded = history.loc["2015-01-01":"2015-03-31"].index
    wf = walkforward.prepare_backtest(cfg, counting_predictor, history, traded[0], traded[-1])
    calls = []
    for name in ("forecast_batch", "forecast_series"):  # no window reaches a model by either path
        real = getattr(KronosPredictor, name)
        monkeypatch.setattr(
            KronosPredictor, name, lambda self, *a, _real=real, **k: calls.append(1) or _real(self, *a, **k)
        )
    result = run_backtest(cfg, predictor=counting_predictor, write_reports=False)
    assert calls == []  # every window the indicator asked for was precomputed, under the same key
    for t in (traded[0], traded[30], traded[-1]):
        k = wf.fold_for(t)
        fold = wf.folds[k]
        assert fold.trade_from <= t <= fold.trade_to and fold.train_to < t
        window = history.loc[:t].iloc[-SPEC.lookback :]
        forecast = wf.slots[k].predictor.forecast(window, 4, sample_count=4, seed=0, anchor=SPEC.anchor)
        assert result.signals.loc[t, "prob_up"] == forecast.prob_up(4)
        assert result.signals.loc[t, "expected_return"] == forecast.expected_return(4)


def _history(cfg) -> pd.DataFrame:  # noqa: ANN001
    from kronos_strategies.runner import load_bars

    return load_bars(cfg)


# ------------------------------------------------------------------------------------------ config and report


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"init": "scratch"}, "'finetune.init' must be 'base' or 'previous'"),
        ({"window": "rolling"}, "'finetune.window' must be a number of bars or 'expanding'"),
        ({"every": "fortnight"}, "neither a number of bars nor a pandas period alias"),
        ({"every": 0}, "'finetune.every' must be >= 1"),
        ({"window": 60}, "'finetune.window' is 60 bars"),
        ({"lr": -1.0}, "'finetune' block: .*lr"),
        ({"epoch": 2}, "did you mean 'finetune.epochs'"),
    ],
)
def test_bad_finetune_block_is_a_config_error(tmp_path: Path, block: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_wf_config(tmp_path, **block))


def test_unseeded_indicator_with_finetune_is_a_config_error(tmp_path: Path) -> None:
    cfg = _wf_config(tmp_path)
    cfg["indicator"]["seed"] = None
    with pytest.raises(ConfigError, match="indicator.seed"):
        load_config(cfg)


def test_report_scores_forecasts_against_realised_bars(
    counting_predictor, bars: pd.DataFrame, tmp_path: Path
) -> None:
    result = _run(counting_predictor, bars, tmp_path)
    files = write_walkforward_report(result, bars, tmp_path / "report")
    data = json.loads(files["json"].read_text())
    assert len(data["folds"]) == 4 and {"crps_finetuned", "crps_base", "val_loss"} <= data["folds"][0].keys()
    assert "| fold |" in files["markdown"].read_text()
    # a perfect point forecast scores CRPS 0, hit rate 1 and MAE 0
    o = result.folds[0]
    close = bars["close"].to_numpy()
    perfect = [type(f)(samples=np.repeat(f.samples[:1], 4, axis=0), timestamps=f.timestamps, last_close=f.last_close)
               for f in o.forecasts]  # fmt: skip
    for f, p in zip(perfect, o.positions, strict=True):
        f.samples[:, SPEC.horizon - 1, 3] = close[p + SPEC.horizon]
    score = skill(perfect, bars, o.positions, SPEC.horizon)
    assert score["crps"] == pytest.approx(0.0, abs=1e-6) and score["mae"] == pytest.approx(0.0, abs=1e-6)
    assert (close[o.positions + SPEC.horizon] != close[o.positions]).all()
    assert score["hit_rate"] == 1.0 and score["scored"] == len(o.positions)


def test_init_base_shares_fold_zero_and_retrains_the_rest(
    counting_predictor, bars: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chained = _run(counting_predictor, bars, tmp_path)
    counter = _CountFinetune()
    monkeypatch.setattr(walkforward, "finetune", counter)
    fresh = _run(counting_predictor, bars, tmp_path, init="base")
    assert counter.calls == len(fresh.folds) - 1  # fold 0 starts from the base model either way
    assert fresh.folds[0].record["fingerprint"] == chained.folds[0].record["fingerprint"]
    assert fresh.folds[1].record["fingerprint"] != chained.folds[1].record["fingerprint"]
    with pytest.raises(ConfigError, match="y_timestamp_list"):
        fresh.predictor.forecast_batch([bars.iloc[-40:]], 4, y_timestamp_list=[bars.index[-4:]])


def test_fold_without_room_for_validation_is_an_error(
    counting_predictor, bars: pd.DataFrame, tmp_path: Path
) -> None:
    with pytest.raises(InsufficientHistoryError, match="not more than the 60 validation bars"):
        settings = WalkForwardConfig(**{**SETTINGS, "window": "expanding", "val_bars": 60})
        folds = make_schedule(bars.index, bars.index[50], every=25, window="expanding")
        run_walkforward(counting_predictor, bars, folds, settings, SPEC, fold_dir=tmp_path, cache=None)


def test_old_report_module_still_imports_with_a_deprecation_warning():
    import importlib
    import sys

    from kronos_strategies.walkforward import report

    sys.modules.pop("kronos_strategies.walkforward_report", None)
    with pytest.warns(DeprecationWarning, match="kronos_strategies.walkforward"):
        old = importlib.import_module("kronos_strategies.walkforward_report")
    assert old.write_walkforward_report is report.write_walkforward_report and old.skill is report.skill
