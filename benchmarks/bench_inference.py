"""Inference benchmark: KV-cached fast path vs full-recompute reference path (issue 3).

Prints forecasts/s, generated tokens/s, peak memory and the fast/recompute ratio for Kronos-mini and
Kronos-small shaped models with random weights (random tokens, identical cost), on real S&P 500 windows.
Every measurement runs in its own child process so peak memory is per configuration.

    python benchmarks/bench_inference.py [--quick] [--big] [--device cuda] [--dtype bfloat16] [--threads 1]

See benchmarks/README.md for what each row means and how recompute rows are extrapolated on CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere, installed or not
    sys.path.insert(0, str(ROOT))

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "inference.json"
FULL_RECOMPUTE_ROWS = 5  # windows x samples up to which the recompute path is always timed in full

SHAPES: dict[str, dict[str, Any]] = {
    "mini": {
        "tokenizer": dict(
            d_model=256,
            n_heads=4,
            ff_dim=512,
            n_enc_layers=4,
            n_dec_layers=4,
            s1_bits=10,
            s2_bits=10,
            group_size=5,
        ),
        "predictor": dict(n_layers=4, d_model=256, n_heads=4, ff_dim=512, s1_bits=10, s2_bits=10),
        "max_context": 2048,
    },
    "small": {
        "tokenizer": dict(
            d_model=256,
            n_heads=4,
            ff_dim=512,
            n_enc_layers=4,
            n_dec_layers=4,
            s1_bits=10,
            s2_bits=10,
            group_size=4,
        ),
        "predictor": dict(n_layers=8, d_model=512, n_heads=8, ff_dim=1024, s1_bits=10, s2_bits=10),
        "max_context": 512,
    },
}


@dataclass
class Job:
    """One timed measurement: a shape, a batch of windows, one path."""

    kind: str  # "main", "lookback" or "big"
    shape: str
    windows: int
    samples: int
    lookback: int
    pred_len: int
    use_cache: bool
    repeats: int
    steps: int = 0  # generated steps actually run (< pred_len: extrapolated); 0 = pred_len
    measured_windows: int = 0  # windows actually run (< windows: scaled linearly); 0 = windows
    batch_size: int = 64  # forecast_batch chunk size (its default)

    def __post_init__(self) -> None:
        self.steps = self.steps or self.pred_len
        self.measured_windows = self.measured_windows or self.windows

    @property
    def extrapolated(self) -> bool:
        return self.steps < self.pred_len or self.measured_windows < self.windows


# -- child side: one measurement ----------------------------------------------------------------
class PhaseTimer:
    """Wraps tokenizer.encode, model.backbone and tokenizer.decode on the instances to time each phase."""

    def __init__(self, predictor: Any, sync: Any):
        self.events: list[tuple[str, float, float]] = []
        self._sync = sync
        for obj, name in (
            (predictor.tokenizer, "encode"),
            (predictor.model, "backbone"),
            (predictor.tokenizer, "decode"),
        ):
            setattr(obj, name, self._wrap(getattr(obj, name), name))

    def _wrap(self, fn: Any, label: str) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._sync()
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            self._sync()
            self.events.append((label, start, time.perf_counter()))
            return out

        return timed

    def phases(self, total: float) -> dict[str, Any]:
        """Seconds in encode, prefill (first backbone step of a chunk), decode steps, tokenizer decode, other.

        A step runs from one backbone call to the next call (backbone or tokenizer decode), sampling included.
        """
        ev = sorted(self.events, key=lambda e: e[1])
        out = {"encode": 0.0, "prefill": 0.0, "decode_steps": 0.0, "tok_decode": 0.0, "step_times": []}
        for i, (label, start, end) in enumerate(ev):
            if label == "backbone":
                step = ev[i + 1][1] - start if i + 1 < len(ev) else end - start
                out["step_times"].append(step)
                first = i > 0 and ev[i - 1][0] == "encode"
                out["prefill" if first else "decode_steps"] += step
            else:
                out["encode" if label == "encode" else "tok_decode"] += end - start
        out["other"] = total - out["encode"] - out["prefill"] - out["decode_steps"] - out["tok_decode"]
        return out


def load_frames(data: str | None, lookback: int, count: int) -> list[Any]:
    """``count`` real daily S&P 500 windows of ``lookback`` bars, ending at different bars (lower-case columns)."""
    import pandas as pd

    if data:
        df = pd.read_csv(data, index_col=0, parse_dates=True)
    else:
        from arch.data import sp500

        df = sp500.load()
    df.columns = [str(c).lower() for c in df.columns]
    df = df[["open", "high", "low", "close", "volume"]]
    stride = max(1, (len(df) - lookback) // max(count, 1))
    ends = [len(df) - i * stride for i in range(count)]
    return [df.iloc[end - lookback : end] for end in ends]


def _memory_probe(device: Any) -> tuple[Any, Any]:
    """(reset() -> baseline bytes, peak() -> bytes above that baseline) for the device."""
    import torch

    if device.type == "cuda":

        def reset() -> int:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return torch.cuda.memory_allocated()

        return reset, lambda base: torch.cuda.max_memory_allocated() - base

    def rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def peak(base: int) -> int:  # ru_maxrss is KiB on Linux; process-lifetime peak, hence one job per process
        return max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base)

    return rss, peak


def kv_cache_bytes(job: Job, elem: int) -> int:
    """Size of the fast path's KV cache for one forecast_batch chunk (blocks + dependency layer, K and V).

    The prompt is stored once per window; each sample row stores only the tokens it generates.
    """
    from kronos_model.kv_cache import kv_bytes

    cfg = SHAPES[job.shape]["predictor"]
    windows = min(job.windows, job.batch_size)
    return kv_bytes(
        cfg["n_layers"] + 1, job.lookback, cfg["d_model"], elem, windows, job.samples, job.pred_len
    )


def run_job(
    job: Job, device_name: str, dtype_name: str, threads: int | None, data: str | None
) -> dict[str, Any]:
    """Build the random-weight pair, warm up once, time ``repeats`` forecast_batch calls."""
    # isort: off
    from kronos_model import Kronos, KronosPredictor, KronosTokenizer  # first: sets OpenMP's wait policy
    import torch

    # isort: on

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    shape = SHAPES[job.shape]
    dtype = getattr(torch, dtype_name)
    tokenizer = KronosTokenizer(**shape["tokenizer"]).eval()
    model = Kronos(**shape["predictor"]).eval()
    predictor = KronosPredictor(
        model,
        tokenizer,
        device=device_name,
        max_context=shape["max_context"],
        dtype=None if dtype == torch.float32 else dtype,
    )
    device = predictor.device
    frames = load_frames(data, job.lookback, job.measured_windows)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def call(windows: list[Any], steps: int) -> float:
        sync()
        start = time.perf_counter()
        with torch.inference_mode():
            predictor.forecast_batch(
                windows,
                steps,
                sample_count=job.samples,
                seed=0,
                use_cache=job.use_cache,
                batch_size=job.batch_size,
            )
        sync()
        return time.perf_counter() - start

    call(frames[:1], 2)  # warm-up: one small run through every code path
    reset, peak = _memory_probe(device)
    base = reset()
    timer = PhaseTimer(predictor, sync)
    runs = []
    for _ in range(job.repeats):
        timer.events.clear()
        wall = call(frames, job.steps)
        runs.append((wall, timer.phases(wall)))
    wall, phases = sorted(runs, key=lambda r: r[0])[len(runs) // 2]  # the median run
    steps = phases.pop("step_times")
    loop_steps = steps if not job.use_cache else steps[1:]
    est = wall
    if job.extrapolated:  # remaining steps at the mean measured step cost, then scale by windows
        est = (
            (wall + (job.pred_len - job.steps) * statistics.fmean(steps)) * job.windows / job.measured_windows
        )
    elem = torch.finfo(dtype).bits // 8
    return {
        **asdict(job),
        "device": str(device),
        "dtype": dtype_name,
        "threads": torch.get_num_threads(),
        "wall_s": wall,
        "all_walls_s": [r[0] for r in runs],
        "est_full_s": est,
        "forecasts_per_s": job.windows / est,
        "tokens_per_s": job.windows * job.samples * job.pred_len / est,
        "peak_mem_bytes": peak(base),
        "kv_cache_bytes_est": kv_cache_bytes(job, elem) if job.use_cache else 0,
        "phases_s": phases,
        "mean_decode_step_s": statistics.fmean(loop_steps) if loop_steps else None,
        "rows": job.measured_windows * job.samples,
        "extrapolated": job.extrapolated,
    }


# -- parent side: the plan, the children, the table ---------------------------------------------
def plan(args: argparse.Namespace) -> list[Job]:
    """The job list: main grid, lookback row, optional big-memory row."""
    shapes = args.shapes or (["small"] if args.quick else ["mini", "small"])
    samples = [5] if args.quick else [5, 20]
    jobs: list[Job] = []
    for shape in shapes:
        for s in samples:
            for b in args.windows:
                common = dict(kind="main", shape=shape, windows=b, samples=s, lookback=400, pred_len=24)
                jobs.append(Job(**common, use_cache=True, repeats=args.repeats))
                trunc = not args.exact and b * s > FULL_RECOMPUTE_ROWS
                jobs.append(
                    Job(
                        **common,
                        use_cache=False,
                        repeats=1,
                        steps=min(args.recompute_steps, 24) if trunc else 0,
                        measured_windows=min(args.recompute_windows, b) if trunc else 0,
                    )
                )
    # 500 + 12 <= 512: the window never slides, so every decode step is a cached one
    for lookback in () if args.no_lookback else (100, 500):
        jobs.append(
            Job(
                kind="lookback",
                shape="small",
                windows=32,
                samples=5,
                lookback=lookback,
                pred_len=12,
                use_cache=True,
                repeats=args.repeats,
            )
        )
    if args.big:
        jobs.append(
            Job(
                kind="big",
                shape="small",
                windows=256,
                samples=20,
                lookback=400,
                pred_len=24,
                use_cache=True,
                repeats=1,
                batch_size=args.big_batch_size,
            )
        )
    return jobs


def spawn(job: Job, args: argparse.Namespace) -> dict[str, Any]:
    """Run one job in a fresh interpreter; returns its result dict (or an ``error`` entry)."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        json.dumps(asdict(job)),
        "--device",
        args.device,
        "--dtype",
        args.dtype,
    ]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.data:
        cmd += ["--data", args.data]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    return {**asdict(job), "error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}


def _mb(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.0f}"


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def report(results: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The printed table (main grid, phases, lookback row, big row, targets) and the target verdicts."""
    ok = [r for r in results if "error" not in r]
    lines = [
        "",
        "lookback 400, pred_len 24, one forecast = one window's sample paths; * = extrapolated (README)",
        f"{'shape':<6}{'win':>4}{'smp':>4} | {'recompute fc/s':>14}{'tok/s':>10}{'peak MB':>9} | "
        f"{'fast fc/s':>10}{'tok/s':>10}{'peak MB':>9}{'KV MB':>8} | {'fast/recompute':>14}",
    ]
    pairs: dict[tuple, dict[str, dict]] = {}
    for r in ok:
        if r["kind"] == "main":
            pairs.setdefault((r["shape"], r["windows"], r["samples"]), {})[
                "fast" if r["use_cache"] else "re"
            ] = r
    verdicts = []
    for (shape, win, smp), pr in pairs.items():
        re, fa = pr.get("re"), pr.get("fast")
        ratio = fa["forecasts_per_s"] / re["forecasts_per_s"] if re and fa else None
        star = "*" if re and re["extrapolated"] else " "
        lines.append(
            f"{shape:<6}{win:>4}{smp:>4} | {_fmt(re and re['forecasts_per_s'], 3):>13}{star}"
            f"{_fmt(re and re['tokens_per_s'], 0):>10}{_mb(re and re['peak_mem_bytes']):>9} | "
            f"{_fmt(fa and fa['forecasts_per_s'], 3):>10}{_fmt(fa and fa['tokens_per_s'], 0):>10}"
            f"{_mb(fa and fa['peak_mem_bytes']):>9}{_mb(fa and fa['kv_cache_bytes_est']):>8} | "
            f"{_fmt(ratio, 1) + 'x':>14}"
        )
        goal = {1: 10.0, 32: 30.0}.get(win) if shape == "small" and smp == 5 else None
        if goal and ratio is not None:
            verdicts.append(
                {
                    "target": f"small shape, {win} window(s), sample_count 5: >= {goal:g}x",
                    "ratio": ratio,
                    "met": ratio >= goal,
                }
            )
    lines += [
        "",
        "fast path: where the time goes (median run, % of wall)",
        f"{'shape':<6}{'win':>4}{'smp':>4} | {'wall s':>8}{'encode':>8}{'prefill':>8}{'decode':>8}"
        f"{'tok dec':>8}{'other':>8} | {'ms/decode step':>14}",
    ]
    for r in ok:
        if r["use_cache"] and r["kind"] == "main":
            ph, w = r["phases_s"], r["wall_s"]
            pct = "".join(
                f"{100 * ph[k] / w:>7.0f}%"
                for k in ("encode", "prefill", "decode_steps", "tok_decode", "other")
            )
            lines.append(
                f"{r['shape']:<6}{r['windows']:>4}{r['samples']:>4} | {w:>8.2f}{pct} | "
                f"{_fmt(1e3 * (r['mean_decode_step_s'] or 0)):>14}"
            )
    look = {r["lookback"]: r for r in ok if r["kind"] == "lookback"}
    if len(look) == 2:
        lines += [
            "",
            "decode cost vs lookback (small shape, 32 windows x 5 samples, pred_len 12, cached steps only)",
        ]
        for lb, r in sorted(look.items()):
            per_tok = r["mean_decode_step_s"] / r["rows"]
            lines.append(
                f"lookback {lb:>3}: {1e3 * r['mean_decode_step_s']:8.1f} ms/step  "
                f"{1e6 * per_tok:8.1f} us/token  prefill {r['phases_s']['prefill']:.2f} s"
            )
        grow = look[500]["mean_decode_step_s"] / look[100]["mean_decode_step_s"]
        rows = look[500]["rows"]
        lo, hi = attention_growth(
            "small", rows, 100 + 6, 500 + 6, 2 if look[500]["dtype"] != "float32" else 4
        )
        lines.append(
            f"500/100 per-token decode cost: {grow:.2f}x measured; growth of the attention term alone: "
            f"{lo:.2f}x if compute-bound, {hi:.2f}x if bandwidth-bound (a recompute step grows ~{506 / 106:.1f}x)"
        )
    for r in ok:
        if r["kind"] == "big":
            lines += [
                "",
                f"big: small shape, {r['windows']} windows x {r['samples']} samples, batch_size "
                f"{r['batch_size']}: {r['wall_s']:.1f} s, {r['forecasts_per_s']:.2f} fc/s, peak "
                f"{_mb(r['peak_mem_bytes'])} MB (KV cache per chunk {_mb(r['kv_cache_bytes_est'])} MB), "
                f"8 GB target {'met' if r['peak_mem_bytes'] <= 8 * 2**30 else 'MISSED'}",
            ]
    if verdicts:
        lines.append("")
        lines += [
            f"target {v['target']}: {v['ratio']:.1f}x -> {'met' if v['met'] else 'MISSED'}" for v in verdicts
        ]
    for r in results:
        if "error" in r:
            lines.append(
                f"FAILED {r['kind']} {r['shape']} w{r['windows']} s{r['samples']} "
                f"cache={r['use_cache']}: {r['error']}"
            )
    return "\n".join(lines), verdicts


def attention_growth(shape: str, rows: int, short: int, long: int, elem: int = 4) -> tuple[float, float]:
    """Per-token decode cost at ``long`` context over ``short`` if only attention grew (weights fixed).

    Two bounds: compute-bound (FLOPs: 2 per weight, 4 d per cached key and layer) and bandwidth-bound (bytes:
    the weights read once per step for all ``rows``, each row's cached keys and values read in full).
    """
    cfg = SHAPES[shape]["predictor"]
    d, layers, ff = cfg["d_model"], cfg["n_layers"], cfg["ff_dim"]
    vocab = 2 ** cfg["s1_bits"] + 2 ** cfg["s2_bits"]
    # blocks + fusion projection (2d x d) + dependency layer (4 d x d) + both heads
    weights = layers * (4 * d * d + 3 * d * ff) + 6 * d * d + d * vocab
    per_key = d * (layers + 1)  # blocks + dependency layer
    flops = (2 * weights + 4 * per_key * long) / (2 * weights + 4 * per_key * short)
    w_bytes = weights * elem / rows
    kv_bytes = 2 * per_key * elem
    return flops, (w_bytes + kv_bytes * long) / (w_bytes + kv_bytes * short)


def _write(out: Path, meta: dict, results: list, verdicts: list, table: str) -> None:
    out.write_text(
        json.dumps({"meta": meta, "results": results, "targets": verdicts, "table": table}, indent=2)
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--quick", action="store_true", help="small shape, sample_count 5 only (plus the lookback row)"
    )
    p.add_argument(
        "--big", action="store_true", help="add the 256 windows x 20 samples memory row (slow on CPU)"
    )
    p.add_argument("--big-batch-size", type=int, default=64, help="forecast_batch chunk size for the big row")
    p.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--repeats", type=int, default=2, help="timed repeats of each fast-path run (median kept)")
    p.add_argument(
        "--recompute-steps",
        type=int,
        default=3,
        help="steps timed on large recompute configs; the rest are extrapolated",
    )
    p.add_argument(
        "--recompute-windows",
        type=int,
        default=2,
        help="windows timed on large recompute configs; scaled linearly to the full batch",
    )
    p.add_argument("--exact", action="store_true", help="time every recompute config in full (GPU)")
    p.add_argument("--no-lookback", action="store_true", help="skip the lookback 100 vs 500 rows")
    p.add_argument("--windows", type=int, nargs="+", default=[1, 32], help="batch sizes of the main grid")
    p.add_argument(
        "--shapes", nargs="+", choices=sorted(SHAPES), default=None, help="shapes of the main grid"
    )
    p.add_argument("--data", default=None, help="OHLCV csv (date index); default arch's bundled S&P 500")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="JSON results file")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        job = Job(**json.loads(args.child))
        print(
            "RESULT " + json.dumps(run_job(job, args.device, args.dtype, args.threads, args.data)), flush=True
        )
        return 0
    if args.recompute_steps < 2:
        raise SystemExit("--recompute-steps must be >= 2 (the step cost is taken between steps)")
    jobs = plan(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "args": {k: v for k, v in vars(args).items() if k != "child"},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    results = []
    t0 = time.perf_counter()
    for i, job in enumerate(jobs, 1):
        what = (
            f"{job.kind} {job.shape} windows={job.windows} samples={job.samples} lookback={job.lookback} "
            f"{'fast' if job.use_cache else 'recompute'}"
        )
        if job.extrapolated:
            what += f" (timing {job.measured_windows} window(s) x {job.steps} steps)"
        print(f"[{i}/{len(jobs)} {time.perf_counter() - t0:6.0f}s] {what}", file=sys.stderr, flush=True)
        res = spawn(job, args)
        results.append(res)
        _write(out, meta, results, [], "")  # partial results survive an interrupted run
        if "error" in res:
            print(f"    failed: {res['error']}", file=sys.stderr, flush=True)
        else:
            print(
                f"    {res['wall_s']:.2f} s -> {res['forecasts_per_s']:.3f} forecasts/s",
                file=sys.stderr,
                flush=True,
            )
    table, verdicts = report(results)
    first = next((r for r in results if "error" not in r), {})
    header = (
        f"device {first.get('device', args.device)}, dtype {args.dtype}, torch threads {first.get('threads')}, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus, total {time.perf_counter() - t0:.0f} s"
    )
    print(header + table)
    _write(out, meta, results, verdicts, header + table)
    print(f"\nresults written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
