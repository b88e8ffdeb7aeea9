"""Exact parity with the official Kronos code on the reference vectors in tests/fixtures/tiny."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from kronos_model import Kronos, KronosPredictor, KronosTokenizer

from ..conftest import FIXTURES

LOGITS = dict(rtol=1e-5, atol=5e-5)
HIDDEN = dict(rtol=1e-5, atol=1e-5)
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())


@pytest.fixture(scope="module")
def tok():
    return KronosTokenizer.from_pretrained(FIXTURES / "tokenizer")


@pytest.fixture(scope="module")
def model():
    return Kronos.from_pretrained(FIXTURES / "predictor")


@pytest.fixture(scope="module")
def tref():
    return dict(np.load(FIXTURES / "tokenizer_ref.npz"))


@pytest.fixture(scope="module")
def pref():
    return dict(np.load(FIXTURES / "predictor_ref.npz"))


def test_tokenizer_encode_decode(tok, tref):
    x = torch.from_numpy(tref["x"])
    with torch.no_grad():
        s1, s2 = tok.encode(x, half=True)
        full = tok.encode(x, half=False)
        np.testing.assert_array_equal(s1.numpy(), tref["enc_half_s1"])
        np.testing.assert_array_equal(s2.numpy(), tref["enc_half_s2"])
        np.testing.assert_array_equal(full.numpy(), tref["enc_full"])
        np.testing.assert_allclose(
            tok.quant_embed(_encoder_hidden(tok, x)).numpy(), tref["quant_embed_out"], **HIDDEN
        )
        dec_half = tok.decode(
            (torch.from_numpy(tref["enc_half_s1"]), torch.from_numpy(tref["enc_half_s2"])), half=True
        )
        dec_full = tok.decode(torch.from_numpy(tref["enc_full"]), half=False)
    np.testing.assert_allclose(dec_half.numpy(), tref["dec_half"], **HIDDEN)
    np.testing.assert_allclose(dec_full.numpy(), tref["dec_full"], **HIDDEN)


def _encoder_hidden(tok, x):
    h = tok.embed(x)
    for blk in tok.encoder:
        h = blk(h)
    return h


def test_tokenizer_forward_and_losses(tok, tref):
    x = torch.from_numpy(tref["x"])
    with torch.no_grad():
        (z_pre, z), bsq_loss, quantized, z_indices = tok(x)
    np.testing.assert_allclose(z_pre.numpy(), tref["fwd_z_pre"], **HIDDEN)
    np.testing.assert_allclose(z.numpy(), tref["fwd_z"], **HIDDEN)
    np.testing.assert_allclose(quantized.numpy(), tref["fwd_quantized"], **HIDDEN)
    np.testing.assert_array_equal(z_indices.numpy(), tref["fwd_z_indices"])
    np.testing.assert_allclose(bsq_loss.item(), tref["fwd_bsq_loss"], rtol=1e-5)
    recon_pre = torch.nn.functional.mse_loss(z_pre, x)
    recon_all = torch.nn.functional.mse_loss(z, x)
    np.testing.assert_allclose(recon_pre.item(), tref["train_recon_pre"], rtol=1e-5)
    np.testing.assert_allclose(recon_all.item(), tref["train_recon_all"], rtol=1e-5)
    np.testing.assert_allclose(
        ((recon_pre + recon_all + bsq_loss) / 2).item(), tref["train_total_loss"], rtol=1e-5
    )


def _pinputs(pref):
    return (
        torch.from_numpy(pref["s1_ids"]),
        torch.from_numpy(pref["s2_ids"]),
        torch.from_numpy(pref["stamp"]),
        torch.from_numpy(pref["s1_targets"]),
        torch.from_numpy(pref["s2_targets"]),
    )


def test_predictor_decode_paths(model, pref):
    s1, s2, stamp, s1_t, _ = _pinputs(pref)
    with torch.no_grad():
        logits, ctx = model.decode_s1(s1, s2, stamp)
        np.testing.assert_allclose(logits.numpy(), pref["decode_s1_logits"], **LOGITS)
        np.testing.assert_allclose(ctx.numpy(), pref["decode_s1_context"], **HIDDEN)
        full = model.decode_s2(torch.from_numpy(pref["decode_s1_context"]), s1_t)
        np.testing.assert_allclose(full.numpy(), pref["decode_s2_full_logits"], **LOGITS)
        last_s1 = logits[:, -1].argmax(-1, keepdim=True)
        np.testing.assert_array_equal(last_s1.numpy(), pref["decode_s2_last_s1"])
        last = model.decode_s2(torch.from_numpy(pref["decode_s1_context"]), last_s1)
        np.testing.assert_allclose(last.numpy(), pref["decode_s2_last_logits"], **LOGITS)


def test_predictor_forward_teacher_forcing_and_loss(model, pref):
    s1, s2, stamp, s1_t, s2_t = _pinputs(pref)
    with torch.no_grad():
        l1, l2 = model(s1, s2, stamp, use_teacher_forcing=True, s1_targets=s1_t)
        np.testing.assert_allclose(l1.numpy(), pref["fwd_eval_tf_s1_logits"], **LOGITS)
        np.testing.assert_allclose(l2.numpy(), pref["fwd_eval_tf_s2_logits"], **LOGITS)
        loss = torch.stack(model.head.compute_loss(l1, l2, s1_t, s2_t)).numpy()
        np.testing.assert_allclose(loss, pref["loss_eval_tf"], rtol=1e-5)
        mask = torch.from_numpy(pref["loss_padding_mask"])
        masked = torch.stack(model.head.compute_loss(l1, l2, s1_t, s2_t, padding_mask=mask)).numpy()
        np.testing.assert_allclose(masked, pref["loss_eval_tf_masked"], rtol=1e-5)
        nostamp, _ = model(s1, s2, None, use_teacher_forcing=True, s1_targets=s1_t)
        np.testing.assert_allclose(nostamp.numpy(), pref["fwd_eval_nostamp_s1_logits"], **LOGITS)
        torch.manual_seed(MANIFEST["predictor_ref"].get("sampled_seed", 2003))
        _, sampled_l2 = model(s1, s2, stamp, use_teacher_forcing=False)
        forced_l2 = model(
            s1, s2, stamp, use_teacher_forcing=True, s1_targets=torch.from_numpy(pref["fwd_eval_sampled_s1"])
        )[1]
        np.testing.assert_allclose(forced_l2.numpy(), pref["fwd_eval_sampled_s2_logits"], **LOGITS)
    model.train()
    try:
        with torch.no_grad():
            l1_train, l2_train = model(s1, s2, stamp, use_teacher_forcing=True, s1_targets=s1_t)
        np.testing.assert_allclose(l2_train.numpy(), pref["fwd_train_tf_s2_logits"], **LOGITS)
        loss_train = torch.stack(model.head.compute_loss(l1_train, l2_train, s1_t, s2_t)).numpy()
        np.testing.assert_allclose(loss_train, pref["loss_train_tf"], rtol=1e-5)
    finally:
        model.eval()
    assert sampled_l2.shape == forced_l2.shape


# -- end-to-end predict / predict_batch ------------------------------------------------------------------
CASES = {c["name"]: c for c in MANIFEST["predict_cases"]}
GREEDY = [name for name, c in CASES.items() if c["greedy"]]


def _read_input(path):
    df = pd.read_csv(FIXTURES / path)
    df["timestamp"] = pd.to_datetime(df["timestamp"])
    return df


def _read_output(path):
    df = pd.read_csv(FIXTURES / path)
    return df.drop(columns=["timestamp"]).to_numpy(np.float64)


def _y_stamps(case, i, tz_like):
    # y_timestamp = the timestamps of the output CSV (the rows following the input window)
    out = pd.read_csv(FIXTURES / case["outputs"][i])
    return pd.Series(pd.to_datetime(out["timestamp"]), name="timestamp")


@pytest.mark.parametrize("use_cache", [True, False], ids=["cached", "recompute"])
@pytest.mark.parametrize("name", GREEDY)
def test_predict_matches_reference(model, tok, name, use_cache):
    case = CASES[name]
    init = case["predictor_init"]
    predictor = KronosPredictor(model, tok, device="cpu", max_context=init["max_context"], clip=init["clip"])
    args = dict(case["call_args"])
    trace = np.load(FIXTURES / case["trace"])
    frames = [_read_input(inp["input_csv"]) for inp in case["inputs"]]
    xs = [f["timestamp"] for f in frames]
    ys = [_y_stamps(case, i, f) for i, f in enumerate(frames)]
    data = [f.drop(columns=["timestamp"]) for f in frames]
    torch.manual_seed(case["torch_manual_seed_before_call"])
    if case["function"] == "KronosPredictor.predict_batch":
        outs = predictor.predict_batch(data, xs, ys, use_cache=use_cache, **args)
    else:
        outs = [predictor.predict(data[0], xs[0], ys[0], use_cache=use_cache, **args)]
    for i, out in enumerate(outs):
        expected = _read_output(case["outputs"][i])
        assert list(out.columns) == ["open", "high", "low", "close", "volume", "amount"]
        assert out.index.equals(pd.Index(ys[i].to_numpy(), name="timestamp"))
        np.testing.assert_allclose(
            out[["open", "high", "low", "close"]].to_numpy(), expected[:, :4], rtol=1e-5
        )
        np.testing.assert_allclose(
            out[["volume", "amount"]].to_numpy(), expected[:, 4:], rtol=1e-5, atol=1e-9
        )
        np.testing.assert_allclose(out.to_numpy(np.float32), trace["pred"][i], rtol=1e-5, atol=1e-9)


def test_predict_tokens_match_trace(model, tok):
    """The generated token paths themselves equal the reference's, including the sliding-window case."""
    from kronos_model.generation import SamplingArgs, generate

    for name in ("greedy_ctx512", "greedy_ctx32", "intraday_amount"):
        case = CASES[name]
        trace = np.load(FIXTURES / case["trace"])
        predictor = KronosPredictor(
            model, tok, device="cpu", max_context=case["predictor_init"]["max_context"]
        )
        frame = _read_input(case["inputs"][0]["input_csv"])
        window = predictor._window(
            frame.drop(columns=["timestamp"]), frame["timestamp"], _y_stamps(case, 0, frame), 12, "df"
        )
        np.testing.assert_array_equal(window.mean, trace["x_mean"][0])
        np.testing.assert_array_equal(window.std, trace["x_std"][0])
        s1, s2 = tok.encode(torch.from_numpy(window.x)[None], half=True)
        np.testing.assert_array_equal(s1.numpy(), trace["hist_s1"])
        np.testing.assert_array_equal(s2.numpy(), trace["hist_s2"])
        for use_cache in (True, False):
            record = {}
            out = generate(
                tok,
                model,
                torch.from_numpy(window.x)[None],
                torch.tensor([len(window.x)]),
                torch.from_numpy(window.stamps)[None],
                12,
                predictor.max_context,
                1,
                SamplingArgs(top_k=1),
                use_cache=use_cache,
                record=record,
            )
            np.testing.assert_array_equal(record["gen_s1"].numpy(), trace["gen_s1"])
            np.testing.assert_array_equal(record["gen_s2"].numpy(), trace["gen_s2"])
            np.testing.assert_allclose(out[0, 0].numpy(), trace["decode_out"][0, -12:], **HIDDEN)


def test_sampled_case_matches_reference_rng_use(model, tok):
    """Nucleus sampling after torch.manual_seed(123) reproduces the reference (same multinomial calls)."""
    case = CASES["sampled_seed123"]
    predictor = KronosPredictor(model, tok, device="cpu", max_context=case["predictor_init"]["max_context"])
    frame = _read_input(case["inputs"][0]["input_csv"])
    for use_cache in (True, False):
        torch.manual_seed(case["torch_manual_seed_before_call"])
        out = predictor.predict(
            frame.drop(columns=["timestamp"]),
            frame["timestamp"],
            _y_stamps(case, 0, frame),
            use_cache=use_cache,
            **case["call_args"],
        )
        np.testing.assert_allclose(out.to_numpy(), _read_output(case["outputs"][0]), rtol=1e-5)
