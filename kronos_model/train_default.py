"""Train the bundled ``kronos-bt/nano`` checkpoint from scratch: ``python -m kronos_model.train_default``.

Data: the daily S&P 500 and NASDAQ composite bars shipped with the ``arch`` package, plus their weekly
resamples, using only bars up to 2014-12-31; 2015 onwards is held out for evaluation and demos.
Everything goes through the public training API (:mod:`kronos_model.training`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .config import KronosConfig, KronosTokenizerConfig, config_to_dict
from .training import FinetuneConfig, build_predictor, build_tokenizer, finetune_predictor, finetune_tokenizer

TRAIN_END = "2014-12-31"  # last bar used for training; later bars are held out
DEFAULT_OUT = Path(__file__).resolve().parent / "checkpoints" / "nano"
SEED = 20141231

TOKENIZER = KronosTokenizerConfig(
    d_in=6,
    d_model=64,
    n_heads=4,
    ff_dim=128,
    n_enc_layers=3,
    n_dec_layers=3,
    ffn_dropout_p=0.0,
    attn_dropout_p=0.0,
    resid_dropout_p=0.0,
    s1_bits=8,
    s2_bits=8,
    beta=0.05,
    gamma0=1.0,
    gamma=1.1,
    zeta=0.05,
    group_size=4,
)
PREDICTOR = KronosConfig(
    s1_bits=8,
    s2_bits=8,
    n_layers=4,
    d_model=128,
    n_heads=4,
    ff_dim=256,
    ffn_dropout_p=0.2,
    attn_dropout_p=0.0,
    resid_dropout_p=0.2,
    token_dropout_p=0.1,
    learn_te=True,
)
TOKENIZER_RUN = FinetuneConfig(
    lookback=256,
    horizon=24,
    batch_size=32,
    epochs=3,
    steps_per_epoch=100,
    lr=1e-3,
    weight_decay=0.05,
    warmup=0.05,
    grad_clip=2.0,
    patience=2,
    val_fraction=0.1,
    max_val_windows=128,
    seed=SEED,
)
PREDICTOR_RUN = dataclasses.replace(  # the tokenizer's run with a slower, longer schedule
    TOKENIZER_RUN, epochs=5, lr=5e-4, weight_decay=0.1, min_lr_ratio=0.5, max_val_windows=256
)


def _arch_frame(module_name: str) -> pd.DataFrame:
    """One ``arch`` daily index as a lower-case OHLCV frame (``Adj Close`` dropped: equal to close for indices)."""
    import importlib

    raw = importlib.import_module(f"arch.data.{module_name}").load()
    df = raw.rename(columns=str.lower)[["open", "high", "low", "close", "volume"]].astype("float64")
    df.index = pd.DatetimeIndex(df.index, name="timestamp")
    return df.sort_index()


def weekly(df: pd.DataFrame) -> pd.DataFrame:
    """Friday-labelled weekly bars: first open, max high, min low, last close, summed volume."""
    rules = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    return df.resample("W-FRI").agg(rules).dropna()


def training_frames(end: str = TRAIN_END) -> dict[str, pd.DataFrame]:
    """Daily and weekly S&P 500 and NASDAQ bars up to ``end`` (inclusive), keyed by name."""
    frames = {}
    for name in ("sp500", "nasdaq"):
        daily = _arch_frame(name).loc[:end]
        frames[f"{name}_daily"] = daily
        week = weekly(daily)
        frames[f"{name}_weekly"] = week.loc[:end]  # drops the last, partial week labelled after ``end``
    return frames


def train(
    out: Path,
    *,
    device: str | None = "cpu",
    verbose: bool = True,
    command: str = "python -m kronos_model.train_default",
) -> dict[str, Any]:
    """Train tokenizer then predictor from scratch, save both with their records, and write the model card."""
    frames = training_frames()
    started = time.perf_counter()
    tok_cfg = replace(TOKENIZER_RUN, device=device, verbose=verbose)
    pred_cfg = replace(PREDICTOR_RUN, device=device, verbose=verbose)
    tokenizer = build_tokenizer(TOKENIZER, seed=SEED)
    tok_result = finetune_tokenizer(tokenizer, frames, tok_cfg)
    model = build_predictor(PREDICTOR, seed=SEED)
    pred_result = finetune_predictor(model, tokenizer, frames, pred_cfg)
    tok_result.module.to("cpu")
    pred_result.module.to("cpu")
    tok_result.save(out / "tokenizer")
    pred_result.save(out / "predictor")
    summary = {
        "tokenizer_val_mse": tok_result.best_val_loss,
        "tokenizer_train_loss": tok_result.history[-1]["train_loss"],
        "predictor_val_ce": pred_result.best_val_loss,
        "predictor_train_ce": pred_result.history[-1]["train_loss"],
        "wall_seconds": round(time.perf_counter() - started, 1),
        "threads": torch.get_num_threads(),
        "command": command,
        "params_millions": sum(p.numel() for m in (model, tokenizer) for p in m.parameters()) / 1e6,
    }
    write_model_card(out, tok_result.record, pred_result.record, summary)
    return summary


SKILL_HEADING = "## Measured skill"


def _kept_skill_section(path: Path) -> str | None:
    """The skill section of an existing model card (filled in by the evaluation), to survive a retrain."""
    if not path.exists():
        return None
    text = path.read_text()
    if SKILL_HEADING not in text:
        return None
    rest = text.split(SKILL_HEADING, 1)[1]
    end = rest.find("\n## ")
    return SKILL_HEADING + (rest if end < 0 else rest[:end]).rstrip() + "\n"


def _epochs_table(record: dict) -> str:
    """Markdown table of per-epoch losses."""
    rows = ["| epoch | step | train loss | val loss |", "|---|---|---|---|"]
    for h in record["epochs"]:
        val = "-" if h["val_loss"] is None else f"{h['val_loss']:.4f}"
        rows.append(f"| {h['epoch']} | {h['step']} | {h['train_loss']:.4f} | {val} |")
    return "\n".join(rows)


def write_model_card(out: Path, tok: dict, pred: dict, summary: dict[str, Any]) -> Path:
    """Write ``README.md`` next to the weights: data, dates, configs, training, skill placeholder, limits."""
    path = out / "README.md"
    skill = _kept_skill_section(path) or (
        f"{SKILL_HEADING}\n\n_Not measured yet._ Held-out evaluation (2015-2018 S&P 500 and NASDAQ, and other series "
        "never used in training) is produced by `kronos-bt evaluate` and pasted here with the exact command: "
        "CRPS, 80 % interval coverage and width, direction hit rate, IC/RankIC (with t-statistics) and "
        "volatility error, each next to the random-walk, drift, bootstrap and GARCH(1,1) baselines.\n"
    )
    data_rows = "\n".join(
        f"| {d['name']} | {d['bars']} | {d.get('train_first_bar', '-')[:10]} .. {d.get('train_last_bar', '-')[:10]} "
        f"| {d.get('val_first_bar', '-')[:10]} .. {d.get('val_last_bar', '-')[:10]} |"
        for d in pred["data"]
    )
    text = f"""# kronos-bt/nano: a small Kronos-architecture model trained from scratch

