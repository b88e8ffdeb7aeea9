"""Public fine-tuning entry points: one module, or the tokenizer + predictor pair, through the one loop."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import KronosConfig, KronosTokenizerConfig, config_to_dict
from ..errors import CheckpointError
from ..predictor import resolve_device
from ..tokenizer import KronosTokenizer
from ..transformer import Kronos
from . import distributed
from .config import FinetuneConfig, FinetuneConfigError
from .loop import TrainResult, _fit, _module_config, predictor_loss, tokenizer_loss
from .windows import load_series


def build_tokenizer(config: KronosTokenizerConfig, *, seed: int = 0) -> KronosTokenizer:
    """A freshly initialised tokenizer (seeded), for training from scratch through the same API."""
    torch.manual_seed(seed)
    return KronosTokenizer(**config_to_dict(config))


def build_predictor(config: KronosConfig, *, seed: int = 0) -> Kronos:
    """A freshly initialised predictor (seeded, reference init), for training from scratch."""
    torch.manual_seed(seed)
    return Kronos(**config_to_dict(config))


def finetune_tokenizer(
    tokenizer: nn.Module,
    frames: Any,
    cfg: FinetuneConfig | None = None,
    *,
    position_weights: Any = None,
) -> TrainResult:
    """Train a :class:`KronosTokenizer` on windows of ``lookback + horizon`` bars (reference loss, 6.2).

    ``position_weights``: optional per-bar weights (``lookback + horizon`` values, mean 1) of the training
    reconstruction loss; None is the reference's uniform loss.
    """
    cfg = cfg or FinetuneConfig()
    series = load_series(frames)
    weights = None if position_weights is None else torch.as_tensor(position_weights, dtype=torch.float32)
    if weights is not None and weights.shape != (cfg.lookback + cfg.horizon,):
        raise FinetuneConfigError(
            f"position_weights needs lookback + horizon = {cfg.lookback + cfg.horizon} values, got {tuple(weights.shape)}"
        )

    def loss_fn(module: nn.Module, x: torch.Tensor, stamp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return tokenizer_loss(module, x, weights)

    return _fit("tokenizer", tokenizer, loss_fn, series, cfg.lookback + cfg.horizon, cfg)


def finetune_predictor(
    model: nn.Module, tokenizer: nn.Module, frames: Any, cfg: FinetuneConfig | None = None
) -> TrainResult:
    """Train a :class:`Kronos` predictor on ``lookback + horizon + 1`` bar windows with the tokenizer frozen."""
    cfg = cfg or FinetuneConfig()
    _check_pair(model, tokenizer)
    series = load_series(frames)
    device = resolve_device(distributed.device_for(distributed.current(), cfg.device))
    flags = [p.requires_grad for p in tokenizer.parameters()]
    tokenizer.to(device).eval().requires_grad_(False)

    def loss_fn(module: nn.Module, x: torch.Tensor, stamp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return predictor_loss(module, tokenizer, x, stamp)

    try:
        extra = {"tokenizer_config": _module_config(tokenizer)}
        return _fit("predictor", model, loss_fn, series, cfg.lookback + cfg.horizon + 1, cfg, extra)
    finally:
        for p, flag in zip(tokenizer.parameters(), flags):
            p.requires_grad_(flag)


@dataclass
class PairResult:
    """Outcome of :func:`finetune`: both modules, the tokenizer run (None when kept frozen), the predictor run."""

    model: nn.Module
    tokenizer: nn.Module
    tokenizer_result: TrainResult | None
    predictor_result: TrainResult

    def save(self, directory: str | Path) -> Path:
        """Save as ``directory/tokenizer`` and ``directory/predictor``, each with its training record."""
        directory = Path(directory)
        if self.tokenizer_result is not None:
            self.tokenizer_result.save(directory / "tokenizer")
        else:
            self.tokenizer.save_pretrained(directory / "tokenizer")
        self.predictor_result.save(directory / "predictor")
        return directory


def finetune(
    predictor_or_pair: Any,
    frames: Any,
    cfg: FinetuneConfig | None = None,
    *,
    tokenizer_cfg: FinetuneConfig | None = None,
    train_tokenizer: bool = True,
) -> PairResult:
    """Fine-tune a :class:`KronosPredictor` (or a ``(model, tokenizer)`` pair): tokenizer first, then predictor.

    ``tokenizer_cfg`` defaults to ``cfg``; with ``train_tokenizer=False`` the tokenizer stays as given.
    The modules are updated in place and left in eval mode, so a predictor wrapper keeps working with the
    new weights; with a wrapper and ``device=None`` training runs on the wrapper's device.
    """
    cfg = cfg or FinetuneConfig()
    if isinstance(predictor_or_pair, tuple) and len(predictor_or_pair) == 2:
        model, tokenizer = predictor_or_pair
    elif hasattr(predictor_or_pair, "model") and hasattr(predictor_or_pair, "tokenizer"):
        model, tokenizer = predictor_or_pair.model, predictor_or_pair.tokenizer
        wrapper_device = getattr(predictor_or_pair, "device", None)
        if wrapper_device is not None:  # train where the wrapper runs, so it keeps working afterwards
            cfg = replace(cfg, device=cfg.device or str(wrapper_device))
            tokenizer_cfg = tokenizer_cfg and replace(
                tokenizer_cfg, device=tokenizer_cfg.device or str(wrapper_device)
            )
    else:
        raise FinetuneConfigError(
            f"finetune needs a KronosPredictor or a (model, tokenizer) pair, got {type(predictor_or_pair).__name__}"
        )
    _check_pair(model, tokenizer)
    tok_result = finetune_tokenizer(tokenizer, frames, tokenizer_cfg or cfg) if train_tokenizer else None
    pred_result = finetune_predictor(model, tokenizer, frames, cfg)
    if not isinstance(predictor_or_pair, tuple):  # the wrapper's cached weight fingerprint is stale now
        predictor_or_pair.refresh_fingerprint()
    return PairResult(model, tokenizer, tok_result, pred_result)


def _check_pair(model: nn.Module, tokenizer: nn.Module) -> None:
    """Raise if the predictor's vocabulary does not match the tokenizer's code size."""
    mc, tc = getattr(model, "config", None), getattr(tokenizer, "config", None)
    if mc is None or tc is None:
        return
    if (mc.s1_bits, mc.s2_bits) != (tc.s1_bits, tc.s2_bits):
        raise CheckpointError(
            f"predictor s1/s2 bits ({mc.s1_bits}, {mc.s2_bits}) do not match the tokenizer's "
            f"({tc.s1_bits}, {tc.s2_bits}); pair the predictor with the tokenizer it was trained with"
        )
