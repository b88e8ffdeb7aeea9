"""GPU decode benchmark: eager vs recorded CUDA graph, float32 vs bfloat16 vs float16 (issue 14).

Kronos-small shape with random weights (cost does not depend on the weights), lookback 400, pred_len 24,
one process, every row after a warm-up call of the same shapes (which records the graph; its time is
printed as ``first call``). One forecast = one window's sample paths. Also checks that the graph path
returns the eager numbers, profiles one eager single-window call per dtype, and prints peak memory of
256 windows x 20 samples.

    python benchmarks/bench_gpu.py [--out benchmarks/results/gpu.json] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_inference import SHAPES  # noqa: E402

LOOKBACK, PRED_LEN = 400, 24
DEVICE = "cuda"  # a CPU smoke run of the script's logic sets "cpu"


def sync() -> None:
    import torch

    if DEVICE == "cuda":
        torch.cuda.synchronize()


def synthetic_series(bars: int = 6000):
    """A seeded random-walk daily OHLCV frame (the model's cost does not depend on the values)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, bars)))
    open_ = close * np.exp(rng.normal(0, 0.003, bars))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, bars))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, bars))
    volume = rng.uniform(1e6, 5e6, bars)
    index = pd.bdate_range("2000-01-03", periods=bars)
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


MODES = {"eager": (False, False), "cuda graph": (True, False), "cuda graph + compile": (True, True)}


def build(dtype: Any, cuda_graph: bool, compile: bool = False, shape: str = "small"):
    import torch

    from kronos_model import Kronos, KronosPredictor, KronosTokenizer

    torch.manual_seed(0)
    spec = SHAPES[shape]
    tok = KronosTokenizer(**spec["tokenizer"]).eval()
    model = Kronos(**spec["predictor"]).eval()
    return KronosPredictor(
        model,
        tok,
        device=DEVICE,
        max_context=spec["max_context"],
        dtype=dtype,
        cuda_graph=cuda_graph,
        compile=compile,
    )


def timed(fn, repeats: int) -> tuple[float, float, Any]:
    """(first call s, median of ``repeats`` later calls s, last result)."""
    sync()
    start = time.perf_counter()
    out = fn()
    sync()
    first = time.perf_counter() - start
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        sync()
        walls.append(time.perf_counter() - start)
    return first, statistics.median(walls), out


def forecast_rows(args: argparse.Namespace, series) -> list[dict[str, Any]]:
    import numpy as np
    import torch

    from kronos_model.series import PreparedSeries

    prepared = PreparedSeries.from_frame(series)
    rows = []
    dtypes = ["float32"] if args.quick else args.dtypes
    for dtype_name in dtypes:
        dtype = getattr(torch, dtype_name)
        results: dict[tuple[int, int], Any] = {}
        for mode, (graph, compiled) in MODES.items():
            if (compiled and args.no_compile) or (args.modes and mode not in args.modes):
                continue
            predictor = build(dtype, graph, compiled)
            for windows, samples in ((1, 5), (32, 5)):
                ends = [len(series) - 7 * i for i in range(windows)]
                frames = [series.iloc[e - LOOKBACK : e] for e in ends]
                paths = {
                    "prepared series": lambda p=predictor, e=ends, s=samples: p.forecast_series(
                        prepared, e, PRED_LEN, lookback=LOOKBACK, sample_count=s, seed=0
                    ),
                    "DataFrames": lambda p=predictor, f=frames, s=samples: p.forecast_batch(
                        f, PRED_LEN, sample_count=s, seed=0
                    ),
                }
                for path, fn in paths.items():
                    if path == "DataFrames" and dtype_name != "float32":
                        continue
                    first, wall, out = timed(fn, args.repeats)
                    row = {
                        "dtype": dtype_name,
                        "decode": mode,
                        "windows": windows,
                        "samples": samples,
                        "input": path,
                        "first_call_s": round(first, 4),
                        "wall_s": round(wall, 5),
                        "forecasts_per_s": round(windows / wall, 1),
                    }
                    key = (windows, samples, path)
                    if mode != "eager" and key in results:
                        diff = max(
                            float(np.abs(a.samples - b.samples).max()) for a, b in zip(out, results[key])
                        )
                        row["max_abs_diff_vs_eager"] = diff
                    results.setdefault(key, out)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
            del predictor
            torch.cuda.empty_cache()
    return rows


