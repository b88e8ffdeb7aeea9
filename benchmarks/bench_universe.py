"""Universe backtest cost: a whole run vs one bare ``forecast_batch`` call over the same windows, a cached re-run
with a changed ``k``, and peak memory for 10 and 50 assets.

Assets are seeded synthetic random walks on weekdays (so any size of universe can be timed); the model is the
bundled checkpoint. Targets (issue 15): run <= 1.3x the bare call; cached re-run <= 10 % of the first run;
memory flat in the number of assets beyond the forecast chunk.

    python benchmarks/bench_universe.py                          # 10 assets x 4 years (minutes to an hour on CPU)
    python benchmarks/bench_universe.py --years 1 --threads 1    # a quicker look on a shared machine
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kronos_strategies.universe.runner import run_universe_backtest  # noqa: E402


def synthetic_assets(n: int, bars: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    """``n`` seeded random-walk daily OHLCV frames on the same weekdays."""
    rng = np.random.default_rng(seed)
    index = pd.bdate_range("2015-01-01", periods=bars, name="timestamp")
    out = {}
    for i in range(n):
        close = 50 * np.exp(np.cumsum(rng.normal(0.0002, 0.015, bars)))
        open_ = np.concatenate([[close[0]], close[:-1]]) * np.exp(rng.normal(0, 0.003, bars))
        high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, bars))
        low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, bars))
        vol = rng.uniform(1e5, 1e6, bars)
        out[f"s{i:02d}"] = pd.DataFrame(
            {"open": open_, "high": high, "low": low, "close": close, "volume": vol, "amount": vol * close},
            index=index,
        )
    return out


def config(args: argparse.Namespace, cache: str | None, out: Path, k: int) -> dict:
    return {
        "name": "bench_universe",
        "universe": {"data_dir": "unused"},
        "model": {},
        "indicator": {"lookback": args.lookback, "pred_len": args.pred_len, "horizon": args.pred_len,
                      "sample_count": args.samples, "seed": 0, "batch_size": args.batch_size, "cache_dir": cache},
        "strategy": {"name": "topk", "params": {"k": k, "n_drop": 1, "rebalance": 5}},
        "output": {"dir": str(out)},
        "engine": {"mode": "vectorised", "progress": False},
    }  # fmt: skip


def _status_mb(field: str) -> float:
    """A memory line of /proc/self/status (VmRSS: now, VmHWM: peak) in MB; ru_maxrss where /proc is absent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def memory_child(args: argparse.Namespace) -> None:
    """One run on ``--memory-child`` assets in this process; print RSS before and peak RSS during it (JSON).

    The peak high-water mark is reset (Linux ``/proc/self/clear_refs``) after the model is loaded, so the
    peak is the run's own, not the imports'.
    """
    from kronos_strategies.config import ModelConfig
    from kronos_strategies.runner import load_model

    predictor = load_model(ModelConfig())
    assets = synthetic_assets(args.memory_child, args.lookback + args.memory_bars)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    except OSError:
        pass
    before = _status_mb("VmRSS")
    with tempfile.TemporaryDirectory() as tmp:
        res = run_universe_backtest(config(args, None, Path(tmp), 3), frames=assets, predictor=predictor,
                                    write_reports=False)  # fmt: skip
    peak = _status_mb("VmHWM")
    print(json.dumps({"assets": args.memory_child, "windows": res.forecast_stats.windows,
                      "rss_before_mb": round(before, 1), "peak_rss_mb": round(peak, 1),
                      "peak_minus_before_mb": round(peak - before, 1)}))  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--assets", type=int, default=10)
    p.add_argument("--years", type=float, default=4.0)
    p.add_argument("--lookback", type=int, default=128)
    p.add_argument("--pred-len", type=int, default=5)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--memory-bars", type=int, default=30, help="trading bars of the memory runs")
    p.add_argument("--memory-assets", default="10,50")
    p.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        return memory_child(args)

    trading = int(round(args.years * 252))
    assets = synthetic_assets(args.assets, args.lookback - 1 + trading)
    from kronos_strategies.config import ModelConfig
    from kronos_strategies.runner import load_model

    predictor = load_model(ModelConfig())
    lb = args.lookback
    windows = [f.iloc[i - lb + 1 : i + 1] for f in assets.values() for i in range(lb - 1, len(f))]
    print(f"{args.assets} assets x {trading} trading bars = {len(windows)} windows; lookback {lb}, "
          f"{args.samples} samples, pred_len {args.pred_len}, torch threads {torch.get_num_threads()}")  # fmt: skip
    t = time.perf_counter()
    predictor.forecast_batch(
        windows, args.pred_len, sample_count=args.samples, seed=0, batch_size=args.batch_size
    )
    bare = time.perf_counter() - t
    del windows
    print(f"bare forecast_batch over the same windows: {bare:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        first = run_universe_backtest(
            config(args, f"{tmp}/cache", Path(tmp) / "a", 3), frames=assets, predictor=predictor
        )
        run1 = time.perf_counter() - t
        print(f"universe run (cache empty, reports written): {run1:.1f} s = {run1 / bare:.2f}x the bare call "
              f"(target <= 1.3x: {'met' if run1 <= 1.3 * bare else 'MISSED'}); parts: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in first.timings.items()))  # fmt: skip
        t = time.perf_counter()
        second = run_universe_backtest(
            config(args, f"{tmp}/cache", Path(tmp) / "b", 4), frames=assets, predictor=predictor
        )
        run2 = time.perf_counter() - t
        print(f"re-run with k=4 from the cache: {run2:.1f} s = {100 * run2 / run1:.1f} % of the first run "
              f"(target <= 10 %: {'met' if run2 <= 0.1 * run1 else 'MISSED'}); "
              f"{second.forecast_stats.cache_hits}/{second.forecast_stats.windows} windows from the cache; parts: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in second.timings.items()))  # fmt: skip
        t = time.perf_counter()
        run_universe_backtest(config(args, f"{tmp}/cache", Path(tmp) / "c", 4), frames=assets, predictor=predictor,
                              write_reports=False)  # fmt: skip
        run3 = time.perf_counter() - t
        print(f"the same re-run without writing reports (no quantstats HTML, no PNG): {run3:.1f} s = "
              f"{100 * run3 / run1:.1f} % of the first run")  # fmt: skip
    for n in [int(x) for x in args.memory_assets.split(",") if x]:
        cmd = [sys.executable, __file__, "--memory-child", str(n), "--lookback", str(lb), "--samples", str(args.samples),
               "--pred-len", str(args.pred_len), "--memory-bars", str(args.memory_bars)]  # fmt: skip
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        print(f"memory, {n} assets: {line}")


if __name__ == "__main__":
    main()
