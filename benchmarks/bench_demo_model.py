"""`make demo`'s seconds in the model: the code before issue 14 vs this tree, same weights, one run (issue 14).

Checks the old revision out into a temporary git worktree and runs each tree's own
`backtests/sp500_threshold.yaml` (forecast cache off; both given this tree's bundled checkpoint by path, so only
the code differs), alternating old and new, and prints the "s in the model" each run reports and the ratio of the
fastest runs (the least disturbed by other work on a shared machine).

    python benchmarks/bench_demo_model.py [--old 289f4d0] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OLD = "289f4d0"  # main when issues 13-16 were filed
CHECKPOINT = ROOT / "kronos_model" / "checkpoints" / "nano"
SECONDS = re.compile(r"([0-9.]+) s in the model")


def demo_seconds(tree: Path, out: Path | None) -> float:
    """Run the demo backtest with ``tree`` first on the import path; its seconds in the model.

    ``out``: a fresh report folder (this tree's CLI); None for the old CLI, which writes inside its worktree.
    """
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "kronos_strategies.cli", "run", "backtests/sp500_threshold.yaml",
           "--set", "indicator.cache_dir=null", "--set", f"model.name={CHECKPOINT}"]  # fmt: skip
    if out is not None:
        cmd += ["--out", str(out), "--force"]
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=False)
    found = SECONDS.search(proc.stdout + proc.stderr)
    if proc.returncode or not found:
        raise SystemExit(f"demo run failed in {tree}:\n{(proc.stderr or proc.stdout)[-2000:]}")
    return float(found.group(1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", default=OLD, help="revision of the old code")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kbt-old-") as tmp:
        old_tree = Path(tmp) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(old_tree), args.old], cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
        try:
            runs: dict[str, list[float]] = {"old": [], "new": []}
            for i in range(args.repeats):
                for label, tree in (("old", old_tree), ("new", ROOT)):
                    runs[label].append(demo_seconds(tree, None if label == "old" else Path(tmp) / f"new{i}"))
                    print(f"{label} run {i + 1}: {runs[label][-1]:.1f} s in the model", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=ROOT, check=False)
    old, new = min(runs["old"]), min(runs["new"])
    load = os.getloadavg()[0]
    print(f"\nmake demo, seconds in the model (fastest of {args.repeats}, load average {load:.1f}):")
    print(f"  old code ({args.old}): {old:.1f} s   this tree: {new:.1f} s   -> {old / new:.2f}x less")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
