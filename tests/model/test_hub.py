"""save_pretrained / from_pretrained round trips, strict loading, registry and offline errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from kronos_model import Kronos, KronosPredictor, KronosTokenizer
from kronos_model.errors import CheckpointError, HubUnavailableError

from ..conftest import FIXTURES


def test_round_trip_is_bit_identical(tmp_path, sp500):
    tok = KronosTokenizer.from_pretrained(FIXTURES / "tokenizer")
    model = Kronos.from_pretrained(FIXTURES / "predictor")
    tok.save_pretrained(tmp_path / "tokenizer")
    model.save_pretrained(tmp_path / "predictor")
    assert json.loads((tmp_path / "predictor" / "config.json").read_text()) == json.loads(
        (FIXTURES / "predictor" / "config.json").read_text()
    )
    assert set(load_file(tmp_path / "predictor" / "model.safetensors")) == set(
        load_file(FIXTURES / "predictor" / "model.safetensors")
    )
    a = KronosPredictor(model, tok, device="cpu")
    b = KronosPredictor.from_pretrained(tmp_path, device="cpu")
    df = sp500.iloc[:80]
    fa = a.forecast(df, 5, sample_count=4, seed=7)
    fb = b.forecast(df, 5, sample_count=4, seed=7)
    np.testing.assert_array_equal(fa.samples, fb.samples)
    assert a.fingerprint == b.fingerprint


def test_from_pretrained_returns_eval_mode():
    assert not Kronos.from_pretrained(FIXTURES / "predictor").training


def _copy(tmp_path, name):
    dst = tmp_path / name
    shutil.copytree(FIXTURES / name, dst)
    return dst


def test_shape_mismatch_names_key_and_shapes(tmp_path):
    dst = _copy(tmp_path, "predictor")
    weights = load_file(dst / "model.safetensors")
    weights["norm.weight"] = torch.ones(48)
    save_file(weights, dst / "model.safetensors")
    with pytest.raises(
        CheckpointError, match=r"shape mismatch for norm.weight: checkpoint \(48,\) vs model \(32,\)"
    ):
        Kronos.from_pretrained(dst)


def test_config_mismatch_is_reported(tmp_path):
    dst = _copy(tmp_path, "predictor")
    cfg = json.loads((dst / "config.json").read_text())
    cfg["d_model"] = 64
    (dst / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(
        CheckpointError,
        match=r"shape mismatch for embedding.emb_s1.weight: checkpoint \(16, 32\) vs model \(16, 64\)",
    ):
        Kronos.from_pretrained(dst)


def test_missing_and_unexpected_keys(tmp_path):
    dst = _copy(tmp_path, "predictor")
    weights = load_file(dst / "model.safetensors")
    weights["extra.weight"] = weights.pop("head.proj_s2.bias")
    save_file(weights, dst / "model.safetensors")
    with pytest.raises(
        CheckpointError, match=r"missing keys \['head.proj_s2.bias'\].*unexpected keys \['extra.weight'\]"
    ):
        Kronos.from_pretrained(dst)


def test_missing_config_key(tmp_path):
    dst = _copy(tmp_path, "tokenizer")
    cfg = json.loads((dst / "config.json").read_text())
    del cfg["s2_bits"]
    (dst / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"lacks key\(s\) \['s2_bits'\]"):
        KronosTokenizer.from_pretrained(dst)


def test_corrupted_weights(tmp_path):
    dst = _copy(tmp_path, "tokenizer")
    (dst / "model.safetensors").write_bytes(b"\x00\x01not a safetensors file")
    with pytest.raises(CheckpointError, match="corrupted or not a safetensors file"):
        KronosTokenizer.from_pretrained(dst)


def test_pickle_is_never_loaded(tmp_path):
    dst = _copy(tmp_path, "tokenizer")
    (dst / "model.safetensors").unlink()
    (dst / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(CheckpointError, match="pickled weights are never loaded"):
        KronosTokenizer.from_pretrained(dst)


def test_tolerates_absent_rebuilt_buffers(tmp_path):
    dst = _copy(tmp_path, "tokenizer")
    weights = {
        k: v for k, v in load_file(dst / "model.safetensors").items() if not k.endswith(("inv_freq", "basis"))
    }
    save_file(weights, dst / "model.safetensors")
    KronosTokenizer.from_pretrained(dst)


def test_tokenizer_and_model_must_pair():
    tok = KronosTokenizer(
        d_model=16, n_heads=2, ff_dim=32, n_enc_layers=2, n_dec_layers=2, s1_bits=3, s2_bits=3, group_size=3
    )
    with pytest.raises(Exception, match="do not pair"):
        KronosPredictor(Kronos.from_pretrained(FIXTURES / "predictor"), tok, device="cpu")


def test_unknown_model_name():
    with pytest.raises(CheckpointError, match="unknown model 'NeoQuasar/Kronos-huge'"):
        KronosPredictor.from_pretrained("NeoQuasar/Kronos-huge")


def test_released_pair_offline_says_hub_unreachable(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        HubUnavailableError, match="cannot fetch NeoQuasar/Kronos-Tokenizer-base.*local directory"
    ):
        KronosPredictor.from_pretrained("NeoQuasar/Kronos-small", cache_dir=tmp_path)


def test_registry_pairs_match_released_models():
    from kronos_model.registry import RELEASED

    assert RELEASED["NeoQuasar/Kronos-mini"].tokenizer == "NeoQuasar/Kronos-Tokenizer-2k"
    assert RELEASED["NeoQuasar/Kronos-mini"].max_context == 2048
    assert RELEASED["NeoQuasar/Kronos-small"].tokenizer == "NeoQuasar/Kronos-Tokenizer-base"
    assert RELEASED["NeoQuasar/Kronos-base"].max_context == 512


@pytest.mark.parametrize(
    ("cfg", "n_params", "n_keys"),
    [
        (dict(n_layers=4, d_model=256, n_heads=4, ff_dim=512), 4_108_032, 80),  # Kronos-mini
        (dict(n_layers=8, d_model=512, n_heads=8, ff_dim=1024), 24_741_376, 136),  # Kronos-small
    ],
)
def test_released_shapes(cfg, n_params, n_keys):
    model = Kronos(**cfg)
    assert sum(p.numel() for p in model.parameters()) == n_params
    assert len(model.state_dict()) == n_keys


def test_tokenizer_base_shape():
    tok = KronosTokenizer()
    assert sum(p.numel() for p in tok.parameters()) == 3_958_042
    assert len(tok.state_dict()) == 96
    assert tok.state_dict()["tokenizer.bsq.basis"].tolist() == [2**i for i in range(19, -1, -1)]
