"""Fine-tuning cost: wall time per optimiser step with 1 and N processes (DDP, gloo on CPU) at the same
global batch, and how far the N-process loss curve is from the 1-process one.

Each configuration is a real ``kronos-bt finetune`` job (``torchrun`` for N > 1) on the built-in S&P 500
daily bars, starting from the bundled ``kronos-bt/nano`` checkpoint (predictor stage). Time per step is
the training wall time of the record (one small validation pass included) divided by the steps.

    python benchmarks/bench_finetune.py                          # 50 steps, 1 and 2 processes, CPU
    python benchmarks/bench_finetune.py --nproc 1 2 4 --steps 100
    python benchmarks/bench_finetune.py --device cuda --precision fp32 bf16 --nproc 1   # GPU: fp32 vs bf16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(nproc: int, precision: str, args: argparse.Namespace, work: Path) -> dict:
    """One finetune job; returns its predictor training record."""
    out = work / f"n{nproc}-{precision}"
    job = {
        "name": out.name,
        "data": [{"dataset": "sp500"}],
        "model": {"name": args.model} if args.model else {},
        "train": "predictor",
        "finetune": {
            "lookback": args.lookback,
            "horizon": 8,
            "batch_size": args.batch_size,
            "micro_batch_size": args.micro_batch_size,
            "epochs": 1,
            "steps_per_epoch": args.steps,
            "val_fraction": 0.05,
            "max_val_windows": 8,
            "lr": 1.0e-4,
            "device": args.device,
            "precision": precision,
            "verbose": False,
            "seed": 0,
        },  # fmt: skip
        "output": str(out),
    }
    path = work / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(job))
    cli = ["-m", "kronos_strategies.cli", "finetune", str(path)]
    if nproc == 1:
        cmd = [sys.executable, *cli]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{_port()}", *cli]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads((out / "predictor" / "training_record.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16", "auto"])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=16, help="global batch")
    parser.add_argument("--micro-batch-size", type=int, default=8)
    parser.add_argument("--lookback", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default=None, help="base checkpoint (default: bundled kronos-bt/nano)")
    parser.add_argument("--threads", type=int, default=1, help="OMP threads per process")
    args = parser.parse_args()
    print(
        f"finetune bench: {args.steps} steps, global batch {args.batch_size} (micro {args.micro_batch_size}), "
        f"lookback {args.lookback}, device {args.device}, {args.threads} thread(s)/process, "
        f"{os.cpu_count()} CPUs, torch on Python {platform.python_version()}"
    )
    print(
        f"{'procs':>5} {'precision':>9} {'s/step':>8} {'samples/s':>10} {'final loss':>11} {'max rel diff vs 1 proc':>23}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        base: dict[str, list[float]] = {}
        for precision in args.precision:
            for nproc in args.nproc:
                rec = run(nproc, precision, args, Path(tmp))
                losses = np.asarray(rec["step_losses"])
                per_step = rec["epochs"][-1]["seconds"] / rec["steps"]
                base.setdefault(precision, losses.tolist())
                ref = np.asarray(base[precision])
                diff = float(np.max(np.abs(losses - ref) / np.abs(ref)))
                print(
                    f"{nproc:>5} {precision:>9} {per_step:>8.3f} {args.batch_size / per_step:>10.1f} "
                    f"{losses[-1]:>11.5f} {diff:>23.2e}"
                )


if __name__ == "__main__":
    main()
