"""Fine-tuning API: loss goes down, no leak in normalisation or split, determinism, save/load, bad input."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import torch

from kronos_model import Kronos, KronosTokenizer
from kronos_model.errors import CheckpointError, InsufficientHistoryError, MissingColumnError
from kronos_model.training import (
    RECORD_FILE,
    FinetuneConfig,
    FinetuneConfigError,
    build_predictor,
    build_tokenizer,
    finetune,
    finetune_predictor,
    finetune_tokenizer,
    load_series,
    lr_factor,
    make_batch,
    normalize_window,
    predictor_loss,
    split_windows,
    tokenizer_loss,
)

TOK = dict(
    d_model=16, n_heads=2, ff_dim=32, n_enc_layers=2, n_dec_layers=2, s1_bits=3, s2_bits=3, group_size=2
)
PRED = dict(s1_bits=3, s2_bits=3, n_layers=1, d_model=16, n_heads=2, ff_dim=32)


def ohlcv(
    n: int, seed: int, start: str = "2020-01-01", freq: str = "B", tz: str | None = None
) -> pd.DataFrame:
    """A seeded random-walk OHLCV frame with a DatetimeIndex."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
    volume = rng.uniform(1e5, 2e5, n)
    idx = pd.date_range(start, periods=n, freq=freq, tz=tz)
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=idx
    )


def small_cfg(**kw) -> FinetuneConfig:
    base = dict(
        lookback=12,
        horizon=3,
        batch_size=8,
        epochs=2,
        steps_per_epoch=4,
        lr=5e-3,
        warmup=1,
        patience=5,
        val_fraction=0.25,
        seed=0,
        device="cpu",
        verbose=False,
    )
    return FinetuneConfig(**{**base, **kw})


@pytest.fixture
def frames() -> dict[str, pd.DataFrame]:
    return {"a": ohlcv(90, 1), "b": ohlcv(70, 2, start="2020-02-03")}


def mean_loss(loss_fn, series, rows, window, cfg) -> float:
    """Mean of ``loss_fn(x, stamp)`` over the given windows, without gradients."""
    x, stamp = make_batch(series, rows, window, cfg)
    with torch.no_grad():
        return float(loss_fn(x, stamp)[0])


def test_tokenizer_finetune_lowers_training_loss(frames):
    cfg = small_cfg(epochs=3)
    tok = build_tokenizer(KronosTokenizer.config_class(**TOK), seed=0).eval()
    series = load_series(frames)
    split = split_windows(series, cfg.lookback + cfg.horizon, cfg)
    before = mean_loss(lambda x, s: tokenizer_loss(tok, x), series, split.train, split.window, cfg)
    result = finetune_tokenizer(tok, frames, cfg)
    after = mean_loss(lambda x, s: tokenizer_loss(tok, x), series, split.train, split.window, cfg)
    assert after < before
    assert result.record["steps"] == 12 and len(result.history) == 3
    assert result.best_val_loss == min(h["val_loss"] for h in result.history)


def test_predictor_finetune_lowers_training_loss(frames):
    cfg = small_cfg(epochs=3)
    tok = build_tokenizer(KronosTokenizer.config_class(**TOK), seed=0).eval()
    model = build_predictor(Kronos.config_class(**PRED), seed=0)
    series = load_series(frames)
    split = split_windows(series, cfg.lookback + cfg.horizon + 1, cfg)
    model.train()  # keeps the s2 cross-attention causal; no dropout in this config

    def loss_fn(x, s):
        return predictor_loss(model, tok, x, s)

    before = mean_loss(loss_fn, series, split.train, split.window, cfg)
    tok_before = {k: v.clone() for k, v in tok.state_dict().items()}
    finetune_predictor(model, tok, frames, cfg)
    model.train()
    after = mean_loss(loss_fn, series, split.train, split.window, cfg)
    assert after < before
    assert all(torch.equal(v, tok.state_dict()[k]) for k, v in tok_before.items())  # tokenizer frozen
    assert all(p.requires_grad for p in tok.parameters())  # and its flags restored


def test_window_normalisation_uses_only_the_lookback():
    rng = np.random.default_rng(3)
    window = rng.lognormal(size=(20, 6)) * 100
    changed = window.copy()
    changed[12:] *= 50.0  # a very different future
    a, b = normalize_window(window, 12, 5.0), normalize_window(changed, 12, 5.0)
    assert np.array_equal(a[:12], b[:12])
    assert not np.array_equal(a[12:], b[12:])
    moved = window.copy()
    moved[3] *= 2.0  # a change inside the lookback does move the statistics
    assert not np.array_equal(normalize_window(moved, 12, 5.0)[12:], a[12:])


