"""``kronos-bt run`` on a YAML with ``universe:`` (or with ``--data-dir DIR``): the universe half of the command."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..commands.common import engine_overrides, num, pct

__all__ = ["is_universe", "run_universe", "summary_table"]


def is_universe(args: argparse.Namespace) -> bool:
    """Whether ``kronos-bt run`` was given a universe: ``--data-dir`` or a YAML with a ``universe:`` block."""
    if getattr(args, "data_dir", None):
        return True
    import yaml

    try:
        raw = yaml.safe_load(Path(args.config).read_text())
    except (OSError, yaml.YAMLError):
        return False  # the single-asset path reports the problem
    return isinstance(raw, dict) and "universe" in raw


def run_universe(args: argparse.Namespace) -> int:
    """Run the universe backtest the arguments describe and print its summary."""
    from .runner import run_universe_backtest

    overrides = list(args.set or [])
    if getattr(args, "data_dir", None):
        overrides += [f"universe.data_dir={args.data_dir}", "universe.files=null", "universe.assets=[]"]
    overrides += engine_overrides(args)
    result = run_universe_backtest(
        args.config, overrides=overrides, out_dir=args.out, new_folder=args.out is None, force=args.force
    )
    print(summary_table(result))
    return 0


def summary_table(result: Any) -> str:
    """Portfolio vs equal weight, then the signal's IC / RankIC and quantile spread, then the files."""
    cfg, m, b, s = result.config, result.metrics, result.benchmark_metrics, result.signal_metrics
    idx = result.returns.index
    rows = [
        f"{cfg.name}: {cfg.strategy.name} on {len(result.universe.names)} assets "
        f"({', '.join(result.universe.names)}), {idx[0].date()} .. {idx[-1].date()} ({len(idx)} bars)",
        f"{'':<20}{'Strategy':>12}{'Equal weight':>14}",
    ]
    for label, key, fmt in (("Total return", "total_return", pct), ("CAGR", "cagr", pct), ("Sharpe", "sharpe", num),
                            ("Max drawdown", "max_drawdown", pct), ("Volatility (ann.)", "volatility", pct),
                            ("Turnover (x/yr)", "turnover", num)):  # fmt: skip
        bench = "-" if key == "turnover" else fmt(b.get(key))
        rows.append(f"{label:<20}{fmt(m.get(key)):>12}{bench:>14}")
    ic, ric = s["ic"], s["rank_ic"]
    rows.append(f"signal at horizon {s['horizon']}:   mean      std     ICIR   t-stat   bars")
    for label, x in (("IC", ic), ("RankIC", ric)):
        rows.append(f"  {label:<14}{num(x['mean'], 4):>9}{num(x['std'], 4):>9}{num(x['icir']):>9}"
                    f"{num(x['t_stat']):>9}{x['bars']:>7}")  # fmt: skip
    q = s["quantiles"]
    rows.append(
        "quantile mean fwd returns (bp): "
        + " ".join(
            f"{k}={num(None if v is None else v * 1e4, 1)}" for k, v in q["mean_forward_return"].items()
        )
        + f"; top-bottom {num(None if q['top_minus_bottom'] is None else q['top_minus_bottom'] * 1e4, 1)} bp"
    )
    st = result.forecast_stats
    rows.append(f"forecasts: {st.windows} windows, {st.computed} computed, {st.cache_hits} from cache, "
                f"{st.seconds:.1f} s in the model; total {result.seconds:.1f} s")  # fmt: skip
    if result.universe.delisted:
        rows.append("delisted (closed at their last close): " + ", ".join(result.universe.delisted))
    if result.files:
        first = next(iter(result.files.values())).parent
        rows.append(f"wrote {first}/: " + ", ".join(p.name for p in result.files.values()))
    return "\n".join(rows)
