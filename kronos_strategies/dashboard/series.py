"""Chart series of one backtest run: price, forecast band, trades, equity vs benchmark and drawdown.

A run folder keeps the forecast band (signals.csv), the fills (trades.csv) and the config (manifest.json),
but not the equity curve. The equity is rebuilt by replaying the fills on the closes of the bars the
manifest names (a dataset or a local file; exchange downloads are never fetched from here), and is
checked against metrics.json's total return so a mismatch is shown rather than a wrong curve.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .runs import RunRef, read_json, safe_file

MAX_POINTS = 5000  # longer series are thinned for the browser (every k-th bar, last bar kept)


def _csv(ref: RunRef, name: str, **kwargs: Any) -> pd.DataFrame | None:
    """A CSV of the run, or None when absent."""
    path = safe_file(ref, name)
    if path is None:
        return None
    try:
        return pd.read_csv(path, **kwargs)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise ValueError(f"{name} cannot be read ({exc})") from None


def _iso(index: pd.Index) -> list[str]:
    return [ts.isoformat() for ts in pd.DatetimeIndex(index)]


def _values(series: pd.Series) -> list[float | None]:
    return [None if not math.isfinite(v) else float(v) for v in series.to_numpy(dtype=float)]


def _thin(frame: pd.DataFrame) -> pd.DataFrame:
    if len(frame) <= MAX_POINTS:
        return frame
    step = math.ceil(len(frame) / MAX_POINTS)
    keep = np.zeros(len(frame), dtype=bool)
    keep[::step] = True
    keep[-1] = True
    return frame[keep]


def close_prices(manifest: Any) -> pd.Series | None:
    """The close series of the bars a run's config names, or None when they are not local."""
    from kronos_strategies.config import load_config
    from kronos_strategies.runner import load_bars

    config = manifest.get("config") if isinstance(manifest, dict) else None
    data = config.get("data") if isinstance(config, dict) else None
    if not isinstance(data, dict) or data.get("source") == "ccxt":
        return None
    try:  # only the data section matters; the rest may come from another version of the config schema
        cfg = load_config({"data": data})
        cfg.source = manifest.get("config_file")  # a relative data.path may sit beside the YAML
        return load_bars(cfg)["close"]
    except Exception:  # noqa: BLE001 - any failure means: no price series on the page, not a crash
        return None


def replay_equity(close: pd.Series, trades: pd.DataFrame, cash: float) -> pd.Series:
    """Equity after each bar's close: cash moved by each fill (size * price + commission) plus position * close."""
    executed = pd.DatetimeIndex(pd.to_datetime(trades["executed"]))
    if close.index.tz is not None and executed.tz is None:
        executed = executed.tz_localize(close.index.tz)
    flows = pd.DataFrame({"size": trades["size"].to_numpy(dtype=float),
                          "cash": -(trades["size"] * trades["price"]).to_numpy(dtype=float)
                          - trades["commission"].to_numpy(dtype=float)}, index=executed)  # fmt: skip
    per_bar = flows.groupby(level=0).sum().reindex(close.index, fill_value=0.0)
    position = per_bar["size"].cumsum()
    money = cash + per_bar["cash"].cumsum()
    return (money + position * close).rename("equity")


_CACHE: dict[tuple, dict[str, Any]] = {}


def run_series(ref: RunRef) -> dict[str, Any]:
    """``build_series`` cached by the run's files' sizes and modification times (a rewritten run is re-read)."""
    key = (ref.folder,) + tuple(
        (p.stat().st_mtime_ns, p.stat().st_size) if p is not None else None
        for p in (safe_file(ref, n) for n in ("metrics.json", "manifest.json", "signals.csv", "trades.csv"))
    )
    if key not in _CACHE:
        if len(_CACHE) > 64:
            _CACHE.clear()
        _CACHE[key] = build_series(ref)
    return _CACHE[key]


def build_series(ref: RunRef) -> dict[str, Any]:
    """Band, trades, and where possible close, equity, benchmark and drawdown, as JSON-ready lists."""
    out: dict[str, Any] = {"notes": []}
    signals = _csv(ref, "signals.csv", index_col=0, parse_dates=True)
    trades = _csv(ref, "trades.csv")
    manifest = read_json(ref, "manifest.json")
    metrics = read_json(ref, "metrics.json")
    period = metrics.get("period", {}) if isinstance(metrics, dict) else {}
    if trades is not None and {"executed", "size", "price"} <= set(trades.columns):
        out["trades"] = {"time": [str(t) for t in trades["executed"]], "price": _values(trades["price"]),
                         "side": ["buy" if s > 0 else "sell" for s in trades["size"]]}  # fmt: skip
    if signals is not None and {"lower", "upper"} <= set(signals.columns):
        band = _thin(signals[["lower", "upper"]])
        out["band"] = {
            "time": _iso(band.index),
            "lower": _values(band["lower"]),
            "upper": _values(band["upper"]),
        }
        horizon = (
            (manifest or {}).get("config", {}).get("indicator", {}).get("horizon")
            if isinstance(manifest, dict)
            else None
        )
        out["band"]["horizon"] = horizon if isinstance(horizon, int) else None
    close = close_prices(manifest)
    if close is None:
        out["notes"].append("price and equity need the run's bars; they are not available locally")
        return out
    start, end = period.get("start"), period.get("end")
    if start and end:
        naive = close.index.tz_localize(None) if close.index.tz is not None else close.index
        close = close[(naive >= pd.Timestamp(start)) & (naive <= pd.Timestamp(end))]
    if close.empty:
        out["notes"].append("the run's period has no bars in its data")
        return out
    out["close"] = {
        "time": _iso(_thin(close.to_frame()).index),
        "value": _values(_thin(close.to_frame())["close"]),
    }
    cash = (manifest or {}).get("config", {}).get("broker", {}).get("cash")
    if trades is None or not isinstance(cash, int | float):
        return out
    equity = replay_equity(close, trades, float(cash))
    expected = metrics.get("strategy", {}).get("total_return") if isinstance(metrics, dict) else None
    got = float(equity.iloc[-1] / cash - 1.0)
    if isinstance(expected, int | float) and not math.isclose(got, expected, rel_tol=1e-4, abs_tol=1e-6):
        out["notes"].append(f"the rebuilt equity ends at {got:.4%}, metrics.json says {expected:.4%}; "
                            "the data changed since the run, so the curve is not shown")  # fmt: skip
        return out
    growth = equity / float(cash)
    bench = close / float(close.iloc[0])
    frame = _thin(
        pd.DataFrame({"equity": growth, "benchmark": bench, "drawdown": growth / growth.cummax() - 1.0})
    )
    out["equity"] = {"time": _iso(frame.index), "strategy": _values(frame["equity"]),
                     "benchmark": _values(frame["benchmark"]), "drawdown": _values(frame["drawdown"])}  # fmt: skip
    return out
