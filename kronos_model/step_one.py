"""Step-one diagnostics: how far a forecast's first step sits from the last close, and why.

The first forecast step is decoded from tokens, so it inherits the tokenizer's reconstruction error of the
last observed bar. These measurements feed the model card's before/after table and the choice of the
``anchor`` default: the tokenizer's reconstruction error on the last bar versus the whole window, the mean
step-1 offset (signed and absolute) against the series' median one-bar move, and the share of windows
whose step-1 P(up) is exactly 0 or 1. ``python -m kronos_model.step_one`` prints the standard table.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .data import FEATURE_COLUMNS
from .evaluation import origin_positions
from .series import PreparedSeries

__all__ = [
    "last_bar_reconstruction",
    "markdown_table",
    "standard_series",
    "step_one_rows",
    "step_one_report",
    "step_one_stats",
]

CLOSE = list(FEATURE_COLUMNS).index("close")
VALIDATION = ("2013-07-01", "2014-12-31")  # the training run's validation span: where defaults are chosen
TEST_START = "2015-01-01"  # held out from training and from every choice


@torch.no_grad()
def last_bar_reconstruction(tokenizer: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tokenize and decode normalised windows ``x`` [B, L, d]: (squared error [B, L, d], last-bar recon [B, d]).

    The decoder is causal, so the reconstruction of the last bar is the one generation starts from.
    """
    param = next(tokenizer.parameters())
    batch = torch.as_tensor(np.ascontiguousarray(x), dtype=param.dtype, device=param.device)
    recon = tokenizer.decode(tokenizer.encode(batch, half=True), half=True).float().cpu().numpy()
    return (recon - x) ** 2, recon[:, -1]


def step_one_stats(
    step1_mean: np.ndarray, last_close: np.ndarray, prob_up: np.ndarray, median_abs_return: float
) -> dict[str, float]:
    """Step-1 offset statistics from per-window step-1 mean closes, last closes and step-1 P(up)."""
    offset = np.asarray(step1_mean, np.float64) / np.asarray(last_close, np.float64) - 1.0
    prob_up = np.asarray(prob_up, np.float64)
    abs_offset = float(np.mean(np.abs(offset)))
    return {
        "step1_bias": float(np.mean(offset)),
        "step1_abs_offset": abs_offset,
        "offset_ratio": abs_offset / median_abs_return if median_abs_return > 0 else float("inf"),
        "p_up_extreme_share": float(np.mean((prob_up == 0.0) | (prob_up == 1.0))),
    }


def step_one_report(
    predictor: Any,
    df: pd.DataFrame,
    *,
    name: str = "series",
    lookback: int = 256,
    start: object = None,
    end: object = None,
    stride: int = 5,
    sample_count: int = 16,
    seed: int = 0,
    anchors: Sequence[bool] = (False, True),
) -> dict[str, Any]:
    """Reconstruction error and step-1 offset of ``predictor`` on windows of ``df`` whose next bar is in range.

    Origins every ``stride`` bars whose first target bar lies in [start, end]; each window is the
    ``lookback`` bars before its origin and nothing later is read. ``median_abs_return`` (median absolute
    close-to-close return over the range) is the yardstick of the target ``offset_ratio <= 0.25``.
    """
    series = PreparedSeries.from_frame(df, name=name, min_bars=lookback + 1)
    ends = origin_positions(series.times, lookback, 1, start=start, end=end, stride=stride)
    windows = [series.window(int(e), lookback, 1, predictor.clip) for e in ends]
    sq, recon = last_bar_reconstruction(
        predictor.tokenizer, np.stack([w.x for w in windows]).astype(np.float32)
    )
    std = np.stack([w.std for w in windows])[:, CLOSE]
    mean = np.stack([w.mean for w in windows])[:, CLOSE]
    last_close = np.array([w.last_close for w in windows])
    recon_close = recon[:, CLOSE] * (std + 1e-5) + mean
    close = series.values[ends[0] - 1 : ends[-1], CLOSE]
    median_abs = float(np.median(np.abs(close[1:] / close[:-1] - 1.0)))
    out: dict[str, Any] = {
        "series": name,
        "windows": len(ends),
        "first_origin": str(series.times[ends[0]])[:19],
        "recon_mse_window": float(sq.mean()),
        "recon_mse_last": float(sq[:, -1].mean()),
        "last_close_abs_z": float(np.abs(np.stack([w.x[-1, CLOSE] for w in windows])).mean()),
        "recon_close_offset": float(np.mean(np.abs(recon_close / last_close - 1.0))),
        "median_abs_return": median_abs,
    }
    for anchor in anchors:
        forecasts = predictor.forecast_series(
            series, list(ends), 1, lookback=lookback, sample_count=sample_count, seed=seed, anchor=anchor
        )
        step1 = np.array([f.paths("close")[:, 0].mean() for f in forecasts])
        p_up = np.array([f.prob_up(1) for f in forecasts])
        stats = step_one_stats(step1, last_close, p_up, median_abs)
        out.update({f"{k}{'_anchored' if anchor else ''}": v for k, v in stats.items()})
    return out