**This is not the released Kronos.** It is a {summary["params_millions"]:.2f}M-parameter model with the Kronos architecture
(BSQ tokenizer + decoder-only predictor), trained from scratch by `make train-default`; these weights
come from `{summary["command"]}`, which took {summary["wall_seconds"]:.0f} s on device `{pred["device"]}`
(measured on CPU: the same command used 2088 CPU-seconds, i.e. about 17-18 minutes on 2 dedicated cores; 32 min wall on a 2-core machine shared with other jobs, and it reproduced the shipped validation losses to 3 digits). Runs on other devices,
thread counts or torch versions give weights that differ at float precision; the recipe, seed and data
fingerprint below are fixed. It exists so that kronos-bt works
offline out of the box and in tests. For real use, load a released checkpoint from the hub
(`KronosPredictor.from_pretrained("NeoQuasar/Kronos-small")`) or fine-tune one on your market with
`kronos_model.training`.

Load it with `KronosPredictor.from_pretrained()` (no argument) or `kronos_model.load_default()`.

## Data

Daily bars of the S&P 500 and NASDAQ composite indices shipped with the `arch` package
(`arch.data.sp500`, `arch.data.nasdaq`; columns open/high/low/close/volume, `Adj Close` dropped),
plus Friday-labelled weekly resamples of the same bars. **Only bars up to {TRAIN_END} are used;
2015 onwards is held out.** Validation (for early stopping) is the last 10 % of the pooled bars in time,
after a single cut-off at {pred["cutoff"][:10]}; no validation window overlaps a training bar.
Data fingerprint (sha256): `{pred["data_fingerprint"]}`.