def test_batches_do_not_see_the_future_of_the_series(frames):
    cfg = small_cfg()
    series = load_series(frames)
    rows = np.array([[0, 10], [1, 5]])
    x, _ = make_batch(series, rows, 15, cfg)
    edited = {k: v.copy() for k, v in frames.items()}
    for name, (_, start) in zip(("a", "b"), rows):
        edited[name].iloc[start + cfg.lookback :, :4] *= 3.0  # horizon bars and everything after
    y, _ = make_batch(load_series(edited), rows, 15, cfg)
    assert torch.equal(x[:, : cfg.lookback], y[:, : cfg.lookback])
    assert not torch.equal(x[:, cfg.lookback :], y[:, cfg.lookback :])


@pytest.mark.parametrize("val_start", [None, "2020-04-01"])
def test_split_is_strictly_time_ordered(val_start):
    frames = [
        ohlcv(120, 1),
        ohlcv(300, 2, start="2020-01-01 09:00", freq="h", tz="US/Eastern"),
        ohlcv(60, 3, start="2020-03-02"),
    ]
    cfg = small_cfg(val_start=val_start, max_val_windows=None)
    series = load_series(frames)
    split = split_windows(series, 15, cfg)
    utc = [s.times.tz_convert(None) if s.times.tz is not None else s.times for s in series]
    train_ends = [utc[i][t + 14] for i, t in split.train]
    val_starts = [utc[i][t] for i, t in split.val]
    assert len(train_ends) and len(val_starts)
    assert max(train_ends) < split.cutoff <= min(val_starts)
    if val_start is not None:
        assert split.cutoff == pd.Timestamp(val_start)
    for i in range(len(series)):  # every bar before the cut-off is usable by some training window
        starts = split.train[split.train[:, 0] == i, 1]
        n_before = int((utc[i] < split.cutoff).sum())
        if n_before >= 15:
            assert starts.max() + 15 == n_before


def test_same_seed_gives_identical_weights(frames):
    def run(seed):
        tok = build_tokenizer(KronosTokenizer.config_class(**TOK), seed=seed)
        model = build_predictor(Kronos.config_class(**PRED), seed=seed)
        finetune((model, tok), frames, small_cfg(seed=seed, epochs=1))
        return {**{f"t.{k}": v for k, v in tok.state_dict().items()}, **model.state_dict()}

    a, b, c = run(0), run(0), run(1)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_save_load_round_trip_and_record(frames, tmp_path):
    tok = build_tokenizer(KronosTokenizer.config_class(**TOK), seed=0)
    model = build_predictor(Kronos.config_class(**PRED), seed=0)
    result = finetune((model, tok), frames, small_cfg(epochs=1))
    out = result.save(tmp_path / "ft")
    tok2 = KronosTokenizer.from_pretrained(out / "tokenizer")
    model2 = Kronos.from_pretrained(out / "predictor")
    for orig, loaded in ((tok, tok2), (model, model2)):
        sd, sd2 = orig.state_dict(), loaded.state_dict()
        assert sd.keys() == sd2.keys() and all(torch.equal(sd[k], sd2[k].to(sd[k].device)) for k in sd)
    record = json.loads((out / "predictor" / RECORD_FILE).read_text())
    assert record["kind"] == "predictor" and record["seed"] == 0
    assert record["config"]["lookback"] == 12 and len(record["epochs"]) == 1
    digest = hashlib.sha256(np.ascontiguousarray(load_series(frames)[0].values).tobytes())
    digest.update(np.ascontiguousarray(frames["a"].index.as_unit("ns").asi8).tobytes())
    assert record["data"][0]["sha256"] == digest.hexdigest()
    assert record["data"][0]["train_last_bar"] < record["cutoff"] <= record["data"][0]["val_first_bar"]
    changed = {**frames, "b": frames["b"].assign(close=frames["b"]["close"] * 1.01)}
    changed["b"]["high"] = changed["b"][["high", "close"]].max(axis=1)
    other = finetune_tokenizer(
        build_tokenizer(KronosTokenizer.config_class(**TOK)), changed, small_cfg(epochs=1)
    )
    assert other.record["data_fingerprint"] != record["data_fingerprint"]


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    f = [lr_factor(s, 100, 10, 0.1) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(f[:9], f[1:10]))
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    assert lr_factor(100, 100, 10, 0.1) == pytest.approx(0.1)


