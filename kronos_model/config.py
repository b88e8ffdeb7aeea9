"""Model configurations; field names are exactly the keys of the released ``config.json`` files."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from .errors import CheckpointError


@dataclass
class KronosTokenizerConfig:
    """Hyper-parameters of :class:`KronosTokenizer` (16 keys, as in NeoQuasar/Kronos-Tokenizer-base)."""

    d_in: int = 6
    d_model: int = 256
    n_heads: int = 4
    ff_dim: int = 512
    n_enc_layers: int = 4  # the encoder has n_enc_layers - 1 blocks (reference convention)
    n_dec_layers: int = 4  # the decoder has n_dec_layers - 1 blocks
    ffn_dropout_p: float = 0.0
    attn_dropout_p: float = 0.0
    resid_dropout_p: float = 0.0
    s1_bits: int = 10
    s2_bits: int = 10
    beta: float = 0.05
    gamma0: float = 1.0
    gamma: float = 1.1
    zeta: float = 0.05
    group_size: int = 4

    def __post_init__(self) -> None:
        _check_heads(self.d_model, self.n_heads, "tokenizer")
        if self.s1_bits != self.s2_bits:
            raise CheckpointError(
                f"tokenizer s1_bits ({self.s1_bits}) must equal s2_bits ({self.s2_bits}): the half-id decode "
                "splits the code into two equal halves"
            )
        if (self.s1_bits + self.s2_bits) % self.group_size:
            raise CheckpointError(
                f"tokenizer group_size {self.group_size} must divide s1_bits + s2_bits = {self.s1_bits + self.s2_bits}"
            )
        if self.n_enc_layers < 1 or self.n_dec_layers < 1:
            raise CheckpointError("tokenizer n_enc_layers and n_dec_layers must be >= 1")


@dataclass
class KronosConfig:
    """Hyper-parameters of the :class:`Kronos` predictor (11 keys, as in NeoQuasar/Kronos-small)."""

    s1_bits: int = 10
    s2_bits: int = 10
    n_layers: int = 8
    d_model: int = 512
    n_heads: int = 8
    ff_dim: int = 1024
    ffn_dropout_p: float = 0.0
    attn_dropout_p: float = 0.0
    resid_dropout_p: float = 0.0
    token_dropout_p: float = 0.0
    learn_te: bool = True

    def __post_init__(self) -> None:
        _check_heads(self.d_model, self.n_heads, "predictor")
        _check_heads(self.d_model, 4, "predictor dependency layer (always 4 heads)")


def _check_heads(d_model: int, n_heads: int, what: str) -> None:
    if n_heads < 1 or d_model % n_heads or (d_model // n_heads) % 2:
        raise CheckpointError(
            f"{what}: d_model {d_model} must split into {n_heads} heads of an even size (for rotary embeddings)"
        )


def config_from_dict(cls: type, raw: dict[str, Any], *, source: str) -> Any:
    """Build a config dataclass from a ``config.json`` dict: all keys required, unknown keys ignored."""
    names = {f.name for f in fields(cls)}
    missing = sorted(names - raw.keys())
    if missing:
        raise CheckpointError(f"{source}: config.json lacks key(s) {missing} required by {cls.__name__}")
    return cls(**{k: raw[k] for k in names})


def config_to_dict(config: Any) -> dict[str, Any]:
    """Config as a plain dict with sorted keys (what ``config.json`` holds)."""
    return dict(sorted(asdict(config).items()))
