"""The recorded forecast call a CUDA graph replays: same numbers as the eager path, shapes checked on CPU.

On CPU ``cuda_graph=True`` runs the recorded function eagerly on its static buffers (no capture), so a
wrong buffer shape, a stale input, or a step reading the wrong column shows up here without a GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kronos_model import Kronos, KronosPredictor, KronosTokenizer
from kronos_model.generation import SamplingArgs, generate


@pytest.fixture(scope="module")
def small_pair():
    torch.manual_seed(3)
    tok = KronosTokenizer(
        d_model=32, n_heads=2, ff_dim=64, n_enc_layers=1, n_dec_layers=1, s1_bits=6, s2_bits=6
    )
    model = Kronos(s1_bits=6, s2_bits=6, n_layers=2, d_model=32, n_heads=2, ff_dim=64)
    with torch.no_grad():  # sharp heads: sampled ids depend on the inputs, so a stale buffer is visible
        model.head.proj_s1.weight.mul_(8)
        model.head.proj_s2.weight.mul_(8)
    return tok.eval(), model.eval()


def _batch(lengths, pred_len, seed):
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths)
    x = torch.zeros(len(lengths), width, 6)
    stamps = torch.zeros(len(lengths), width + pred_len, 5)
    for i, n in enumerate(lengths):
        x[i, width - n :] = torch.randn(n, 6, generator=gen)
        stamps[i, width - n :, 2] = torch.arange(width - n, width + pred_len) % 7
    return x, torch.tensor(lengths), stamps


def _run(pair, lengths, pred_len, samples, max_context, *, graph, seed, top_p=0.9):
    tok, model = pair
    x, lens, stamps = _batch(lengths, pred_len, seed)
    uniforms = torch.rand(
        len(lengths) * samples,
        pred_len,
        2,
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(seed),
    )
    record: dict = {}
    out = generate(
        tok,
        model,
        x,
        lens,
        stamps,
        pred_len,
        max_context,
        samples,
        SamplingArgs(T=1.0, top_p=top_p, uniforms=uniforms),
        cuda_graph=graph,
        record=record,
    )
    return out, record


@pytest.mark.parametrize(
    ("lengths", "max_context"),
    [([20, 20], 64), ([20, 13, 7], 64), ([20, 13], 24)],
    ids=["equal-windows", "ragged-windows", "slides-past-context"],
)
def test_static_buffers_give_the_eager_numbers(small_pair, lengths, max_context):
    eager, rec_e = _run(small_pair, lengths, 8, 3, max_context, graph=False, seed=5)
    static, rec_s = _run(small_pair, lengths, 8, 3, max_context, graph=True, seed=5)
    assert torch.equal(rec_e["gen_s1"], rec_s["gen_s1"]) and torch.equal(rec_e["gen_s2"], rec_s["gen_s2"])
    assert torch.equal(eager, static)


def test_a_recorded_signature_is_reused_with_fresh_inputs(small_pair):
    _, model = small_pair
    model.__dict__.pop("_recorded_calls", None)
    first, _ = _run(small_pair, [16, 11], 6, 2, 64, graph=True, seed=1)
    second, rec = _run(small_pair, [16, 11], 6, 2, 64, graph=True, seed=2)  # same shapes, other data
    assert len(model.__dict__["_recorded_calls"]) == 1
    expected, rec_e = _run(small_pair, [16, 11], 6, 2, 64, graph=False, seed=2)
    assert torch.equal(rec["gen_s1"], rec_e["gen_s1"]) and torch.equal(second, expected)
    assert not torch.equal(first, second)
    _run(small_pair, [16, 16], 6, 2, 64, graph=True, seed=2)  # unpadded: another signature
    _run(small_pair, [16, 11], 6, 2, 64, graph=True, seed=2, top_p=0.5)  # other sampling args: another
    assert len(model.__dict__["_recorded_calls"]) == 3


def test_unseeded_draws_come_from_the_generator(small_pair):
    tok, model = small_pair
    x, lens, stamps = _batch([12, 9], 5, 0)

    def draw(seed):
        sampling = SamplingArgs(generator=torch.Generator().manual_seed(seed))
        return generate(tok, model, x, lens, stamps, 5, 64, 4, sampling, cuda_graph=True)

    assert torch.equal(draw(7), draw(7))
    assert not torch.equal(draw(7), draw(8))


def test_predictor_records_graphs_only_on_cuda(small_pair):
    tok, model = small_pair
    assert KronosPredictor(model, tok, device="cpu").cuda_graph is False
    assert KronosPredictor(model, tok, device="cpu", cuda_graph=True).cuda_graph is True


def test_rope_table_stays_float32_under_half_precision():
    half = Kronos(s1_bits=6, s2_bits=6, n_layers=1, d_model=32, n_heads=2, ff_dim=64).to(torch.bfloat16)
    table = half.transformer[0].self_attn.rotary
    assert table.inv_freq.dtype == torch.float32
    cos, _ = table.cos_sin(torch.tensor([257]))
    expected = torch.cos(257.0 * table.inv_freq.double())  # position 257 is not a bfloat16 number
    np.testing.assert_allclose(cos[0, : expected.numel()].double().numpy(), expected.numpy(), atol=1e-4)


def _fused_pair(backend):
    from kronos_model.fused import fuse_elementwise

    torch.manual_seed(3)
    tok = KronosTokenizer(
        d_model=32, n_heads=2, ff_dim=64, n_enc_layers=2, n_dec_layers=2, s1_bits=6, s2_bits=6
    )
    model = Kronos(s1_bits=6, s2_bits=6, n_layers=2, d_model=32, n_heads=2, ff_dim=64)
    plain = Kronos(s1_bits=6, s2_bits=6, n_layers=2, d_model=32, n_heads=2, ff_dim=64)
    plain.load_state_dict(model.state_dict())
    fuse_elementwise(model, tok, backend=backend)
    return tok.eval(), model.eval(), plain.eval()


def test_fused_elementwise_routes_every_block_through_the_compiled_functions():
    """backend='eager' traces the same math without generating kernels: the plumbing, bit for bit."""
    tok, model, plain = _fused_pair("eager")
    from kronos_model.layers import rms_norm

    assert model.norm.norm_fn is not rms_norm and model.transformer[0].ffn.ffn_fn is tok.encoder[0].ffn.ffn_fn
    ids = torch.randint(0, 64, (3, 11))
    with torch.inference_mode():
        assert torch.equal(model.decode_s1(ids, ids)[0], plain.decode_s1(ids, ids)[0])


@pytest.mark.slow
def test_inductor_fused_blocks_match_eager_to_rounding():
    tok, model, plain = _fused_pair("inductor")
    ids = torch.randint(0, 64, (3, 11))
    with torch.inference_mode():
        fused, eager = model.decode_s1(ids, ids)[0], plain.decode_s1(ids, ids)[0]
    torch.testing.assert_close(fused, eager, rtol=1e-4, atol=1e-5)


def test_fused_sampler_draws_the_same_ids():
    from kronos_model.fused import fused_sampler
    from kronos_model.sampling import sample_from_logits

    logits = torch.randn(6, 64, generator=torch.Generator().manual_seed(0)) * 3
    u = torch.rand(6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for top_k, top_p in ((0, 0.9), (5, 1.0), (0, 1.0)):
        expected = sample_from_logits(logits, 0.8, top_k, top_p, uniform=u)
        assert torch.equal(fused_sampler("eager")(logits, 0.8, top_k, top_p, uniform=u), expected)