def test_bad_inputs_give_clear_errors(frames):
    tok = build_tokenizer(KronosTokenizer.config_class(**TOK))
    with pytest.raises(InsufficientHistoryError, match=r"too short.*a \(90 bars\)"):
        finetune_tokenizer(tok, frames, small_cfg(lookback=100))
    with pytest.raises(InsufficientHistoryError, match="no validation window"):
        finetune_tokenizer(tok, frames, small_cfg(val_start="2020-04-27"))
    with pytest.raises(InsufficientHistoryError, match="no OHLCV frames"):
        finetune_tokenizer(tok, [], small_cfg())
    with pytest.raises(MissingColumnError, match="close"):
        finetune_tokenizer(tok, [frames["a"].drop(columns="close")], small_cfg())
    with pytest.raises(FinetuneConfigError, match="val_fraction"):
        small_cfg(val_fraction=1.0)
    with pytest.raises(FinetuneConfigError, match="lookback"):
        small_cfg(lookback=0)
    with pytest.raises(FinetuneConfigError, match="val_start"):
        small_cfg(val_start="not a date")
    model = build_predictor(Kronos.config_class(**{**PRED, "s1_bits": 4, "s2_bits": 4}))
    with pytest.raises(CheckpointError, match="s1/s2 bits"):
        finetune_predictor(model, tok, frames, small_cfg())


def test_early_stopping_keeps_the_best_epoch(frames, monkeypatch):
    import kronos_model.training.loop as training

    scripted = iter([1.0, 0.5, 0.6, 0.7, 0.4, 0.3])
    snapshots = []

    def fake_evaluate(module, *args, **kwargs):
        snapshots.append({k: v.clone() for k, v in module.state_dict().items()})
        return next(scripted)

    monkeypatch.setattr(training, "_evaluate", fake_evaluate)
    tok = build_tokenizer(KronosTokenizer.config_class(**TOK))
    result = finetune_tokenizer(tok, frames, small_cfg(epochs=6, steps_per_epoch=1, patience=2))
    assert [h["val_loss"] for h in result.history] == [1.0, 0.5, 0.6, 0.7]
    assert result.stopped_early and result.best_epoch == 2 and result.best_val_loss == 0.5
    assert all(torch.equal(v, tok.state_dict()[k]) for k, v in snapshots[1].items())
    assert not all(torch.equal(v, tok.state_dict()[k]) for k, v in snapshots[3].items())


def test_default_training_data_stops_at_2014():
    from kronos_model.train_default import TRAIN_END, training_frames

    frames = training_frames()
    assert set(frames) == {f"{n}_{f}" for n in ("sp500", "nasdaq", "msft") for f in ("daily", "weekly")}
    for df in frames.values():
        assert df.index.max() <= pd.Timestamp(TRAIN_END) and len(df) > 500
        assert list(df.columns) == ["open", "high", "low", "close", "volume"]
    daily = frames["sp500_daily"]
    week = frames["sp500_weekly"].iloc[10]
    days = daily.loc[week.name - pd.Timedelta(days=6) : week.name]
    assert week["high"] == days["high"].max() and week["close"] == days["close"].iloc[-1]


def test_bundled_checkpoint_loads_and_never_saw_2015():
    from kronos_model.train_default import DEFAULT_OUT, TRAIN_END

    tok = KronosTokenizer.from_pretrained(DEFAULT_OUT / "tokenizer")
    model = Kronos.from_pretrained(DEFAULT_OUT / "predictor")
    assert (model.config.s1_bits, model.config.s2_bits) == (tok.config.s1_bits, tok.config.s2_bits)
    size = sum(f.stat().st_size for f in DEFAULT_OUT.rglob("*") if f.is_file())
    assert size < 20 * 2**20
    for part in ("tokenizer", "predictor"):
        record = json.loads((DEFAULT_OUT / part / RECORD_FILE).read_text())
        assert record["cutoff"] <= TRAIN_END
        for d in record["data"]:
            for key in ("train_last_bar", "val_last_bar"):
                assert d.get(key, "") <= TRAIN_END + " 23:59"
    assert "not the released Kronos" in (DEFAULT_OUT / "README.md").read_text()


@pytest.mark.gpu
def test_finetune_runs_on_cuda(frames):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    tok = build_tokenizer(KronosTokenizer.config_class(**TOK))
    model = build_predictor(Kronos.config_class(**PRED))
    result = finetune((model, tok), frames, small_cfg(device="cuda", epochs=2))
    assert next(model.parameters()).is_cuda and result.predictor_result.record["device"] == "cuda"
    assert (
        result.predictor_result.history[-1]["train_loss"] < result.predictor_result.history[0]["train_loss"]
    )


def test_finetune_updates_a_predictor_wrapper_in_place(frames):
    from kronos_model import KronosPredictor

    tok = build_tokenizer(KronosTokenizer.config_class(**TOK))
    model = build_predictor(Kronos.config_class(**PRED))
    predictor = KronosPredictor(model, tok, device="cpu", max_context=64)
    before = predictor.fingerprint
    result = finetune(predictor, frames, small_cfg(epochs=1, device=None))
    assert result.model is predictor.model and result.predictor_result.record["device"] == "cpu"
    assert predictor.fingerprint != before
    fc = predictor.forecast(frames["a"].iloc[-30:], 3, sample_count=2, seed=0)
    assert np.isfinite(fc.samples).all()
