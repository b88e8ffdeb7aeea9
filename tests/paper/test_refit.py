"""Walk-forward refits in a paper session on the emulator: background training, swaps between bars, cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kronos_model import Kronos, KronosPredictor, KronosTokenizer
from kronos_strategies.emulator import load_candles
from kronos_strategies.errors import ConfigError
from kronos_strategies.exchange import bar_ms, download_history
from kronos_strategies.feeds import data_fingerprint, read_ohlcv
from kronos_strategies.indicator import KronosSignal
from kronos_strategies.paper.journal import Journal
from kronos_strategies.paper.refit import LiveRefitter
from kronos_strategies.paper.session import PaperSession
from kronos_strategies.strategy import load_object
from kronos_strategies.walkforward import Fold, SignalSpec, WalkForwardConfig, run_walkforward

from .helpers import TF_MS, exchange_client, fast_config

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "tiny"
SPEC = SignalSpec(lookback=8, pred_len=2, horizon=1, sample_count=1, seed=0)
SETTINGS = WalkForwardConfig(every=20, window=30, val_bars=11, steps=2, batch_size=4, init="previous")
Threshold = load_object("threshold", kind="strategy")


class Recording(Threshold):
    """The ready threshold strategy, noting which model forecast each processed bar."""

    def __init__(self) -> None:
        super().__init__()
        self.used: list[tuple[int, str]] = []

    def next(self) -> None:
        self.used.append((bar_ms(self.data), self.kronos.predictor.fingerprint))
        super().next()


@pytest.fixture(scope="module")
def base(candles_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> KronosPredictor:
    """The tiny model; one throw-away fine-tune first, so the process's one-off start-up (~2 s) is paid here."""
    torch.set_num_threads(1)
    model, tokenizer = (
        Kronos.from_pretrained(TINY / "predictor"),
        KronosTokenizer.from_pretrained(TINY / "tokenizer"),
    )
    predictor = KronosPredictor(model, tokenizer, device="cpu", max_context=64)
    bars = read_ohlcv(candles_csv, name="warm-up").iloc[-SETTINGS.window :]
    fold = Fold(0, 0, len(bars), len(bars), bars.index[0], bars.index[-1], bars.index[-1], bars.index[-1])
    run_walkforward(
        predictor, bars, [fold], SETTINGS, SPEC, fold_dir=tmp_path_factory.mktemp("warm"), cache=None
    )
    return predictor


def session(url: str, journal: Path, refitter: LiveRefitter, max_bars: int) -> PaperSession:
    """A paper session of :class:`Recording` forecasting through the refitter's predictor."""
    params = {"indicator": KronosSignal, "enter": 0.0,
              "indicator_params": {"predictor": refitter.predictor, "lookback": SPEC.lookback, "pred_len": SPEC.pred_len,
                                   "horizon": SPEC.horizon, "sample_count": SPEC.sample_count, "seed": 0, "cache": None,
                                   "progress": False}}  # fmt: skip
    config = fast_config(url, journal, mode="paper", warmup=10, max_bars=max_bars)
    return PaperSession(config, Recording, params, refitter=refitter)


def swaps(journal: Path) -> list[dict]:
    j = Journal(journal)
    try:
        return [json.loads(row["message"]) for row in j.events("model_swap")]
    finally:
        j.close()


def test_refits_swap_between_bars_and_resume_from_the_cache(emulator, candles_csv, tmp_path, base):
    emu = emulator(start_index=100, bar_seconds=0.1)
    folds, journal = tmp_path / "folds", tmp_path / "j.sqlite"
    first = LiveRefitter(base, SETTINGS, SPEC, folds, TF_MS)
    run1 = session(emu.url, journal, first, max_bars=45).run()
    used = run1.strategy.used
    assert len(used) == 45 and first.trained >= 1 and first.swaps
    origin = used[0][0]

    # every journaled swap: a fold boundary on the schedule, trained strictly before it, effective later
    csv = load_candles(candles_csv)
    stamps = csv.index.to_numpy(dtype="int64")
    client = exchange_client(emu.url)
    for entry in swaps(journal):
        boundary = entry["boundary"]
        assert boundary == origin + entry["fold"] * SETTINGS.every * TF_MS
        assert entry["effective_bar"] >= boundary
        record = json.loads((folds / entry["key"] / "fold.json").read_text())
        assert record["train_bars"] == SETTINGS.window
        assert pd.Timestamp(record["fold"]["train_to"]) == pd.Timestamp(boundary - TF_MS, unit="ms")
        served = download_history(
            client, "1m", boundary - SETTINGS.window * TF_MS, boundary
        )  # as the exchange has it
        assert record["data_fingerprint"] == data_fingerprint(read_ohlcv(served, name="expected"))
        expected = csv["close"][(stamps >= boundary - SETTINGS.window * TF_MS) & (stamps < boundary)]
        np.testing.assert_allclose(served["close"].to_numpy(), expected.to_numpy(), rtol=1e-6)

    # the model behind the indicator changes exactly at the journaled bars, never inside a bar
    changes = [(ts, fp) for (ts, fp), (_, prev) in zip(used[1:], used[:-1], strict=True) if fp != prev]
    assert changes == [(e["effective_bar"], e["fingerprint"]) for e in first.swaps]
    assert used[0][1] == base.fingerprint

    # restart on the same journal: the last swapped model comes back, no fold is trained again
    trained_dirs = sorted(p.name for p in folds.iterdir())
    second = LiveRefitter(base, SETTINGS, SPEC, folds, TF_MS)
    run2 = session(emu.url, journal, second, max_bars=8).run()
    restored = swaps(journal)[len(first.swaps) - 1]["fingerprint"]
    assert run2.strategy.used[0][1] == restored
    assert second.trained == 0 and sorted(p.name for p in folds.iterdir()) == trained_dirs
    entries = swaps(journal)
    assert [e["fold"] for e in entries] == sorted({e["fold"] for e in entries})  # each fold swapped in once
    assert all(not e["trained"] for e in second.swaps)


def test_calendar_schedule_is_refused(base, tmp_path):
    with pytest.raises(ConfigError, match="finetune.every"):
        LiveRefitter(base, WalkForwardConfig(every="M", window=30), SPEC, tmp_path, TF_MS)
