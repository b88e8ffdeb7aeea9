"""Sweep benchmark: 2 assets x 50 parameter sets, sequential vs dask LocalCluster with 1 and 2 workers.

Each mode starts from an empty forecast cache and output folder, so every mode computes each forecast
once (precompute) and runs all backtests; a last row re-runs the 2-worker sweep into a new output
folder with the cache kept warm (forecasts reused, backtests run again), and a final row re-runs it into the
same output folder, where every run is recorded (issue 14: no cluster is started and no model loaded).
Wall times include starting the local cluster. Prints a table and writes JSON.

    python benchmarks/bench_sweep.py [--bars 250] [--lookback 32] [--model tiny|bundled] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere, installed or not
    sys.path.insert(0, str(ROOT))

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "sweep.json"
TINY = ROOT / "tests" / "fixtures" / "tiny"
ENTER = (-0.2, -0.1, 0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)  # 10 x 5 horizons = 50 parameter sets
HORIZON = (1, 2, 3, 4, 5)


def _assets(root: Path, bars: int) -> list[dict[str, str]]:
    """Two assets: the built-in S&P 500 bars of 2011-2012 and of 2016-2017, as CSV files."""
    from kronos_strategies.feeds import load_dataset

    raw = load_dataset("sp500").rename(columns=str.lower)[["open", "high", "low", "close", "volume"]]
    out = []
    for name, year in (("sp500_2011", "2011"), ("sp500_2016", "2016")):
        path = root / f"{name}.csv"
        raw.loc[year:].iloc[:bars].to_csv(path, index_label="timestamp")
        out.append({"path": str(path), "name": name})
    return out


def _config(assets: list[dict[str, str]], cache: Path, args: argparse.Namespace) -> dict[str, Any]:
    model = (
        {}
        if args.model == "bundled"
        else {"predictor": str(TINY / "predictor"), "tokenizer": str(TINY / "tokenizer")}
    )
    return {
        "name": "bench_sweep",
        "data": dict(assets[0]),
        "model": model,
        "indicator": {"lookback": args.lookback, "pred_len": 5, "horizon": 5, "sample_count": args.samples,
                      "seed": 0, "cache_dir": str(cache)},
        "strategy": {"name": "threshold", "params": {"enter": 0.1, "exit": 0.0}},
        "output": {"tearsheet": False, "chart": False},
        "sweep": {"params": {"strategy.params.enter": list(ENTER), "indicator.horizon": list(HORIZON)},
                  "assets": assets, "objective": "sharpe", "top_n": 0},
    }  # fmt: skip


def _measure(label: str, cfg: dict[str, Any], out: Path, scheduler: str | None, workers: int | None) -> dict:
    from kronos_strategies.sweep import run_sweep

    began = time.perf_counter()
    result = run_sweep(cfg, scheduler=scheduler, workers=workers, out=out)
    wall = time.perf_counter() - began
    s = result.summary
    return {
        "mode": label, "workers": workers or 0, "wall_s": round(wall, 2), "runs": s["runs"],
        "executed": s["executed"], "forecasts_computed": s["forecasts_computed"],
        "forecasts_reused": s["forecasts_reused"], "backtest_forecasts_computed": s["backtest_forecasts_computed"],
        "model_loads": sorted(s["model_loads"].values()), "best_sharpe": float(result.table["sharpe"].iloc[0]),
        "cluster": s["cluster"],
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bars", type=int, default=250, help="bars per asset (lookback - 1 of them warm-up)")
    parser.add_argument("--lookback", type=int, default=32)
    parser.add_argument("--samples", type=int, default=8, help="sample paths per forecast")
    parser.add_argument("--model", choices=("tiny", "bundled"), default="tiny",
                        help="tiny: the random-init test checkpoint (fast); bundled: kronos-bt/nano")  # fmt: skip
    parser.add_argument("--workers", default="1,2", help="comma-separated local cluster sizes")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        root = Path(tmp)
        assets = _assets(root, args.bars)
        modes: list[tuple[str, str | None, int | None]] = [("sequential", "sequential", None)]
        modes += [
            (f"dask {n} worker{'s' if n > 1 else ''}", None, n) for n in map(int, args.workers.split(","))
        ]
        for i, (label, scheduler, workers) in enumerate(modes):
            cfg = _config(assets, root / f"cache{i}", args)
            rows.append(_measure(label, cfg, root / f"out{i}", scheduler, workers))
        last = modes[-1]
        warm = _config(assets, root / f"cache{len(modes) - 1}", args)
        rows.append(_measure(f"{last[0]}, warm cache", warm, root / "out_warm", last[1], last[2]))
        rows.append(_measure("all runs recorded", warm, root / "out_warm", last[1], last[2]))
    base = rows[0]["wall_s"]
    print(f"{'mode':<28}{'wall s':>8}{'speed-up':>10}{'runs':>6}{'computed':>10}{'reused':>8}{'loads':>8}")
    for r in rows:
        print(f"{r['mode']:<28}{r['wall_s']:>8.1f}{base / r['wall_s']:>9.2f}x{r['executed']:>6}"
              f"{r['forecasts_computed']:>10}{r['forecasts_reused']:>8}{str(r['model_loads']):>8}")  # fmt: skip
    payload = {
        "benchmark": "sweep", "assets": 2, "parameter_sets": len(ENTER) * len(HORIZON), "bars": args.bars,
        "lookback": args.lookback, "sample_count": args.samples, "model": args.model,
        "cpu_count": os.cpu_count(), "load_average": os.getloadavg(), "python": platform.python_version(),
        "machine": platform.machine(), "rows": rows,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
