"""The training loop's global batch, accumulation, checkpoints and resume (in-process, single rank)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import kronos_model.training.loop as loop
from kronos_model import Kronos, KronosTokenizer
from kronos_model.errors import CheckpointError
from kronos_model.training import (
    FinetuneConfig,
    FinetuneConfigError,
    build_predictor,
    build_tokenizer,
    finetune_predictor,
    finetune_tokenizer,
)
from tests.model.test_training import PRED, TOK, ohlcv

# dropout on, so the per-micro-batch dropout seeding is exercised
PRED_DROPOUT = {**PRED, "ffn_dropout_p": 0.1, "resid_dropout_p": 0.1, "token_dropout_p": 0.1}


@pytest.fixture
def frames():
    return {
        "a": ohlcv(120, 1),
        "b": ohlcv(100, 2, start="2020-02-03"),
        "c": ohlcv(110, 3, start="2020-01-15"),
    }


def cfg(**kw) -> FinetuneConfig:
    base = dict(
        lookback=12, horizon=3, batch_size=8, epochs=2, steps_per_epoch=4, max_val_windows=16, lr=5e-3, warmup=2,
        patience=5, val_fraction=0.2, seed=3, device="cpu", verbose=False,
    )  # fmt: skip
    return FinetuneConfig(**{**base, **kw})


def pair(seed: int = 0, dropout: bool = True):
    tok = build_tokenizer(KronosTokenizer.config_class(**TOK), seed=seed)
    return build_predictor(Kronos.config_class(**(PRED_DROPOUT if dropout else PRED)), seed=seed), tok


def weights(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_accumulation_holds_the_global_batch(frames):
    """Global batch 8 as 1 x 8 and 4 x 2 micro-batches: the same loss curve (float-sum order only).

    Without dropout the predictor loss is a plain mean over windows; with dropout the masks depend on the
    micro-batch split, which is why equal runs need equal ``micro_batch_size`` (any number of processes).
    """
    curves = []
    for micro in (8, 2):
        model, tok = pair(dropout=False)
        result = finetune_predictor(model, tok, frames, cfg(micro_batch_size=micro))
        assert result.record["accumulation_steps"] == 8 // micro
        curves.append(np.array(result.record["step_losses"]))
    assert len(curves[0]) == 8
    for other in curves[1:]:
        np.testing.assert_allclose(other, curves[0], rtol=1e-5)
    assert not np.allclose(curves[0][:4], curves[0][4:])  # the curve moves: a real comparison


def test_single_process_is_bit_identical(frames):
    """Same seed, CPU, one process: every weight of two runs is identical (the determinism statement)."""
    runs = []
    for _ in range(2):
        model, tok = pair()
        finetune_predictor(model, tok, frames, cfg())
        runs.append(weights(model))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_batch_must_split_evenly():
    with pytest.raises(FinetuneConfigError, match="micro_batch_size"):
        cfg(batch_size=8, micro_batch_size=3).micro_batches(1)
    with pytest.raises(FinetuneConfigError, match="2 processes"):
        cfg(batch_size=6, micro_batch_size=2).micro_batches(2)
    assert cfg(batch_size=8).micro_batches(2) == (4, 1)
    with pytest.raises(FinetuneConfigError, match="checkpoint_dir"):
        cfg(resume=True)


class Killed(Exception):
    pass


@pytest.mark.parametrize("kind", ["predictor", pytest.param("tokenizer", marks=pytest.mark.slow)])
def test_resume_after_interrupt_equals_uninterrupted(frames, tmp_path, monkeypatch, kind):
    """Interrupted after step 6 (newest checkpoint: step 5, mid-epoch 2) then resumed: same weights."""

    def run(**kw):
        model, tok = pair()
        if kind == "predictor":
            result = finetune_predictor(model, tok, frames, cfg(**kw))
            return model, result
        return tok, finetune_tokenizer(tok, frames, cfg(**kw))

    clean, clean_result = run()
    expected = weights(clean)

    def kill_at_8(stage, step):
        if step == 6:
            raise Killed

    monkeypatch.setattr(loop, "_on_step", kill_at_8)
    ckpts = tmp_path / "ckpt"
    with pytest.raises(Killed):
        run(checkpoint_dir=str(ckpts), checkpoint_every=5)
    assert (ckpts / kind / "latest").read_text().strip() == "step-00000005"
    monkeypatch.setattr(loop, "_on_step", lambda stage, step: None)
    resumed, result = run(checkpoint_dir=str(ckpts), checkpoint_every=5, resume=True)
    assert result.record["resumed_at_step"] == 5
    assert result.record["step_losses"] == clean_result.record["step_losses"]
    assert [h["val_loss"] for h in result.history] == [h["val_loss"] for h in clean_result.history]
    assert all(torch.equal(expected[k], v) for k, v in weights(resumed).items())


def test_checkpoints_are_atomic_and_pruned(frames, tmp_path):
    model, tok = pair()
    finetune_predictor(
        model, tok, frames, cfg(checkpoint_dir=str(tmp_path), checkpoint_every=2, keep_checkpoints=2)
    )
    root = tmp_path / "predictor"
    names = sorted(p.name for p in root.iterdir())
    # steps 2..8 every 2, plus the two epoch ends (4, 8): only the newest two kept, no temporary folders
    assert names == ["latest", "step-00000006", "step-00000008"]
    assert (root / "latest").read_text().strip() == "step-00000008"
    meta = json.loads((root / "step-00000008" / "state.json").read_text())
    assert meta["step"] == 8 and meta["epoch_done"] and len(meta["history"]) == 2
    # a resume with other training settings is refused instead of silently mixing two runs
    model, tok = pair()
    with pytest.raises(CheckpointError, match="other data or settings"):
        finetune_predictor(model, tok, frames, cfg(lr=1e-3, checkpoint_dir=str(tmp_path), resume=True))


def test_bf16_autocast_trains_with_fp32_weights(frames):
    """precision="bf16" (the GPU default) exercised on CPU: fp32 master weights, losses near the fp32 run."""
    runs = {}
    for precision in ("fp32", "bf16"):
        model, tok = pair(dropout=False)
        result = finetune_predictor(model, tok, frames, cfg(precision=precision, epochs=1, steps_per_epoch=2))
        assert all(p.dtype == torch.float32 for p in model.parameters())
        runs[precision] = result.record["step_losses"]
    assert runs["bf16"] != runs["fp32"]  # autocast really ran in reduced precision
    np.testing.assert_allclose(runs["bf16"], runs["fp32"], rtol=0.05)