def memory_rows(args: argparse.Namespace, series) -> list[dict[str, Any]]:
    import torch

    from kronos_model.series import PreparedSeries

    prepared = PreparedSeries.from_frame(series)
    rows = []
    windows, samples = (64, 20) if args.quick else (256, 20)
    ends = [len(series) - 5 * i for i in range(windows)]
    for dtype_name in ("float32", "bfloat16"):
        for graph in (False, True):
            predictor = build(getattr(torch, dtype_name), graph)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            first, wall, _ = timed(
                lambda p=predictor: p.forecast_series(
                    prepared, ends, PRED_LEN, lookback=LOOKBACK, sample_count=samples, seed=0, batch_size=None
                ),
                1,
            )
            row = {
                "dtype": dtype_name,
                "decode": "cuda graph" if graph else "eager",
                "windows": windows,
                "samples": samples,
                "first_call_s": round(first, 3),
                "wall_s": round(wall, 4),
                "forecasts_per_s": round(windows / wall, 1),
                "peak_mem_mib": round((torch.cuda.max_memory_allocated() - base) / 2**20, 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
            del predictor
            torch.cuda.empty_cache()
    return rows


def profile_rows(series) -> dict[str, str]:
    """Top CUDA kernels of one single-window call per mode and dtype (where the time goes)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from kronos_model.series import PreparedSeries

    prepared = PreparedSeries.from_frame(series)
    tables = {}
    for dtype_name, mode in (
        ("float32", "eager"),
        ("bfloat16", "eager"),
        ("float32", "cuda graph"),
        ("bfloat16", "cuda graph + compile"),
    ):
        predictor = build(getattr(torch, dtype_name), *MODES[mode])

        def call(p=predictor):
            return p.forecast_series(
                prepared, [len(series)], PRED_LEN, lookback=LOOKBACK, sample_count=5, seed=0
            )

        call()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            call()
            torch.cuda.synchronize()
        label = f"{mode} 1 x 5, {dtype_name}"
        tables[label] = prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=10)
        print(f"--- {label}: top kernels by self CUDA time", flush=True)
        print(tables[label], flush=True)
        del predictor
    return tables


def report(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| dtype | decode | windows x samples | input | first call s | wall s | forecasts/s | max diff vs eager |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        diff = r.get("max_abs_diff_vs_eager")
        lines.append(
            f"| {r['dtype']} | {r['decode']} | {r['windows']} x {r['samples']} | {r.get('input', 'prepared series')} "
            f"| {r['first_call_s']} | {r['wall_s']} | {r['forecasts_per_s']} | {'-' if diff is None else f'{diff:.2g}'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu.json")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="float32 only, 64 x 20 memory row")
    p.add_argument("--no-profile", action="store_true")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    p.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16", "float16"])
    p.add_argument(
        "--modes", nargs="+", choices=sorted(MODES), default=None, help="decode modes (default all)"
    )
    p.add_argument("--no-memory", action="store_true", help="skip the 256 x 20 memory rows")
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: the GPU benchmark has nothing to measure", file=sys.stderr)
        return 2
    series = synthetic_series()
    rows = forecast_rows(args, series)
    memory = [] if args.no_memory else memory_rows(args, series)
    profiles = {} if args.no_profile else profile_rows(series)
    table = report(rows + memory)
    meta = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "lookback": LOOKBACK,
        "pred_len": PRED_LEN,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"meta": meta, "rows": rows, "memory": memory, "profiles": profiles}, indent=1)
    )
    print(f"\n{meta}\n{table}\n(python benchmarks/bench_gpu.py)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
