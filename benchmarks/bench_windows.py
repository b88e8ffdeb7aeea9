"""Per-window bookkeeping benchmark (issue 14): DataFrame windows vs windows sliced from a prepared series.

Runs the bundled model on real bars in one process and prints, for the same windows and seeds:
  * a batch of windows (default 200 x 4 samples, lookback 64, pred_len 4): wall, seconds in the model,
    bookkeeping (everything but the model) for the old per-window frame preparation loop, the DataFrame
    path of ``forecast_batch`` and the prepared-series path ``forecast_series``;
  * single-window calls (event mode / paper trading): bookkeeping per call of ``forecast`` on a DataFrame
    and of the indicator's event path (prepare the lookback bars, ``forecast_series``);
  * ``--threads``: 1 vs 2 torch threads, alone and next to a concurrent copy of the same work.

    python benchmarks/bench_windows.py [--windows 200] [--data ../shared/data/btcusdt_binance_1h.csv] [--threads]

"Seconds in the model" is the time inside ``kronos_model.generation.generate`` (tokenizer + predictor);
the rest of the call is bookkeeping. Times are medians of ``--repeats`` runs on whatever else the machine
is doing, so note its load next to the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

SHARED_HOURLY = ROOT.parent / "shared" / "data" / "btcusdt_binance_1h.csv"


def load_bars(path: str | None) -> tuple[str, pd.DataFrame]:
    """An OHLCV csv (date index) or, by default, arch's daily S&P 500 (business days with holidays)."""
    if path:
        df = pd.read_csv(path, index_col=0, parse_dates=True)
        label = Path(path).stem
    else:
        from arch.data import sp500

        df, label = sp500.load(), "sp500_daily"
    df.columns = [str(c).lower() for c in df.columns]
    return label, df[[c for c in ("open", "high", "low", "close", "volume", "amount") if c in df.columns]]


