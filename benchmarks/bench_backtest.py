"""Backtest speed: forecast bars/s in vectorised (runonce) vs event mode, and a first run vs a cached re-run.

Runs the shipped ``backtests/sp500_threshold.yaml`` (S&P 500 daily from the ``arch`` package) through
``kronos_strategies.runner.run_backtest``. The model is the bundled checkpoint when it is installed,
otherwise a seeded random-init model of the same shape (``--model nano-random``): same cost, noise forecasts.

    python benchmarks/bench_backtest.py                  # the full 2015-2018 demo period (1006 bars), minutes
    python benchmarks/bench_backtest.py --bars 250 --threads 1   # a quicker look; one thread is steadier when shared

The cached re-run includes writing the reports (the quantstats HTML costs a few seconds whatever the
forecasting cost), so its share of the first run shrinks as the first run grows.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# isort: off
from kronos_model.errors import CheckpointError  # noqa: E402  (first: sets OpenMP's wait policy)
from kronos_strategies.config import load_config  # noqa: E402
from kronos_strategies.runner import run_backtest  # noqa: E402
import torch  # noqa: E402  (after kronos_model, so the passive OpenMP wait policy applies)

# isort: on


def _predictor(kind: str, device: str):
    """The model to time: bundled, random-init with the bundled shape, or the tiny test checkpoint."""
    from kronos_model import Kronos, KronosPredictor, KronosTokenizer

    if kind in ("auto", "bundled"):
        try:
            return KronosPredictor.from_pretrained(device=device), "bundled (kronos-bt/nano)"
        except CheckpointError:
            if kind == "bundled":
                raise
    if kind in ("auto", "nano-random"):
        from kronos_model.train_default import PREDICTOR, TOKENIZER
        from kronos_model.training import build_predictor, build_tokenizer

        model = KronosPredictor(
            build_predictor(PREDICTOR), build_tokenizer(TOKENIZER), device=device, max_context=512
        )
        return model, "nano-shaped, random weights"
    tiny = ROOT / "tests" / "fixtures" / "tiny"
    model = KronosPredictor(Kronos.from_pretrained(tiny / "predictor"), KronosTokenizer.from_pretrained(tiny / "tokenizer"),
                            device=device, max_context=512)  # fmt: skip
    return model, "tiny test checkpoint"


def _config(
    args: argparse.Namespace, trading_bars: int, mode: str, cache: str | None, out: Path, enter: float
):
    cfg = load_config(
        ROOT / "backtests" / "sp500_threshold.yaml",
        [f"engine.mode={mode}", "engine.progress=false", f"indicator.sample_count={args.sample_count}",
         f"indicator.lookback={args.lookback}", f"indicator.pred_len={args.pred_len}",
         f"indicator.horizon={args.pred_len}", f"indicator.cache_dir={cache if cache else 'null'}",
         f"strategy.params.enter={enter}", f"output.dir={out}"],
    )  # fmt: skip
    # trading_bars business days from 2015-01-02 (the data has holidays; the runner slices by date)
    import pandas as pd

    cfg.dates.end = str((pd.Timestamp("2015-01-02") + pd.offsets.BDay(int(trading_bars * 1.03))).date())
    return cfg


def _timed(cfg, predictor, write_reports: bool) -> dict[str, float]:
    started = time.perf_counter()
    result = run_backtest(cfg, predictor=predictor, write_reports=write_reports)
    seconds = time.perf_counter() - started
    stats = result.forecast_stats
    return {
        "bars": stats.windows,
        "seconds": round(seconds, 3),
        "model_seconds": round(stats.seconds, 3),
        "forecast_bars_per_s": round(stats.computed / stats.seconds, 2) if stats.computed else float("nan"),
        "computed": stats.computed,
        "cache_hits": stats.cache_hits,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=("auto", "bundled", "nano-random", "tiny"), default="auto")
    parser.add_argument(
        "--bars", type=int, default=1006, help="trading bars for the vectorised and cache runs"
    )
    parser.add_argument("--event-bars", type=int, default=60, help="trading bars for the event-mode run")
    parser.add_argument("--lookback", type=int, default=256)
    parser.add_argument("--pred-len", type=int, default=5)
    parser.add_argument("--sample-count", type=int, default=16)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (1 is steadier when shared)"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "backtest.json"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    predictor, model_name = _predictor(args.model, args.device)
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        cache = str(tmp_path / "cache")
        _timed(_config(args, 5, "vectorised", None, tmp_path / "w", 0.1), predictor, False)  # warm-up
        rows["event (no cache)"] = _timed(_config(args, args.event_bars, "event", None, tmp_path / "e", 0.1),
                                          predictor, False)  # fmt: skip
        rows["vectorised, first run"] = _timed(_config(args, args.bars, "vectorised", cache, tmp_path / "r1", 0.1),
                                               predictor, True)  # fmt: skip
        rows["cached re-run, enter=0.3"] = _timed(_config(args, args.bars, "vectorised", cache, tmp_path / "r2", 0.3),
                                                  predictor, True)  # fmt: skip
        rows["  same, no reports"] = _timed(_config(args, args.bars, "vectorised", cache, tmp_path / "r3", 0.2),
                                            predictor, False)  # fmt: skip
    event, first, cached = (
        rows["event (no cache)"],
        rows["vectorised, first run"],
        rows["cached re-run, enter=0.3"],
    )
    speedup = first["forecast_bars_per_s"] / event["forecast_bars_per_s"]
    ratio = cached["seconds"] / first["seconds"]
    print(f"model: {model_name}; lookback {args.lookback}, pred_len {args.pred_len}, {args.sample_count} samples; "
          f"device {args.device}, torch threads {torch.get_num_threads()}")  # fmt: skip
    print(
        f"{'run':<27}{'bars':>6}{'wall s':>9}{'model s':>9}{'forecast bars/s':>17}{'computed':>10}{'cached':>8}"
    )
    for name, row in rows.items():
        print(f"{name:<27}{row['bars']:>6}{row['seconds']:>9.2f}{row['model_seconds']:>9.2f}"
              f"{row['forecast_bars_per_s']:>17.2f}{row['computed']:>10}{row['cache_hits']:>8}")  # fmt: skip
    print(
        f"forecast bars/s vectorised / event: {speedup:.2f}x; cached re-run / first run wall time: {100 * ratio:.1f}% "
        f"(without writing reports: {100 * rows['  same, no reports']['seconds'] / first['seconds']:.1f}%)"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "model": model_name, "args": vars(args), "torch_threads": torch.get_num_threads(),
        "machine": platform.platform(), "rows": rows, "vectorised_over_event": round(speedup, 3),
        "cached_over_first": round(ratio, 4),
    }, indent=2) + "\n")  # fmt: skip
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