def standard_series(
    shared: Path | None = Path("../shared/data"), *, period: str = "test"
) -> list[tuple[str, pd.DataFrame, object, object]]:
    """(name, frame, start, end) of the standard measurement: the arch indices and, for ``test``, shared CSVs.

    ``validation`` is the training run's validation span (never the test period), where defaults are chosen;
    ``test`` is 2015 onwards plus every CSV in ``shared`` (series never trained on).
    """
    from .train_default import _arch_frame

    if period == "validation":
        return [(f"{n} val", _arch_frame(n), *VALIDATION) for n in ("sp500", "nasdaq")]
    out: list[tuple[str, pd.DataFrame, object, object]] = [
        (f"{n} 2015+", _arch_frame(n), TEST_START, None) for n in ("sp500", "nasdaq")
    ]
    if shared is not None and Path(shared).is_dir():
        out += [(p.stem, pd.read_csv(p), None, None) for p in sorted(Path(shared).glob("*.csv"))]
    return out


def step_one_rows(
    predictor: Any,
    series: list[tuple[str, pd.DataFrame, object, object]],
    *,
    stride: int = 10,
    max_windows: int = 100,
    sample_count: int = 16,
    verbose: bool = False,
) -> list[dict[str, Any]]:
    """:func:`step_one_report` of each (name, frame, start, end), on at most ``max_windows`` latest windows."""
    rows = []
    for name, df, start, end in series:
        stamps = PreparedSeries.from_frame(df, name=name).times
        pos = origin_positions(stamps, 256, 1, start=start, end=end, stride=stride)
        if len(pos) > max_windows:  # the latest windows: the same span for every checkpoint
            start = stamps[pos[-max_windows]]
        rows.append(
            step_one_report(
                predictor, df, name=name, start=start, end=end, stride=stride, sample_count=sample_count
            )
        )
        if verbose:
            print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The model card's step-one table: one row per series, raw and anchored."""
    lines = [
        "| series | windows | recon MSE window / last bar | last-bar close offset | median abs 1-bar move "
        "| step-1 bias raw | offset ratio raw / anchored | P(up) in {0,1} raw / anchored |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['series']} | {r['windows']} | {r['recon_mse_window']:.3f} / {r['recon_mse_last']:.3f} "
            f"| {r['recon_close_offset']:.2%} | {r['median_abs_return']:.2%} | {r['step1_bias']:+.2%} "
            f"| {r['offset_ratio']:.2f} / {r.get('offset_ratio_anchored', float('nan')):.2f} "
            f"| {r['p_up_extreme_share']:.0%} / {r.get('p_up_extreme_share_anchored', float('nan')):.0%} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the step-one table of a checkpoint (default: the bundled one); optionally save the rows as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint directory (default: the bundled model)")
    parser.add_argument("--period", choices=("validation", "test"), default="test")
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"), help="evaluation-only CSVs")
    parser.add_argument("--stride", type=int, default=10, help="bars between window origins")
    parser.add_argument(
        "--max-windows", type=int, default=100, help="at most this many (latest) windows a series"
    )
    parser.add_argument("--sample-count", type=int, default=16, help="sample paths per window")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = parser.parse_args(argv)
    from .predictor import KronosPredictor

    predictor = KronosPredictor.from_pretrained(args.model)
    series = standard_series(args.shared, period=args.period)
    rows = step_one_rows(
        predictor,
        series,
        stride=args.stride,
        max_windows=args.max_windows,
        sample_count=args.sample_count,
        verbose=True,
    )
    print(markdown_table(rows))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