| series | bars | training windows span | validation windows span |
|---|---|---|---|
{data_rows}

## How it was trained

- Windows of 256 + 24 (+1) bars, each normalised with the mean/std of its own 256-bar lookback only
  (then clipped to +-5), exactly as at inference; no statistic ever includes a future bar.
- Tokenizer: loss (MSE(z_pre, x) + MSE(z, x) + BSQ loss) / 2, {tok["steps"]} AdamW steps of batch
  {tok["config"]["batch_size"]}, lr {tok["config"]["lr"]} with warm-up and cosine decay; best validation
  reconstruction MSE {summary["tokenizer_val_mse"]:.4f}.
- Predictor: tokenizer frozen, next-token cross-entropy (ce_s1 + ce_s2) / 2 over every position, s2 conditioned
  on the true next s1 (teacher forcing), {pred["steps"]} AdamW steps of batch {pred["config"]["batch_size"]},
  lr {pred["config"]["lr"]}; best validation loss {summary["predictor_val_ce"]:.4f} nats
  (uniform guessing would be {_uniform_ce(pred):.2f}).
- Seed {pred["seed"]}, device {pred["device"]}, {summary["threads"]} torch threads, versions
  `{json.dumps(pred["versions"], sort_keys=True)}`. Full records: `tokenizer/training_record.json`,
  `predictor/training_record.json`.

Tokenizer epochs:

{_epochs_table(tok)}

Predictor epochs:

{_epochs_table(pred)}

## Configuration

- tokenizer: `{json.dumps(config_to_dict(TOKENIZER), sort_keys=True)}`
- predictor: `{json.dumps(config_to_dict(PREDICTOR), sort_keys=True)}`

{skill}
## Limits

- Trained on two US equity indices (which move together) and 16 years of daily/weekly bars only; it has
  never seen single stocks, crypto, FX or intraday bars, so forecasts on those are extrapolation.
- Small and briefly trained: expect forecasts close to a noisy random walk. Check the skill section and
  compare with the baselines before trusting a signal; never trade on it without your own evaluation.
- The tokenizer's reconstruction error (validation MSE {summary["tokenizer_val_mse"]:.3f} in normalised units,
  about {summary["tokenizer_val_mse"] ** 0.5:.2f} of a lookback standard deviation) limits short-horizon accuracy:
  a one-step forecast can sit off the last close by a fraction of the lookback's standard deviation.
- Context was trained up to 280 bars; longer lookbacks run but were never seen in training.
- Sampling is stochastic: pass a seed for reproducible forecasts.
"""
    path.write_text(text)
    return path


def _uniform_ce(record: dict) -> float:
    """Cross-entropy of a uniform guess over both vocabularies, (ln V1 + ln V2) / 2."""
    import math

    c = record["model_config"]
    return (c["s1_bits"] + c["s2_bits"]) / 2 * math.log(2)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``make train-default``)."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="checkpoint directory")
    parser.add_argument("--device", default="cpu", help="torch device (cpu keeps the run reproducible)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    command = " ".join(
        ["python -m kronos_model.train_default", *(argv if argv is not None else sys.argv[1:])]
    )
    summary = train(args.out, device=args.device, verbose=not args.quiet, command=command)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