class ModelClock:
    """Accumulates the seconds spent inside ``generate`` by wrapping the predictor module's reference."""

    def __init__(self) -> None:
        import kronos_model.predictor as module

        self.module, self.inner, self.seconds = module, module.generate, 0.0

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return self.inner(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        module.generate = timed

    def measure(self, fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
        """Median wall and median model seconds of ``fn()`` over ``repeats`` runs, and its last result."""
        walls, models, out = [], [], None
        for _ in range(repeats):
            self.seconds = 0.0
            started = time.perf_counter()
            out = fn()
            walls.append(time.perf_counter() - started)
            models.append(self.seconds)
        return statistics.median(walls), statistics.median(models), out


def legacy_window(frame: pd.DataFrame, pred_len: int, clip: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """The per-window preparation the predictor did before issue 14 (the pandas work per window)."""
    from kronos_model.data import (
        calendar_features,
        check_time_order,
        frame_timestamps,
        infer_future_timestamps,
        prepare_ohlcv,
        window_stats,
    )

    prepared = prepare_ohlcv(frame)
    stamps = frame_timestamps(frame)
    check_time_order(stamps)
    future = infer_future_timestamps(stamps, pred_len)
    raw = prepared.to_numpy(dtype=np.float32)
    mean, std = window_stats(raw)
    x = np.clip((raw - mean) / (std + 1e-5), -clip, clip)
    return x, np.concatenate([calendar_features(stamps), calendar_features(future)])


def batch_rows(predictor: Any, clock: ModelClock, df: pd.DataFrame, args: argparse.Namespace) -> list[dict]:
    """The same ``--windows`` sliding windows through each path; the forecasts must agree exactly."""
    from kronos_model.series import PreparedSeries

    lb, n = args.lookback, args.windows
    bars = df.iloc[-(lb + n - 1) :]
    ends = list(range(lb, len(bars) + 1))
    frames = [bars.iloc[e - lb : e] for e in ends]
    kw = dict(sample_count=args.samples, seed=0, batch_size=args.batch_size)
    legacy_s = clock.measure(lambda: [legacy_window(f, args.pred_len) for f in frames], args.repeats)[0]
    wall_df, model_df, out_df = clock.measure(
        lambda: predictor.forecast_batch(frames, args.pred_len, **kw), args.repeats
    )

    def series_path() -> list:
        series = PreparedSeries.from_frame(bars, name="bars")
        return predictor.forecast_series(series, ends, args.pred_len, lookback=lb, **kw)

    wall_s, model_s, out_s = clock.measure(series_path, args.repeats)
    same = all(np.array_equal(a.samples, b.samples) for a, b in zip(out_df, out_s, strict=True))
    rows = [
        dict(path="per-window frame preparation only (old loop)", wall=legacy_s, model=0.0),
        dict(path="forecast_batch(DataFrames)", wall=wall_df, model=model_df),
        dict(path="forecast_series(prepared series)", wall=wall_s, model=model_s, identical=same),
    ]
    for row in rows:
        row.update(windows=n, samples=args.samples, lookback=lb, pred_len=args.pred_len)
        row["bookkeeping"] = row["wall"] - row["model"]
        row["bookkeeping_per_window_ms"] = 1e3 * row["bookkeeping"] / n
        row["bookkeeping_share"] = row["bookkeeping"] / row["wall"] if row["model"] else None
    return rows


def single_rows(predictor: Any, clock: ModelClock, df: pd.DataFrame, args: argparse.Namespace) -> list[dict]:
    """One window per call, as event mode and paper trading ask: bookkeeping per call."""
    from kronos_model.data import prepare_columns
    from kronos_model.series import PreparedSeries

    lb, calls = args.lookback, args.calls
    frames = [df.iloc[-lb - i : len(df) - i] for i in range(calls)]
    kw = dict(sample_count=args.samples, seed=0)

    def frame_calls() -> None:
        for f in frames:
            predictor.forecast(f, args.pred_len, **kw)

    columns = [{c: f[c].to_numpy(float) for c in ("open", "high", "low", "close", "volume")} for f in frames]

    def event_calls() -> None:  # what KronosSignal.next does with the lookback bars it read (_event_window)
        for f, cols in zip(frames, columns, strict=True):
            stamps = pd.DatetimeIndex(f.index)
            series = PreparedSeries.from_arrays(prepare_columns(cols, stamps, name="input"), stamps)
            predictor.forecast_series(series, [lb], args.pred_len, lookback=lb, **kw)

    rows = []
    for label, fn in (
        ("forecast(DataFrame)", frame_calls),
        ("event path: prepare + forecast_series", event_calls),
    ):
        wall, model, _ = clock.measure(fn, args.repeats)
        rows.append(
            dict(
                path=label,
                calls=calls,
                per_call_ms=1e3 * wall / calls,
                model_per_call_ms=1e3 * model / calls,
                bookkeeping_per_call_ms=1e3 * (wall - model) / calls,
            )
        )
    return rows


def kv_rows(predictor: Any, df: pd.DataFrame) -> list[dict]:
    """KV bytes per window, 20 samples, lookback 400: measured on the bundled model, computed for the mini
    shape (pred_len 24); "copied" is the pre-issue layout with the prompt stored once per sample row."""
    from kronos_model.kv_cache import KVCache, kv_bytes
    from kronos_model.series import PreparedSeries

    seen: list[int] = []
    share = KVCache.share

    def recording(cache: KVCache, repeats: int) -> None:
        share(cache, repeats)
        if not seen:
            seen.extend([0, 0])
            for layer in [*cache.layers, cache.dep]:
                prefix = sum(t.nbytes for t in layer.prefix)
                own = layer.keys.nbytes + layer.values.nbytes
                seen[0] += prefix + own
                seen[1] += repeats * prefix + own  # the prompt copied to every sample row

    KVCache.share = recording
    try:
        lookback = min(400, predictor.max_context, len(df))
        series = PreparedSeries.from_frame(df.iloc[-lookback:])
        predictor.forecast_series(series, [lookback], 1, lookback=lookback, sample_count=20, seed=0)
    finally:
        KVCache.share = share
    rows = [
        dict(
            model="bundled (measured)",
            lookback=lookback,
            samples=20,
            pred_len=1,
            shared=seen[0],
            copied=seen[1],
        )
    ]
    mini = dict(layers=5, d_model=256, elem=4)  # Kronos-mini: 4 blocks + the dependency layer, float32
    rows.append(
        dict(
            model="Kronos-mini shape (computed)",
            lookback=400,
            samples=20,
            pred_len=24,
            shared=kv_bytes(mini["layers"], 400, mini["d_model"], mini["elem"], 1, 20, 24),
            copied=kv_bytes(mini["layers"], 0, mini["d_model"], mini["elem"], 1, 20, 400 + 24),
        )
    )
    for r in rows:
        r["ratio"] = r["copied"] / r["shared"]
    return rows


def _thread_child(threads: int, args: argparse.Namespace) -> float:
    """Seconds for one forecast_series batch with ``threads`` torch threads (run in a child process)."""
    # isort: off
    from kronos_model import KronosPredictor  # before torch: it sets the OpenMP wait policy
    from kronos_model.series import PreparedSeries
    import torch

    # isort: on

    torch.set_num_threads(threads)
    _, df = load_bars(args.data)
    predictor = KronosPredictor.from_pretrained(None, device="cpu")
    series = PreparedSeries.from_frame(df.iloc[-400:])
    ends = list(range(400 - 31, 401))
    predictor.forecast_series(series, ends[:2], args.pred_len, lookback=args.lookback, sample_count=4, seed=0)
    started = time.perf_counter()
    for _ in range(3):
        predictor.forecast_series(series, ends, args.pred_len, lookback=args.lookback, sample_count=4, seed=0)
    return (time.perf_counter() - started) / 3


def thread_rows(args: argparse.Namespace) -> list[dict]:
    """1 vs 2 threads, alone and next to a concurrent copy (two workers on one machine), with libgomp's
    default spin-waiting (before issue 14) and with the passive waiting ``kronos_model`` now sets."""
    base = [sys.executable, __file__, "--thread-child"]
    extra = ["--data", args.data] if args.data else []
    rows = []
    for policy, label in (("", "libgomp default (spins)"), ("PASSIVE", "passive (kronos_model default)")):
        for threads in (1, 2):
            for copies in (1, 2):
                cmd = [*base, str(threads), *extra]
                # an empty OMP_WAIT_POLICY is ignored by libgomp (its default) and kept by kronos_model
                env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": policy}
                procs = [
                    subprocess.Popen(
                        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
                    )
                    for _ in range(copies)
                ]
                seconds = [float(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
                rows.append(
                    dict(
                        wait=label, threads=threads, copies=copies, seconds_per_batch=max(seconds), windows=32
                    )
                )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--windows", type=int, default=200)
    p.add_argument("--lookback", type=int, default=64)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--pred-len", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--calls", type=int, default=20, help="single-window calls per timing")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--data", default=None, help="OHLCV csv; default: arch's daily S&P 500")
    p.add_argument("--threads", action="store_true", help="also time 1 vs 2 threads with a concurrent copy")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "windows.json"))
    p.add_argument("--thread-child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.thread_child is not None:
        print(_thread_child(args.thread_child, args))
        return 0

    # isort: off
    from kronos_model import KronosPredictor  # before torch: it sets the OpenMP wait policy
    import torch

    # isort: on

    label, df = load_bars(args.data)
    predictor = KronosPredictor.from_pretrained(None, device="cpu")
    clock = ModelClock()
    load = os.getloadavg()[0]
    print(f"# {label}, bundled model, torch threads {torch.get_num_threads()}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')!r}, load average {load:.2f} "
          f"on {os.cpu_count()} cores (shared machine)")  # fmt: skip
    batch = batch_rows(predictor, clock, df, args)
    print(
        f"\n{args.windows} windows x {args.samples} samples, lookback {args.lookback}, pred_len {args.pred_len}"
    )
    print(f"{'path':<48} {'wall s':>8} {'model s':>8} {'book s':>8} {'ms/window':>10} {'book %':>7}")
    for r in batch:
        share = "" if r["bookkeeping_share"] is None else f"{100 * r['bookkeeping_share']:.0f}%"
        print(f"{r['path']:<48} {r['wall']:8.3f} {r['model']:8.3f} {r['bookkeeping']:8.3f} "
              f"{r['bookkeeping_per_window_ms']:10.2f} {share:>7}")  # fmt: skip
    print(f"forecasts identical on both paths: {batch[2]['identical']}")
    single = single_rows(predictor, clock, df, args)
    print(f"\nsingle window ({args.lookback} bars, {args.samples} samples), {args.calls} calls")
    print(f"{'path':<48} {'ms/call':>8} {'model ms':>9} {'book ms':>8}")
    for r in single:
        print(f"{r['path']:<48} {r['per_call_ms']:8.2f} {r['model_per_call_ms']:9.2f} "
              f"{r['bookkeeping_per_call_ms']:8.2f}")  # fmt: skip
    kv = kv_rows(predictor, df)
    print("\nKV cache bytes per window (prompt once per window vs once per sample row)")
    for r in kv:
        print(f"{r['model']:<30} lookback {r['lookback']}, {r['samples']} samples, pred_len {r['pred_len']}: "
              f"{r['shared'] / 2**20:.2f} MiB shared vs {r['copied'] / 2**20:.2f} MiB copied ({r['ratio']:.1f}x less)")  # fmt: skip
    threads = thread_rows(args) if args.threads else []
    if threads:
        print(
            "\nthreads (32 windows x 4 samples per batch; copies run at once, each its own process; slowest)"
        )
        for r in threads:
            print(
                f"{r['wait']:<32} threads={r['threads']} copies={r['copies']}: {r['seconds_per_batch']:.3f} s/batch"
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(data=label, load_average=load, cores=os.cpu_count(), torch_threads=torch.get_num_threads())
    out.write_text(json.dumps(dict(meta=meta, batch=batch, single=single, kv=kv, threads=threads), indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
