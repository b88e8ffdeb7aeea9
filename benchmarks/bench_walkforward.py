"""Walk-forward cost: first run (train every fold + forecast) vs a cached re-run, and the cost per fold.

Runs ``backtests/sp500_walkforward.yaml`` through ``kronos_strategies.runner.run_backtest`` twice on a
fresh cache: the first run fine-tunes every fold and forecasts its bars, the second changes only a
trading parameter and must train and forecast nothing. The model is the bundled checkpoint when it
is installed, otherwise a seeded random-init model of the same shape (same cost, noise forecasts).

    python benchmarks/bench_walkforward.py                      # first 2 quarters of 2015
    python benchmarks/bench_walkforward.py --end 2018-12-31     # the full example (16 folds)
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kronos_model.errors import CheckpointError  # noqa: E402
from kronos_strategies.config import load_config  # noqa: E402
from kronos_strategies.runner import run_backtest  # noqa: E402


def _predictor(kind: str):  # noqa: ANN202 - a KronosPredictor and its label
    """The model to time: bundled, or random-init with the bundled shape when it is not installed."""
    from kronos_model import KronosPredictor

    if kind in ("auto", "bundled"):
        try:
            return KronosPredictor.from_pretrained(device="cpu"), "bundled (kronos-bt/nano)"
        except CheckpointError:
            if kind == "bundled":
                raise
    from kronos_model.train_default import PREDICTOR, TOKENIZER
    from kronos_model.training import build_predictor, build_tokenizer

    pair = build_predictor(PREDICTOR), build_tokenizer(TOKENIZER)
    return KronosPredictor(*pair, device="cpu", max_context=512), "nano-shaped, random weights"


def _run(args: argparse.Namespace, predictor, cache: Path, out: Path, enter: float) -> tuple[float, dict]:  # noqa: ANN001
    """One backtest; returns its wall seconds and the walk-forward report it wrote."""
    cfg = load_config(
        ROOT / "backtests" / "sp500_walkforward.yaml",
        [f"dates.end={args.end}", f"indicator.cache_dir={cache}", f"strategy.params.enter={enter}",
         f"output.dir={out}", "output.tearsheet=false", "output.chart=false", "engine.progress=false",
         f"finetune.progress={str(args.progress).lower()}", *args.set],
    )  # fmt: skip
    began = time.perf_counter()
    run_backtest(cfg, predictor=predictor)
    return time.perf_counter() - began, json.loads((out / "walkforward.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=("auto", "bundled", "nano-random"), default="auto")
    parser.add_argument("--end", default="2015-06-30", help="last traded day (2018-12-31: the full example)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--set", action="append", default=[], help="extra key=value overrides of the YAML")
    parser.add_argument("--progress", action="store_true", help="print one line per fold")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "walkforward.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    predictor, label = _predictor(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        first_s, first = _run(args, predictor, Path(tmp) / "cache", Path(tmp) / "run1", enter=0.1)
        again_s, again = _run(args, predictor, Path(tmp) / "cache", Path(tmp) / "run2", enter=0.2)
    folds = first["folds"]
    rows = [
        {"fold": f["fold"], "trade_from": f["trade_from"][:10], "forecasts": f["forecasts"],
         "train_s": f["train_seconds"], "forecast_s": f["forecast_seconds"], "base_s": f["base_seconds"]}
        for f in folds
    ]  # fmt: skip
    n = len(folds)
    summary = {
        "model": label,
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "folds": n,
        "first_run_s": round(first_s, 2),
        "cached_rerun_s": round(again_s, 2),
        "speedup": round(first_s / again_s, 1),
        "rerun_folds_trained": again["trained"],
        "per_fold_train_s": round(sum(r["train_s"] for r in rows) / n, 2),
        "per_fold_forecast_s": round(sum(r["forecast_s"] for r in rows) / n, 2),
        "per_fold_base_forecast_s": round(sum(r["base_s"] for r in rows) / n, 2),
        "per_forecast_ms": round(
            1000 * sum(r["forecast_s"] for r in rows) / sum(r["forecasts"] for r in rows), 1
        ),
        "overrides": args.set,
        "folds_detail": rows,
    }
    print(f"walk-forward benchmark: {label}, {args.threads} thread(s), {n} folds to {args.end}")
    print(f"{'fold':>4} {'trades from':>12} {'bars':>5} {'train s':>8} {'forecast s':>11} {'base s':>7}")
    for r in rows:
        print(f"{r['fold']:>4} {r['trade_from']:>12} {r['forecasts']:>5} {r['train_s']:>8.1f} "
              f"{r['forecast_s']:>11.1f} {r['base_s']:>7.1f}")  # fmt: skip
    print(f"first run {first_s:.1f} s | cached re-run {again_s:.1f} s ({summary['speedup']}x, "
          f"{again['trained']} folds trained) | per fold: train {summary['per_fold_train_s']} s, "
          f"forecast {summary['per_fold_forecast_s']} s + base {summary['per_fold_base_forecast_s']} s")  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
